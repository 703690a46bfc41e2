//! Images built from the recipes by `build-image`, as an outside builder would.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `build-image/recipes/NAME.json`.
pub fn recipe_path(name: &str) -> PathBuf {
    e2e::workspace_root().join(format!("build-image/recipes/{name}.json"))
}

/// Builds a recipe (a checked-in one, or a modified copy with the checked-in lock of `lock`).
pub fn build(recipe: &Path, lock: &str, image: &Path) {
    let init = e2e::guest_init().unwrap_or_else(|e| panic!("{e}"));
    let lock = e2e::workspace_root().join(format!("build-image/recipes/{lock}.lock.json"));
    let out = Command::new(e2e::build_host("build-image", "build-image"))
        .arg(recipe)
        .arg("-o")
        .arg(image)
        .arg("--init")
        .arg(init)
        .arg("--lock")
        .arg(lock)
        .output()
        .expect("running build-image");
    assert!(
        out.status.success(),
        "build-image {}: {}",
        recipe.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds `build-image/recipes/NAME.json` with its lock into DIR/NAME.img (and its manifest
/// beside it).
pub fn build_appliance(name: &str, dir: &Path) -> PathBuf {
    let image = dir.join(format!("{name}.img"));
    build(&recipe_path(name), name, &image);
    image
}
