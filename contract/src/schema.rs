//! The JSON Schema of the contract (version 4, which also reads every version 1 to 3 document),
//! generated from the types so the two cannot drift apart.
//!
//! The checked-in copy, `contract/schema/contract-v4.schema.json`, is for people and tools
//! outside Rust; a test fails when it differs from what the types generate.

use crate::types::Contract;

/// The JSON Schema (draft 7) of the contract.
pub fn contract_schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Contract);
    schema.schema.metadata().id = Some(SCHEMA_ID.to_string());
    // A schema is plain data; turning it into a JSON value cannot fail.
    serde_json::to_value(schema).unwrap_or_default()
}

/// Identifier of the schema, also its file name in `contract/schema/`.
pub const SCHEMA_ID: &str = "contract-v4.schema.json";

/// The schema as pretty JSON text with a trailing newline, exactly as checked in.
pub fn contract_text() -> String {
    let mut text = serde_json::to_string_pretty(&contract_schema()).unwrap_or_default();
    text.push('\n');
    text
}
