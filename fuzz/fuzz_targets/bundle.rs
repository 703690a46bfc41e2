//! A bundle's config.json (podman's, with the image's annotations: our manifest among them,
//! which is image content) → the appliance uml-runc would boot, as `create` plans it without
//! files. Whatever plans must be a contract every guest accepts.
#![no_main]
use libfuzzer_sys::fuzz_target;
use uml_runc::service::{GuestNet, Inputs};

fuzz_target!(|data: &[u8]| {
    let Ok(config) = uml_runc::bundle::parse(data) else {
        return;
    };
    let files = config
        .mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| m.kind.as_deref() == Some("bind"))
        .map(|(i, m)| (i, m.destination.as_bytes().to_vec()))
        .collect();
    let inputs = Inputs {
        net: Some((
            "uml0".into(),
            GuestNet {
                addresses: vec!["192.0.2.53/24".into()],
                mac: Some("02:00:00:00:00:01".into()),
                mtu: Some(1500),
                routes: Vec::new(),
            },
        )),
        files,
        argv0: "/usr/sbin/dnsmasq".into(),
        // A volume's disk is a host file or device uml-runc checks before it plans.
        disks: Vec::new(),
    };
    if let Ok(t) = uml_runc::service::translate("0123456789abcdef", &config, &inputs) {
        let c = &t.merged.contract;
        assert!(contract::validate(c).is_ok());
        assert!(contract::budget::check(c, t.memory_mib).is_ok());
    }
});
