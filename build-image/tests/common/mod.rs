//! Helpers shared by the build-image tests.
#![allow(dead_code)]

use build_image::{Built, Options, Recipe};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The checked-in recipe `build-image/recipes/<name>.json`, parsed.
pub fn recipe(name: &str) -> Recipe {
    let path = recipes_dir().join(format!("{name}.json"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    build_image::parse(&text).unwrap_or_else(|e| panic!("{name}: {e:#?}"))
}

pub fn recipes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes")
}

/// The static guest-init (built once per test process).
pub fn init() -> PathBuf {
    e2e::guest_init().unwrap_or_else(|e| panic!("building guest-init: {e}"))
}

pub fn options(output: &Path) -> Options {
    let mut o = Options::new(output, init());
    o.base_dir = recipes_dir();
    o
}

/// The checked-in lock of a checked-in recipe.
pub fn lock(name: &str) -> PathBuf {
    recipes_dir().join(format!("{name}.lock.json"))
}

/// Builds a checked-in recipe into `dir/<name>.img` with its checked-in lock.
pub fn build(name: &str, dir: &Path) -> Built {
    let out = dir.join(format!("{name}.img"));
    let mut o = options(&out);
    o.lock = Some(lock(name));
    build_image::build(&recipe(name), &o).unwrap_or_else(|e| panic!("building {name}: {e}"))
}

/// Runs debugfs `request` on `image` and returns its standard output.
pub fn debugfs(image: &Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", request])
        .arg(image)
        .output()
        .expect("running debugfs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The names in one directory of the image.
pub fn ls(image: &Path, dir: &str) -> Vec<String> {
    debugfs(image, &format!("ls -p {dir}"))
        .lines()
        .filter_map(|l| l.split('/').nth(5).map(str::to_string))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .collect()
}

/// SHA-256 of a file (coreutils' sha256sum).
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The `.deb` files of the DNS recipe's checked-in lock, from the builder's cache (filled
/// by building the image with that lock when it is cold, as every image test does); and the
/// locked version of dnsmasq-base with its file.
pub fn dns_debs(dir: &Path) -> (Vec<PathBuf>, String, PathBuf) {
    let lock: Value = serde_json::from_slice(&std::fs::read(lock("dns")).unwrap()).unwrap();
    let packages = lock["packages"].as_array().expect("packages").clone();
    let cache = build_image::archive::default_cache_dir().join("debs");
    let file = |p: &Value| cache.join(format!("{}.deb", p["sha256"].as_str().unwrap()));
    if !packages.iter().all(|p| file(p).is_file()) {
        build("dns", dir);
    }
    let dnsmasq = packages
        .iter()
        .find(|p| p["package"] == "dnsmasq-base")
        .expect("dnsmasq-base in the DNS lock");
    let version = dnsmasq["version"].as_str().unwrap().to_string();
    (packages.iter().map(file).collect(), version, file(dnsmasq))
}
