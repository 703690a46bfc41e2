//! `build-image --outdated`, against a local Debian repository made here (no network: two
//! versions of one package cannot be relied on in Debian's archive): a `main` repository
//! with fta 1.0 and 1.1 and ftc 1.0, a `bookworm-security` one with ftc 2.0, both served as
//! file: sources through `IMAGE_BUILDER_APT_SOURCES`, read with the builder's private apt
//! state (its own cache directory). A lock pinned at the 1.0s is reported behind on both,
//! ftc marked as a security update (exit status 3); a lock at the newest versions is current
//! (0); sources that cannot be reached give exit status 4 and say so, never "up to date".
//! Needs dpkg-deb and dpkg-scanpackages (dpkg-dev); a second or two (the test below: two
//! image builds, 35-50 s on 2 shared cores).
//!
//! And a real package change: the DNS image's packages (its checked-in lock's `.debs`, from
//! the builder's cache) as a local repository, the image built from it, then dnsmasq-base
//! rebuilt with a newer version (`dpkg-deb -R`, the version bumped, `dpkg-deb --build`) in
//! its `bookworm-security` suite: `--outdated` on the old image says it is behind (3,
//! security), and the rebuild with `--update-lock --changes-from OLD` names dnsmasq-base with
//! both versions and nothing else; the new image is current (0). Only file: sources.

mod common;
mod repo;

use e2e::TempDir;
use repo::Repo;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Output};

fn lock(entries: &[(&str, &str, &str)]) -> Value {
    json!({
        "lock_version": 1,
        "requested": ["fta", "ftc"],
        "packages": entries.iter().map(|(p, v, sha)| json!({
            "package": p, "version": v, "architecture": "amd64", "source": p, "sha256": sha
        })).collect::<Vec<_>>(),
    })
}

/// `build-image x.json --lock LOCK --outdated --json` with `sources` and the cache `cache`.
fn outdated(dir: &Path, lock: &Value, sources: &Path, cache: &str) -> Output {
    let path = dir.join("test.lock.json");
    std::fs::write(&path, lock.to_string()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_build-image"))
        .arg(dir.join("test.json"))
        .arg("--lock")
        .arg(&path)
        .arg("--cache-dir")
        .arg(dir.join(cache))
        .args(["--outdated", "--json"])
        .env("IMAGE_BUILDER_APT_SOURCES", sources)
        .output()
        .expect("build-image")
}

#[test]
fn a_lock_behind_the_archive_is_reported_and_an_unreachable_archive_is_not_up_to_date() {
    let dir = TempDir::new("outdated").unwrap();
    let mut repo = Repo::new(dir.path());
    let a10 = repo.add("main", "fta", "1.0");
    let a11 = repo.add("main", "fta", "1.1");
    let c10 = repo.add("main", "ftc", "1.0");
    let c20 = repo.add("sec/bookworm-security", "ftc", "2.0");
    let sources = repo.sources();

    let old = lock(&[("fta", "1.0", &a10), ("ftc", "1.0", &c10)]);
    let o = outdated(dir.path(), &old, &sources, "cache");
    let text = format!("{o:?}");
    assert_eq!(o.status.code(), Some(3), "{text}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let behind = v["behind"].as_array().unwrap();
    let row = |p: &str| behind.iter().find(|b| b["package"] == p).cloned();
    let a = row("fta").unwrap_or_else(|| panic!("fta not behind: {text}"));
    assert_eq!(
        (a["locked"].as_str(), a["candidate"].as_str()),
        (Some("1.0"), Some("1.1"))
    );
    assert_eq!(a["security"], false, "{text}");
    let c = row("ftc").unwrap_or_else(|| panic!("ftc not behind: {text}"));
    assert_eq!(c["candidate"], "2.0", "{text}");
    assert_eq!(c["security"], true, "{text}");

    let new = lock(&[("fta", "1.1", &a11), ("ftc", "2.0", &c20)]);
    let o = outdated(dir.path(), &new, &sources, "cache");
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["behind"], json!([]), "{o:?}");

    // The same lock and cache, the archive gone: the lists of the runs above are still in the
    // cache, yet apt's failure to fetch is what counts.
    let gone = repo.unreachable();
    let o = outdated(dir.path(), &old, &gone, "cache");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(4), "{o:?}");
    assert!(err.contains("the archive cannot be reached"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "nothing on stdout when nothing is known: {o:?}"
    );
}

/// build-image with `args`, the repository's `sources` and the test's own cache.
fn builder(dir: &Path, sources: &Path, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_build-image"))
        .args(args)
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .env("IMAGE_BUILDER_APT_SOURCES", sources)
        .output()
        .expect("build-image")
}

fn said(o: &Output) -> String {
    format!(
        "{}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Builds `recipe` into `out` with the lock resolved on the repository as it is now.
fn rebuild(
    dir: &Path,
    sources: &Path,
    recipe: &Path,
    out: &Path,
    changes_from: Option<&Path>,
) -> Output {
    let init = common::init();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        recipe.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--update-lock".as_ref(),
        "--init".as_ref(),
        init.as_os_str(),
    ];
    if let Some(old) = changes_from {
        args.extend(["--changes-from".as_ref(), old.as_os_str()]);
    }
    let o = builder(dir, sources, &args);
    assert!(
        o.status.success(),
        "building {}: {}",
        out.display(),
        said(&o)
    );
    o
}

#[test]
fn a_real_package_change_is_behind_and_named_by_changes_from() {
    let dir = TempDir::new("changes-from").unwrap();
    let (debs, old_version, dnsmasq) = common::dns_debs(dir.path());
    let mut repo = Repo::new(&dir.join("repo"));
    repo.add_debs("main", &debs);
    let recipe = dir.join("dns.json");
    std::fs::copy(common::recipes_dir().join("dns.json"), &recipe).unwrap();
    let old = dir.join("old.img");
    rebuild(dir.path(), &repo.sources(), &recipe, &old, None);

    let new_version = format!("{old_version}+fleet1");
    let new_deb = dir.join(format!("dnsmasq-base_{new_version}_amd64.deb"));
    repo::rebuilt_with_version(&dnsmasq, &new_version, &new_deb);
    repo.add_debs("bookworm-security", &[new_deb]);
    let sources = repo.sources();

    let o = builder(
        dir.path(),
        &sources,
        &[old.as_os_str(), "--outdated".as_ref(), "--json".as_ref()],
    );
    assert_eq!(o.status.code(), Some(3), "{}", said(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let behind = v["behind"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", said(&o)));
    assert_eq!(behind.len(), 1, "only dnsmasq-base changed: {}", said(&o));
    assert_eq!(
        (behind[0]["package"].as_str(), behind[0]["locked"].as_str()),
        (Some("dnsmasq-base"), Some(old_version.as_str()))
    );
    assert_eq!(behind[0]["candidate"], new_version.as_str());
    assert_eq!(behind[0]["security"], true, "{}", said(&o));

    let new = dir.join("new.img");
    let o = rebuild(dir.path(), &sources, &recipe, &new, Some(&old));
    let text = said(&o);
    assert!(
        text.contains("build-image: 1 package change(s) from "),
        "{text}"
    );
    let line = format!("{:<24} {old_version} -> {new_version}", "dnsmasq-base");
    assert!(
        text.lines().any(|l| l.trim() == line),
        "no line '{line}': {text}"
    );
    let sbom: Value =
        serde_json::from_slice(&std::fs::read(dir.join("new.img.spdx.json")).unwrap()).unwrap();
    let in_image = sbom["packages"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "dnsmasq-base"))
        .map(|p| p["versionInfo"].clone());
    assert_eq!(in_image, Some(json!(new_version)), "the new image's SBOM");

    let o = builder(
        dir.path(),
        &sources,
        &[new.as_os_str(), "--outdated".as_ref()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
}
