//! Images from Debian's archive (root for the boot; the network to the archive on a cold
//! package cache):
//!
//! - an image for a server this host does not have installed (mini-httpd, `tests/lab/`) is
//!   built from the archive with its checked-in lock, carries its SBOM and dpkg status
//!   entries, boots under `host-launch run` and serves its page to `curl`;
//! - the SBOM lists every package the image took files from, as the lock has them, and
//!   validates against the vendored SPDX 2.3 JSON Schema (which rejects a broken one);
//! - a locked version the archive no longer offers is refused naming the package, and
//!   `update_lock` (`--update-lock`) locks what the archive has instead;
//! - an archive that cannot be reached (a file: source that does not exist, an empty
//!   cache) makes `build-image` exit 4 naming the archive, whether it resolves a new lock or
//!   fetches a locked one, and writes nothing; a missing recipe still exits 2 (no network:
//!   a second).

mod common;
mod lab;

use build_image::lock;
use e2e::TempDir;
use lab::Lab;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn lab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/lab")
}

#[test]
fn an_image_for_a_server_the_host_does_not_have_boots_and_answers() {
    let status = Command::new("dpkg-query")
        .args(["-W", "-f=${db:Status-Status}", "mini-httpd"])
        .output()
        .expect("dpkg-query");
    assert!(
        status.stdout != b"installed" && !Path::new("/usr/sbin/mini_httpd").exists(),
        "mini-httpd is installed on this host, so this test cannot show that images come from \
         the archive; remove it (apt-get purge mini-httpd) to run it"
    );
    let lab = Lab::new("archive", None);
    let recipe: Value =
        serde_json::from_slice(&std::fs::read(lab_dir().join("mini-httpd.json")).unwrap()).unwrap();
    let image = lab.build_locked(&recipe, &lab_dir().join("mini-httpd.lock.json"));
    let sbom = common::debugfs(&image, "cat /usr/share/sbom/image.spdx.json");
    let sbom: Value = serde_json::from_str(&sbom).expect("the SBOM in the image");
    assert!(
        sbom["packages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "mini-httpd"),
        "{sbom:#}"
    );
    let entry = common::debugfs(&image, "cat /var/lib/dpkg/status.d/mini-httpd");
    assert!(
        entry.starts_with("Package: mini-httpd\nStatus: install ok installed\n"),
        "{entry}"
    );
    let tap = format!("tmh{}", std::process::id() % 100_000);
    let spec = json!({
        "name": "mh1", "image": image, "memory_mib": 48,
        "network": lab.network(&tap, "192.0.2.80"),
    });
    let run = lab.run_appliance(&spec);
    let page = lab.run(&[
        "curl",
        "-sS",
        "--max-time",
        "10",
        "http://192.0.2.80/index.html",
    ]);
    assert_eq!(page, "served by mini_httpd from the archive\n");
    drop(run);
}

#[test]
fn the_sbom_lists_the_packages_and_validates_against_its_schema() {
    let dir = TempDir::new("img-sbom").unwrap();
    let built = common::build("dns", dir.path());
    let text = std::fs::read(&built.sbom).unwrap();
    let doc: Value = serde_json::from_slice(&text).unwrap();
    // The same document is in the image.
    let inside = common::debugfs(&built.image, "cat /usr/share/sbom/image.spdx.json");
    assert_eq!(inside.as_bytes(), text.as_slice());
    let schema_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/vendor/spdx-2.3.schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(schema_path).unwrap()).unwrap();
    let compiled = jsonschema::JSONSchema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .compile(&schema)
        .expect("the SPDX 2.3 schema compiles");
    if let Err(errors) = compiled.validate(&doc) {
        let e: Vec<String> = errors
            .map(|e| format!("{}: {e}", e.instance_path))
            .collect();
        panic!("the SBOM does not validate: {e:#?}");
    }
    // The schema can say no: a package without its SPDXID, a checksum of an unknown kind.
    let mut broken = doc.clone();
    broken["packages"][0]
        .as_object_mut()
        .unwrap()
        .remove("SPDXID");
    broken["packages"][1]["checksums"][0]["algorithm"] = "CRC32".into();
    assert!(!compiled.is_valid(&broken));
    // Every package in it is locked, with the lock's version, source and SHA-256; dnsmasq's
    // own package and libc are there; each has its dpkg status entry.
    let l = lock::parse(&std::fs::read(common::lock("dns")).unwrap()).unwrap();
    let pkgs = doc["packages"].as_array().unwrap();
    assert_eq!(pkgs.len(), built.packages.len());
    for p in pkgs {
        let name = p["name"].as_str().unwrap();
        let locked = l.packages.iter().find(|x| x.package == name).expect(name);
        assert_eq!(p["versionInfo"], locked.version.as_str());
        assert_eq!(p["checksums"][0]["checksumValue"], locked.sha256.as_str());
        assert!(p["sourceInfo"].as_str().unwrap().ends_with(&locked.source));
        assert!(!p["licenseDeclared"].as_str().unwrap().is_empty());
        let entry = common::debugfs(&built.image, &format!("cat /var/lib/dpkg/status.d/{name}"));
        assert!(
            entry.starts_with(&format!("Package: {name}\nStatus: install ok installed\n"))
                && entry.contains(&format!("\nVersion: {}\n", locked.version)),
            "{name}: {entry}"
        );
    }
    let names: Vec<&str> = pkgs.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"dnsmasq-base") && names.contains(&"libc6"),
        "{names:?}"
    );
    let dnsmasq = pkgs.iter().find(|p| p["name"] == "dnsmasq-base").unwrap();
    assert_eq!(dnsmasq["licenseDeclared"], "(GPL-2.0-only OR GPL-3.0-only)");
}

#[test]
fn a_locked_version_the_archive_no_longer_has_is_refused_by_name() {
    let dir = TempDir::new("img-stale-lock").unwrap();
    let mut l = lock::parse(&std::fs::read(common::lock("dns")).unwrap()).unwrap();
    let p = l
        .packages
        .iter_mut()
        .find(|p| p.package == "dnsmasq-base")
        .unwrap();
    let real = p.version.clone();
    p.version = "2.0-0".into();
    p.sha256 = "0".repeat(64);
    let stale = dir.join("dns.lock.json");
    std::fs::write(&stale, l.to_text()).unwrap();
    let out = dir.join("dns.img");
    let mut o = common::options(&out);
    o.lock = Some(stale.clone());
    let e = build_image::build(&common::recipe("dns"), &o).expect_err("a stale lock must fail");
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "{}: package dnsmasq-base version 2.0-0 is no longer in the archive (it offers {real}",
            stale.display()
        )) && text.contains("--update-lock"),
        "{text}"
    );
    assert!(!out.exists(), "a failed build wrote the image");
    // Asked to update the lock, the build locks what the archive has.
    o.update_lock = true;
    build_image::build(&common::recipe("dns"), &o).unwrap();
    let updated = lock::parse(&std::fs::read(&stale).unwrap()).unwrap();
    let p = updated
        .packages
        .iter()
        .find(|p| p.package == "dnsmasq-base")
        .unwrap();
    assert_eq!(p.version, real);
    // A recipe that asks for more than its lock has is refused too.
    let mut r = common::recipe("dns");
    r.packages.push("unbound".into());
    o.update_lock = false;
    let e = build_image::build(&r, &o).expect_err("the lock does not cover the recipe");
    assert!(e.to_string().contains("rebuild with --update-lock"), "{e}");
}

/// `build-image RECIPE -o IMAGE --lock LOCK` with a fresh cache in `dir` and apt's sources
/// `sources`.
fn build_image_cli(dir: &Path, recipe: &Path, lock: &Path, sources: &Path) -> Output {
    let init = dir.join("init");
    std::fs::write(&init, b"not reached").unwrap();
    Command::new(env!("CARGO_BIN_EXE_build-image"))
        .arg(recipe)
        .arg("-o")
        .arg(dir.join("out.img"))
        .arg("--lock")
        .arg(lock)
        .arg("--init")
        .arg(&init)
        .arg("--cache-dir")
        .arg(dir.join("fresh-cache"))
        .env("IMAGE_BUILDER_APT_SOURCES", sources)
        .output()
        .expect("build-image")
}

#[test]
fn an_unreachable_archive_exits_4_and_a_missing_recipe_still_exits_2() {
    let dir = TempDir::new("unreachable").unwrap();
    let sources = dir.path().join("gone.list");
    let nowhere = dir.path().join("nowhere");
    std::fs::write(
        &sources,
        format!("deb [trusted=yes] file:{} ./\n", nowhere.display()),
    )
    .unwrap();
    let recipes = Path::new(env!("CARGO_MANIFEST_DIR")).join("recipes");
    let recipe = dir.path().join("dns.json");
    std::fs::copy(recipes.join("dns.json"), &recipe).unwrap();
    let new_lock = dir.path().join("new.lock.json");
    let locked = dir.path().join("dns.lock.json");
    std::fs::copy(recipes.join("dns.lock.json"), &locked).unwrap();

    // No lock: resolving needs the indexes. A lock: fetching needs the .debs.
    for lock in [&new_lock, &locked] {
        let o = build_image_cli(dir.path(), &recipe, lock, &sources);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(4), "lock {}: {o:?}", lock.display());
        assert!(err.contains("the archive cannot be reached"), "{err}");
        assert!(
            err.contains(&sources.display().to_string()),
            "the message names the sources: {err}"
        );
        assert!(!dir.path().join("out.img").exists(), "{err}");
        assert!(!new_lock.exists(), "no lock written: {err}");
    }

    let o = build_image_cli(
        dir.path(),
        &dir.path().join("none.json"),
        &new_lock,
        &sources,
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("none.json"),
        "{o:?}"
    );
}
