//! The kernel's `ip=` parameter: what parses into a network must be a network the contract
//! accepts (guest-init configures it as if the contract had said it).
#![no_main]
use contract::ipconfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = ipconfig::parse(text) else {
        return;
    };
    let _ = cfg.hostname();
    if let Ok(Some(network)) = cfg.to_network() {
        let mut c =
            contract::parse_json(br#"{"version":1,"hostname":"fuzz","service":{"argv":["/x"]}}"#)
                .expect("base contract");
        c.network = Some(network);
        if let Some(h) = cfg.hostname() {
            c.hostname = h.to_string();
        }
        if let Err(p) = contract::validate(&c) {
            panic!("ip={text:?} gives a network the contract refuses: {p}");
        }
    }
});
