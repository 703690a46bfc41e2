//! Parsing and validation, from the user's side: good examples load, each contract in the bad
//! corpus (`tests/bad/NAME.json`, expected message in `NAME.expect`) fails with its own message.
//! A corpus file too large to keep in git says `@N*TEXT@` where it holds TEXT N times.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn examples_parse_and_survive_a_json_round_trip() {
    for name in ["full.json", "minimal.json"] {
        let c = contract::parse_json(&read(&dir("examples").join(name)))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = contract::parse_json(contract::to_json(&c).as_bytes()).expect("round trip");
        assert_eq!(c, again, "{name}");
    }
}

#[test]
fn defaults_are_filled_in() {
    let c = contract::parse_json(&read(&dir("examples/minimal.json"))).expect("minimal");
    assert_eq!(c.service.stop_signal, "SIGTERM");
    assert_eq!(c.service.restart.policy, contract::RestartPolicy::OnFailure);
    assert!(c.logging.console);
    assert!(c.network.is_none());
}

/// Every `.json` in the corpus with the message it must produce.
fn corpus() -> BTreeMap<String, (Vec<u8>, String)> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir("tests/bad")).expect("tests/bad") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let expect = String::from_utf8(read(&path.with_extension("expect"))).expect("utf8");
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_string();
        out.insert(name, (expand(&read(&path)), expect.trim_end().to_string()));
    }
    out
}

/// The corpus file with every `@N*TEXT@` replaced by TEXT repeated N times.
fn expand(text: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(text);
    let mut out = String::new();
    let mut rest = text.as_ref();
    while let Some(start) = rest.find('@') {
        let Some(len) = rest[start + 1..].find('@') else {
            break;
        };
        let token = &rest[start + 1..start + 1 + len];
        let Some((n, unit)) = token
            .split_once('*')
            .and_then(|(n, unit)| Some((n.parse::<usize>().ok()?, unit)))
        else {
            out.push_str(&rest[..=start]);
            rest = &rest[start + 1..];
            continue;
        };
        out.push_str(&rest[..start]);
        out.push_str(&unit.repeat(n));
        rest = &rest[start + 2 + len..];
    }
    out.push_str(rest);
    out.into_bytes()
}

#[test]
fn corpus_repeats_expand() {
    assert_eq!(
        expand(b"[@3*1,@1] \"@2*xy@\" a@b"),
        b"[1,1,1,1] \"xyxy\" a@b"
    );
}

#[test]
fn every_bad_contract_fails_with_its_own_clear_message() {
    let corpus = corpus();
    assert!(
        corpus.len() >= 20,
        "the corpus must hold at least 20 cases, has {}",
        corpus.len()
    );
    let mut messages = BTreeMap::new();
    for (name, (text, expect)) in &corpus {
        let err = match contract::parse_json(text) {
            Ok(_) => panic!("{name}: accepted, but should fail with: {expect}"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(expect.as_str()),
            "{name}:\n  expected: {expect}\n  got:      {err}"
        );
        if let Some(other) = messages.insert(err.clone(), name.clone()) {
            panic!("{name} and {other} give the same message: {err}");
        }
    }
}

#[test]
fn all_problems_are_reported_at_once() {
    let text = br#"{
        "version": 1,
        "hostname": "-bad-",
        "network": { "interfaces": [ { "name": "vec0", "addresses": ["10.0.0.300/24", "192.0.2.1/24", "::1/200"] } ] },
        "service": { "argv": ["relative"], "capabilities": ["CAP_NOPE"], "stop_signal": "SIGNOPE" }
    }"#;
    let err = contract::parse_json(text).expect_err("invalid");
    let lines = err.lines();
    let paths: Vec<&str> = lines
        .iter()
        .map(|l| l.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        paths,
        [
            "hostname",
            "network.interfaces[0].addresses[0]",
            "network.interfaces[0].addresses[2]",
            "service.argv[0]",
            "service.capabilities[0]",
            "service.stop_signal"
        ],
        "{lines:#?}"
    );
}
