//! The unattended update (`host-launch/systemd/host-launch-auto-update` and its timer and
//! service templates), without UML: systemd's own parser accepts the units
//! (`systemd-analyze verify`), and the script's check step decides right against a local
//! repository: an image whose packages are all current changes nothing (0), an archive out of
//! reach fails the run (4) and rebuilds nothing; an image behind a real newer package (a
//! local repository of the DNS image's packages with dnsmasq-base rebuilt at a newer
//! version) is rebuilt with the change shown, rolled out (`host-launch update`, here onto no
//! running appliance: the rollout across a fleet is `fleet_update`'s and, under systemd,
//! `systemd`'s) and CURRENT then points at the new image. The first two a second or two, the
//! rebuild 30-50 s (two image builds).

mod common;
mod repo;

use e2e::TempDir;
use repo::Repo;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

fn units_dir() -> PathBuf {
    e2e::workspace_root().join("host-launch/systemd")
}

#[test]
fn the_timer_and_service_templates_pass_systemd_analyze_verify() {
    let dir = TempDir::new("auto-update-units").unwrap();
    let script = units_dir().join("host-launch-auto-update");
    for unit in [
        "host-launch-auto-update@.service",
        "host-launch-auto-update@.timer",
    ] {
        let text = std::fs::read_to_string(units_dir().join(unit)).unwrap();
        // The checkout's script where the package puts it.
        let text = text.replace(
            "/usr/lib/host-launch/host-launch-auto-update",
            script.to_str().unwrap(),
        );
        std::fs::write(dir.join(unit), text).unwrap();
    }
    for unit in [
        "host-launch-auto-update@dns.service",
        "host-launch-auto-update@dns.timer",
    ] {
        let v = Command::new("systemd-analyze")
            .args(["verify", unit])
            .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.path().display()))
            .output()
            .expect("systemd-analyze (package systemd) must be installed");
        let err = String::from_utf8_lossy(&v.stderr);
        let ours: Vec<&str> = err.lines().filter(|l| l.contains("auto-update")).collect();
        assert!(
            v.status.success() && ours.is_empty(),
            "verify {unit}:\n{err}"
        );
    }
}

/// An image file with an SBOM beside it listing `fta` `version` (all `--outdated` reads).
fn image_with_sbom(dir: &Path, version: &str, sha: &str) -> PathBuf {
    let image = dir.join("app.img");
    std::fs::write(&image, b"not read by the check").unwrap();
    let sbom = json!({"packages": [{
        "name": "fta", "versionInfo": version,
        "checksums": [{"algorithm": "SHA256", "checksumValue": sha}],
        "externalRefs": [{"referenceLocator": format!("pkg:deb/debian/fta@{version}?arch=amd64")}]
    }]});
    std::fs::write(dir.join("app.img.spdx.json"), sbom.to_string()).unwrap();
    image
}

fn auto_update(dir: &Path, sources: &Path) -> std::process::Output {
    auto_update_recipe(dir, sources, &dir.join("app.json"))
}

/// The script on `DIR/app.conf` (RECIPE=`recipe`, CURRENT=DIR/current.img, new images in
/// DIR/images), with the builder and host-launch of this build first on PATH, the test's
/// own cache, state directory and (absent) trust policy.
fn auto_update_recipe(dir: &Path, sources: &Path, recipe: &Path) -> std::process::Output {
    let conf = dir.join("app.conf");
    std::fs::write(
        &conf,
        format!(
            "RECIPE={}\nCURRENT={}/current.img\nIMAGES={}/images\nSETTLE=1\n",
            recipe.display(),
            dir.display(),
            dir.display()
        ),
    )
    .unwrap();
    let builder = Path::new(env!("CARGO_BIN_EXE_build-image"));
    let launcher = e2e::launch::host_launch_exe();
    Command::new(units_dir().join("host-launch-auto-update"))
        .arg(&conf)
        .env("IMAGE_BUILDER_APT_SOURCES", sources)
        .env("IMAGE_BUILDER_CACHE", dir.join("cache"))
        .env("HOST_LAUNCH_STATE_DIR", dir.join("state"))
        .env("HOST_LAUNCH_TRUST", dir.join("trust.json"))
        .env(
            "PATH",
            format!(
                "{}:{}:{}",
                builder.parent().unwrap().display(),
                launcher.parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("host-launch-auto-update")
}

#[test]
fn the_check_step_changes_nothing_when_current_or_unreachable() {
    let dir = TempDir::new("auto-update").unwrap();
    let mut repo = Repo::new(&dir.join("repo"));
    let sha = repo.add("main", "fta", "1.0");
    let image = image_with_sbom(dir.path(), "1.0", &sha);
    std::os::unix::fs::symlink(&image, dir.join("current.img")).unwrap();

    let o = auto_update(dir.path(), &repo.sources());
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(out.contains("up to date; nothing to do"), "{o:?}");

    let o = auto_update(dir.path(), &repo.unreachable());
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    // Its own line says what build-image's exit status 4 means.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.lines().any(|l| l
            .starts_with("auto-update: build-image exit status 4: the archive cannot be reached")),
        "{o:?}"
    );
    let images: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".img"))
        .collect();
    assert_eq!(images.len(), 2, "nothing rebuilt: {images:?}");
}

#[test]
fn an_image_behind_is_rebuilt_with_its_changes_and_current_moves() {
    let dir = TempDir::new("auto-update-rebuild").unwrap();
    std::fs::create_dir_all(dir.join("images")).unwrap();
    let (debs, old_version, dnsmasq) = common::dns_debs(dir.path());
    let mut repo = Repo::new(&dir.join("repo"));
    repo.add_debs("main", &debs);
    let recipe = dir.join("dns.json");
    std::fs::copy(common::recipes_dir().join("dns.json"), &recipe).unwrap();
    let old = dir.join("images/dns-old.img");
    let built = Command::new(env!("CARGO_BIN_EXE_build-image"))
        .arg(&recipe)
        .arg("-o")
        .arg(&old)
        .arg("--update-lock")
        .arg("--init")
        .arg(common::init())
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env("IMAGE_BUILDER_APT_SOURCES", repo.sources())
        .output()
        .expect("build-image");
    assert!(built.status.success(), "{built:?}");
    std::os::unix::fs::symlink(&old, dir.join("current.img")).unwrap();

    let new_version = format!("{old_version}+fleet1");
    let new_deb = dir.join(format!("dnsmasq-base_{new_version}_amd64.deb"));
    repo::rebuilt_with_version(&dnsmasq, &new_version, &new_deb);
    repo.add_debs("bookworm-security", &[new_deb]);

    let o = auto_update_recipe(dir.path(), &repo.sources(), &recipe);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    let change = format!("{:<24} {old_version} -> {new_version}", "dnsmasq-base");
    assert!(
        format!("{out}{err}").lines().any(|l| l.trim() == change),
        "the rebuild shows the change: {out}\n{err}"
    );
    let current = std::fs::read_link(dir.join("current.img")).unwrap();
    assert_ne!(current, old, "{out}\n{err}");
    assert!(
        current.starts_with(dir.join("images")) && current.is_file(),
        "CURRENT points at the new image in IMAGES: {}",
        current.display()
    );
    assert!(
        out.contains(&format!("auto-update: rolled out {}", current.display())),
        "{out}"
    );
}
