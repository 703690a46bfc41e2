//! appliance: what one appliance is, above the host contract and below the programs that
//! launch and build it.
//!
//! The operator writes a spec ([`spec`]); the image builder ships a manifest beside the image
//! ([`manifest`]); a spec's image may also be an OCI image ([`image_ref`]); [`merge`] turns
//! both into a host contract. [`schema`] gives the JSON Schemas of the spec and the manifest;
//! [`signed`] the one digest an image and its manifest are signed by; [`netpolicy`] an
//! appliance's network policy (nftables rules) from its spec and manifest. Pure: no I/O, nothing of
//! the host (paths are not
//! resolved, files are not read, `upgrade`'s pin record is host-launch's business); the
//! callers read the files and hand the bytes in.
//!
//! [`class`] knows the appliance classes (one standard interface per kind of server) and
//! checks a spec's class inputs, an image's class claims and an upgrade's classes.
//!
//! Used by host-launch (which re-exports the modules under its old paths) and by the image
//! builder (`build-image/`), which therefore does not depend on host-launch.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

pub mod class;
pub mod image_ref;
pub mod manifest;
pub mod merge;
pub mod netpolicy;
pub mod schema;
pub mod signed;
pub mod spec;
