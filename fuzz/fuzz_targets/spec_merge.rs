//! Operator spec + image manifest → contract, as `host-launch check` does without files. The
//! input is the spec, then a NUL byte and the manifest (a fixed manifest when there is none).
//! What merges must be a contract every guest accepts; the class checks of the spec and the
//! manifest run on every parsed pair; the network policy of what merges renders whatever the
//! spec's `network.egress` and `network.reach` say.
#![no_main]
use appliance::{manifest, merge, spec};
use libfuzzer_sys::fuzz_target;

const MANIFEST: &[u8] = br#"{"contract_version":1,"service":{"argv":["/bin/busybox","true"]},
    "disks":[{"mount_point":"/data","format_if_blank":true}],
    "tmpfs":[{"mount_point":"/var/cache","size_mib":4}]}"#;

fuzz_target!(|data: &[u8]| {
    let (spec_text, manifest_text) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, MANIFEST),
    };
    let s = spec::parse(spec_text);
    let m = manifest::parse(manifest_text);
    let (Ok(s), Ok(m)) = (s, m) else {
        return;
    };
    // The class checks never panic, whatever the spec and the claim (their messages are
    // the operator's only guide).
    if let Some(class) = &m.class {
        let _ = appliance::class::check_spec_inputs(class, &s);
    }
    let _ = appliance::class::check_manifest(&m);
    if let Ok(merged) = merge::merge(&s, &m) {
        let c = &merged.contract;
        assert!(contract::validate(c).is_ok());
        assert!(contract::budget::check(c, s.memory_mib).is_ok());
        let json = contract::to_json(c);
        assert_eq!(&contract::parse_json(json.as_bytes()).expect("merged"), c);
        if let (Some(n), Ok(checked)) = (&s.network, contract::checked::check(c.clone())) {
            if let Some(net) = &checked.network {
                let p = appliance::netpolicy::derive(&s.name, n, &m, net, checked.remote.as_ref())
                    .expect("a merged contract always gives the interface a MAC");
                let script = appliance::netpolicy::render(&p, appliance::netpolicy::Pass::On);
                assert!(appliance::netpolicy::rule_count(&script) > 0);
            }
        }
    }
});
