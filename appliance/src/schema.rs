//! JSON Schemas of the spec and the manifest, generated from the types so they cannot drift.
//! Checked-in copies live in `appliance/schema/`; a test fails when they differ.

use crate::manifest::Manifest;
use crate::spec::Spec;

/// File name (and `$id`) of the spec schema.
pub const SPEC_SCHEMA_ID: &str = "spec-v1.schema.json";
/// File name (and `$id`) of the manifest schema.
pub const MANIFEST_SCHEMA_ID: &str = "manifest-v1.schema.json";

fn text(mut schema: schemars::schema::RootSchema, id: &str) -> String {
    schema.schema.metadata().id = Some(id.to_string());
    // A schema is plain data; serialising it cannot fail.
    let mut t = serde_json::to_string_pretty(&schema).unwrap_or_default();
    t.push('\n');
    t
}

/// The spec schema as pretty JSON with a trailing newline, exactly as checked in.
pub fn spec_v1_text() -> String {
    text(schemars::schema_for!(Spec), SPEC_SCHEMA_ID)
}

/// The manifest schema as pretty JSON with a trailing newline, exactly as checked in.
pub fn manifest_v1_text() -> String {
    text(schemars::schema_for!(Manifest), MANIFEST_SCHEMA_ID)
}
