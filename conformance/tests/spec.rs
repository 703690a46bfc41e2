//! The specification (docs/contract.md) and the kit's requirement list name the same
//! requirements at the same levels, each defined once; every requirement the kit does not
//! check is in the specification's table of what cannot be checked from outside.

use conformance::requirements::{How, ALL};
use std::collections::BTreeMap;

/// `**ID** LEVEL` definitions of the spec: ID → level, and the IDs defined twice.
fn spec_requirements(text: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut found = BTreeMap::new();
    let mut twice = Vec::new();
    for piece in text
        .split("**")
        .skip(1)
        .step_by(2)
        .zip(text.split("**").skip(2).step_by(2))
    {
        let (id, after) = piece;
        let is_id = (id.starts_with("C-") || id.starts_with("H-"))
            && id
                .rsplit('-')
                .next()
                .is_some_and(|n| n.parse::<u32>().is_ok());
        if !is_id {
            continue;
        }
        let level = after
            .split_whitespace()
            .next()
            .unwrap_or("")
            .trim_end_matches(':')
            .to_string();
        if found.insert(id.to_string(), level).is_some() {
            twice.push(id.to_string());
        }
    }
    (found, twice)
}

fn spec_text() -> String {
    let path = e2e::workspace_root().join("docs/contract.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_spec_and_the_kit_name_the_same_requirements() {
    let text = spec_text();
    let (spec, twice) = spec_requirements(&text);
    assert!(twice.is_empty(), "defined twice in the spec: {twice:?}");
    assert!(
        spec.len() > 50,
        "only {} requirements read from the spec",
        spec.len()
    );
    let kit: BTreeMap<String, String> = ALL
        .iter()
        .map(|r| (r.id.to_string(), r.level.as_str().to_string()))
        .collect();
    assert_eq!(kit.len(), ALL.len(), "the kit lists an ID twice");
    let only_spec: Vec<_> = spec.keys().filter(|k| !kit.contains_key(*k)).collect();
    let only_kit: Vec<_> = kit.keys().filter(|k| !spec.contains_key(*k)).collect();
    assert!(
        only_spec.is_empty() && only_kit.is_empty(),
        "in the spec only: {only_spec:?}; in the kit only: {only_kit:?}"
    );
    for (id, level) in &kit {
        assert_eq!(
            &spec[id], level,
            "{id}: the spec and the kit give different levels"
        );
    }
}

#[test]
fn every_must_is_checked_or_says_why_not() {
    let text = spec_text();
    let table = text.split("## 11.").nth(1).expect("section 11 of the spec");
    for r in ALL {
        if let How::Not(why) = r.how {
            assert!(!why.is_empty(), "{}: no reason", r.id);
            let listed = table.contains(&format!("| {} |", r.id))
                || (r.id.starts_with("H-") && table.contains("| H-* |"));
            assert!(listed, "{} is not checked by the kit but not in the spec's table of what cannot be checked", r.id);
        }
    }
}

#[test]
fn the_reader_finds_definitions_only() {
    let (found, twice) =
        spec_requirements("- **C-A-1** MUST: x, see C-A-1 and **bold** text; **H-B-2** SHOULD: y");
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        [
            ("C-A-1".into(), "MUST".into()),
            ("H-B-2".into(), "SHOULD".into())
        ]
    );
    assert!(twice.is_empty());
}
