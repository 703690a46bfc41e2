//! The checked-in JSON Schema must match the types. Regenerate with
//! `UPDATE_SCHEMA=1 cargo test -p contract --test schema`.

use std::path::PathBuf;

fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema/contract-v4.schema.json")
}

#[test]
fn checked_in_schema_matches_the_types() {
    let generated = contract::schema::contract_text();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(schema_path(), &generated).expect("write schema");
    }
    let on_disk = std::fs::read_to_string(schema_path())
        .expect("read contract/schema/contract-v4.schema.json");
    assert!(
        on_disk == generated,
        "contract/schema/contract-v4.schema.json is out of date with contract/src/types.rs; \
         run `UPDATE_SCHEMA=1 cargo test -p contract --test schema` and commit the file"
    );
}

#[test]
fn schema_rejects_unknown_fields_and_requires_the_essentials() {
    let schema = contract::schema::contract_schema();
    assert_eq!(schema["additionalProperties"], serde_json::json!(false));
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required list")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for field in ["version", "hostname", "service"] {
        assert!(
            required.contains(&field),
            "{field} must be required, got {required:?}"
        );
    }
}
