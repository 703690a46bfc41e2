//! Builds `preload/xstate.c` into the shared object that `vmm::preload` gives a dynamically
//! linked UML kernel (see that file for why). The C compiler is the one Rust already links
//! with on Linux (`cc`, or `$CC`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "preload/xstate.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("uml-xstate-preload.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(src)
        .arg("-ldl")
        .status()
        .unwrap_or_else(|e| panic!("running {cc} to build {src}: {e}"));
    assert!(status.success(), "{cc} failed to build {src}: {status}");
}
