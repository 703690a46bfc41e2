//! The checked-in JSON Schemas must match the types. Regenerate with
//! `UPDATE_SCHEMA=1 cargo test -p appliance --test schema`.

use std::path::PathBuf;

fn check(file: &str, generated: String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("schema")
        .join(file);
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).expect("write schema");
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "appliance/schema/{file} is out of date with the types; run `UPDATE_SCHEMA=1 cargo \
         test -p appliance --test schema` and commit the file"
    );
}

#[test]
fn spec_schema_matches_the_types() {
    check(
        appliance::schema::SPEC_SCHEMA_ID,
        appliance::schema::spec_v1_text(),
    );
}

#[test]
fn manifest_schema_matches_the_types() {
    check(
        appliance::schema::MANIFEST_SCHEMA_ID,
        appliance::schema::manifest_v1_text(),
    );
}

#[test]
fn schemas_reject_unknown_fields_and_require_the_essentials() {
    let spec: serde_json::Value =
        serde_json::from_str(&appliance::schema::spec_v1_text()).expect("json");
    assert_eq!(spec["additionalProperties"], serde_json::json!(false));
    assert_eq!(spec["required"], serde_json::json!(["image", "name"]));
    let m: serde_json::Value =
        serde_json::from_str(&appliance::schema::manifest_v1_text()).expect("json");
    assert_eq!(m["additionalProperties"], serde_json::json!(false));
    assert_eq!(
        m["required"],
        serde_json::json!(["contract_version", "service"])
    );
}
