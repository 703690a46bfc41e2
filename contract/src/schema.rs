//! The JSON Schema of contract v1, generated from the types so the two cannot drift apart.
//!
//! The checked-in copy, `contract/schema/contract-v1.schema.json`, is for people and tools
//! outside Rust; a test fails when it differs from what the types generate.

use crate::v1::Contract;

/// The JSON Schema (draft 7) of contract v1.
pub fn contract_v1() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Contract);
    schema.schema.metadata().id = Some(SCHEMA_ID.to_string());
    // A schema is plain data; turning it into a JSON value cannot fail.
    serde_json::to_value(schema).unwrap_or_default()
}

/// Identifier of the v1 schema, also its file name in `contract/schema/`.
pub const SCHEMA_ID: &str = "contract-v1.schema.json";

/// The schema as pretty JSON text with a trailing newline, exactly as checked in.
pub fn contract_v1_text() -> String {
    let mut text = serde_json::to_string_pretty(&contract_v1()).unwrap_or_default();
    text.push('\n');
    text
}
