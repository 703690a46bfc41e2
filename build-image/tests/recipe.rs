//! Recipe parsing and validation, the checked-in schema, and the checked-in recipes.

mod common;

use build_image::recipe::{self, parse};
use std::path::PathBuf;

const MINIMAL: &str = r#"{
  "recipe_version": 1,
  "name": "t",
  "programs": ["/bin/true"],
  "manifest": { "contract_version": 1, "service": { "argv": ["/bin/true"] } }
}"#;

fn with(field: &str, value: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(MINIMAL).unwrap();
    v[field] = serde_json::from_str(value).unwrap();
    v.to_string()
}

fn errors(text: &str) -> Vec<String> {
    parse(text.as_bytes()).expect_err("should be refused").0
}

#[test]
fn minimal_recipe_and_defaults() {
    let r = parse(MINIMAL.as_bytes()).unwrap();
    assert!(r.ipv6);
    assert!(!r.wants_disk_tools());
    assert!(r.packages.is_empty());
}

#[test]
fn unknown_fields_are_refused_with_their_path() {
    let e = errors(&with("programz", "[]"));
    assert!(
        e[0].starts_with("programz: unknown field `programz`"),
        "{e:?}"
    );
    let e = errors(&with(
        "files",
        r#"[{"path":"/etc/x","content":"","mod":"0644"}]"#,
    ));
    assert!(
        e[0].starts_with("files[0].mod: unknown field `mod`"),
        "{e:?}"
    );
    let e = errors(&with(
        "manifest",
        r#"{"contract_version":1,"service":{"argv":["/bin/true"],"usr":1}}"#,
    ));
    assert!(
        e[0].starts_with("manifest.service.usr: unknown field `usr`"),
        "{e:?}"
    );
}

#[test]
fn wrong_types_and_versions() {
    let e = errors(&with("programs", r#""/bin/true""#));
    assert!(e[0].starts_with("programs: invalid type"), "{e:?}");
    let e = errors(&with("recipe_version", "2"));
    assert!(e[0].contains("recipe_version: 2 is not supported"), "{e:?}");
    let e = errors(r#"{"name":"x"}"#);
    assert!(e[0].starts_with("recipe_version: missing"), "{e:?}");
    let e = errors("[1]");
    assert!(e[0].contains("must be a JSON object"), "{e:?}");
    let e = errors("{");
    assert!(e[0].starts_with("not valid JSON"), "{e:?}");
}

#[test]
fn duplicate_keys_and_a_bom_are_refused() {
    let dup = MINIMAL.replace(r#""name": "t","#, r#""name": "t", "name": "u","#);
    let e = errors(&dup);
    assert!(
        e[0].starts_with(r#"name: the key "name" appears twice in one object"#),
        "{e:?}"
    );
    let nested = MINIMAL.replace(
        r#""service": {"#,
        r#""service": { "argv": ["/bin/false"], "#,
    );
    let e = errors(&nested);
    assert!(e[0].starts_with("manifest.service.argv: the key"), "{e:?}");
    let e = errors(&format!("\u{feff}{MINIMAL}"));
    assert!(e[0].contains("byte-order mark"), "{e:?}");
}

#[test]
fn every_problem_is_reported_with_its_path() {
    let text = r#"{
      "recipe_version": 1,
      "name": "a name with spaces",
      "packages": ["Bad_Package"],
      "programs": ["bin/true", "/bin/true", "/bin/true"],
      "files": [
        {"path": "/etc/a", "content": "x", "source": "y", "mode": "999"},
        {"path": "/etc/passwd", "content": "root::0:0::/:/bin/sh\n"}
      ],
      "dirs": [{"path": "/data/../etc", "mode": "0755"}],
      "users": ["svc:x:abc:1::/:/bin/false", "svc2:x:5"],
      "groups": ["g:x:1:", "g:x:2:"],
      "manifest": {
        "contract_version": 1,
        "service": { "argv": ["/usr/sbin/other"] },
        "disks": [{ "mount_point": "data" }]
      }
    }"#;
    let e = errors(text);
    for expected in [
        "name: 'a name with spaces' is not an image name",
        "packages[0]: 'Bad_Package' is not a Debian package name",
        "programs[0]: 'bin/true' is not an absolute path",
        "programs[2]: '/bin/true' is already in the recipe",
        "files[0].mode: '999' is not an octal mode",
        "files[0]: give exactly one of `content` and `source`",
        "files[1].path: /etc/passwd is written by the builder",
        "dirs[0].path: '/data/../etc' is not normalised",
        "users[0]: 'abc' in 'svc:x:abc:1::/:/bin/false' is not a numeric id",
        "users[1]: 'svc2:x:5' has 3 ':'-separated fields, expected 7",
        "groups[1]: group 'g' is defined twice",
        "manifest.service.argv[0]: '/usr/sbin/other' is not one of the recipe's programs",
        "manifest.disks[0].mount_point: 'data' is not an absolute path",
    ] {
        assert!(
            e.iter().any(|l| l.starts_with(expected)),
            "no problem starting with {expected:?} in {e:#?}"
        );
    }
    assert_eq!(e.len(), 13, "{e:#?}");
}

#[test]
fn resource_limits_need_a_version_2_manifest() {
    let limits = r#"{"RLIMIT_NOFILE":{"soft":64,"hard":128}}"#;
    let v1 = format!(
        r#"{{"contract_version":1,"service":{{"argv":["/bin/true"],"rlimits":{limits}}}}}"#
    );
    let e = errors(&with("manifest", &v1));
    assert!(
        e.iter()
            .any(|l| l
                .starts_with("manifest.service.rlimits: resource limits need contract version 2")),
        "{e:#?}"
    );
    let v2 = v1.replace(r#""contract_version":1"#, r#""contract_version":2"#);
    assert!(parse(with("manifest", &v2).as_bytes()).is_ok());
    let e = errors(&with(
        "manifest",
        r#"{"contract_version":5,"service":{"argv":["/bin/true"]}}"#,
    ));
    assert!(e.iter().any(|l| l.contains("contract_version")), "{e:#?}");
}

#[test]
fn a_manifest_guest_init_would_refuse_is_refused() {
    let e = errors(&with(
        "manifest",
        r#"{"contract_version":1,"service":{"argv":["/bin/true"],"capabilities":["CAP_FLY"]},
            "tmpfs":[{"mount_point":"/tmp"}]}"#,
    ));
    assert!(
        e.iter()
            .any(|l| l.contains("service.capabilities[0]") && l.contains("CAP_FLY")),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|l| l.contains("mounts.tmpfs[0].mount_point")),
        "{e:#?}"
    );
}

#[test]
fn a_quiesce_command_must_be_shipped_and_needs_contract_version_4() {
    let e = errors(&with(
        "manifest",
        r#"{"contract_version":4,"service":{"argv":["/bin/true"],
            "quiesce":{"argv":["/usr/bin/flush"]}}}"#,
    ));
    assert!(
        e.iter().any(|l| {
            l.starts_with(
            "manifest.service.quiesce.argv[0]: '/usr/bin/flush' is not one of the recipe's programs"
        )
        }),
        "{e:#?}"
    );
    let e = errors(&with(
        "manifest",
        r#"{"contract_version":3,"service":{"argv":["/bin/true"],
            "quiesce":{"argv":["/bin/true"]}}}"#,
    ));
    assert!(
        e.iter()
            .any(|l| l.contains("service.quiesce: needs contract version 4")),
        "{e:#?}"
    );
}

#[test]
fn a_class_claim_the_manifest_cannot_honour_is_refused() {
    let e = errors(&with(
        "manifest",
        r#"{"contract_version":1,"class":{"name":"web","version":1},
            "service":{"argv":["/bin/true"]},"ports":[{"port":8080}]}"#,
    ));
    assert!(
        e.iter().any(|l| l
            == "manifest.ports: class web v1 serves 80/tcp; declare it in the manifest's ports"),
        "{e:#?}"
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("manifest.disks: class web v1 keeps its data")),
        "{e:#?}"
    );
    let e = errors(&with(
        "manifest",
        r#"{"contract_version":1,"class":{"name":"dns","version":9},
            "service":{"argv":["/bin/true"]},
            "ports":[{"port":53,"protocol":"udp"},{"port":53,"protocol":"tcp"}]}"#,
    ));
    assert!(
        e.iter()
            .any(|l| l
                .starts_with("manifest.class.version: the image implements class dns version 9")),
        "{e:#?}"
    );
}

#[test]
fn a_program_is_needed() {
    let e = errors(&with("programs", "[]"));
    assert!(
        e.iter()
            .any(|l| l.starts_with("programs: at least one program")),
        "{e:?}"
    );
}

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/recipe-v1.schema.json")
}

/// Regenerate with `UPDATE_SCHEMA=1 cargo test -p build-image --test recipe`.
#[test]
fn checked_in_schema_matches_the_types() {
    let generated = recipe::schema_v1_text();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(schema_path(), &generated).expect("write schema");
    }
    let on_disk = std::fs::read_to_string(schema_path())
        .expect("read build-image/schema/recipe-v1.schema.json");
    assert!(
        on_disk == generated,
        "build-image/schema/recipe-v1.schema.json is out of date with build-image/src/recipe.rs; run \
         `UPDATE_SCHEMA=1 cargo test -p build-image --test recipe` and commit the file"
    );
    let schema: serde_json::Value = serde_json::from_str(&on_disk).unwrap();
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for f in ["recipe_version", "name", "programs", "manifest"] {
        assert!(required.contains(&f), "{f} must be required: {required:?}");
    }
}

#[test]
fn checked_in_recipes_parse_and_their_manifests_are_what_host_launch_reads() {
    for name in ["dns", "nsd", "knot", "web", "syslog", "nginx", "syslog-ng"] {
        let r = common::recipe(name);
        assert_eq!(r.name, name);
        let json = serde_json::to_vec(&r.manifest).unwrap();
        let back = appliance::manifest::parse(&json)
            .unwrap_or_else(|e| panic!("{name}: host-launch refuses the manifest: {e}"));
        assert_eq!(back, r.manifest);
        assert!(!r.manifest.ports.is_empty(), "{name} declares its ports");
    }
    assert!(common::recipe("web").wants_disk_tools());
    assert!(common::recipe("syslog").wants_disk_tools());
    assert!(!common::recipe("dns").wants_disk_tools());
    // The class images declare their class; the dnsmasq image stays unclassed.
    for (name, class) in [
        ("web", "web"),
        ("nginx", "web"),
        ("syslog", "syslog"),
        ("syslog-ng", "syslog"),
    ] {
        let c = common::recipe(name).manifest.class;
        assert_eq!(
            c.map(|c| (c.name.as_str(), c.version)),
            Some((class, 1)),
            "{name}"
        );
    }
    assert_eq!(common::recipe("dns").manifest.class, None);
}

#[test]
fn example_specs_are_valid_host_launch_specs_for_these_images() {
    let examples = build_image::workspace_root().join("examples");
    for (spec, image) in [
        ("dns", "knot"),
        ("dns", "nsd"),
        ("web", "web"),
        ("syslog", "syslog"),
        ("web", "nginx"),
        ("syslog", "syslog-ng"),
    ] {
        let path = examples.join(format!("{spec}.json"));
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let s = appliance::spec::parse(&text).unwrap_or_else(|e| panic!("{spec}: {e:#?}"));
        // The class examples name Knot's, lighttpd's and rsyslog's images; the other
        // vendor's image of the class takes the same spec (host-launch upgrade --image).
        if !["nsd", "nginx", "syslog-ng"].contains(&image) {
            assert_eq!(s.image, format!("../build/{image}.img"));
        }
        let m = common::recipe(image).manifest;
        if let Some(class) = &m.class {
            appliance::class::check_spec_inputs(class, &s)
                .unwrap_or_else(|e| panic!("{spec}: lacks the class inputs: {e}"));
        }
        appliance::merge::merge(&s, &m)
            .unwrap_or_else(|e| panic!("{spec}: spec and manifest do not merge: {e:?}"));
    }
}
