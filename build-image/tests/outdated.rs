//! `build-image --outdated`, against a local Debian repository made here (no network: two
//! versions of one package cannot be relied on in Debian's archive): a `main` repository
//! with fta 1.0 and 1.1 and ftc 1.0, a `bookworm-security` one with ftc 2.0, both served as
//! file: sources through `IMAGE_BUILDER_APT_SOURCES`, read with the builder's private apt
//! state (its own cache directory). A lock pinned at the 1.0s is reported behind on both,
//! ftc marked as a security update (exit status 3); a lock at the newest versions is current
//! (0); sources that cannot be reached give exit status 4 and say so, never "up to date".
//! Needs dpkg-deb and dpkg-scanpackages (dpkg-dev); a second or two.

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
