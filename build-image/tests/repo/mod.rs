//! A local Debian repository for the tests of `--outdated` and `--changes-from` (`outdated`,
//! `fleet_update`, `auto_update`): flat file: repositories, one per suite directory, of empty
//! packages built here with dpkg-deb or real ones (from the builder's cache, or one of them
//! rebuilt with another version), indexed with dpkg-scanpackages, and the sources.list that names them (handed to the
//! builder as `IMAGE_BUILDER_APT_SOURCES`). Needs dpkg-deb and dpkg-scanpackages (dpkg-dev).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[derive(Debug)]
pub struct Repo {
    dir: PathBuf,
    suites: Vec<String>,
}

impl Repo {
    pub fn new(dir: &Path) -> Repo {
        Repo {
            dir: dir.to_path_buf(),
            suites: Vec::new(),
        }
    }

    /// Builds an empty package `name` `version` into the suite directory `suite` (a name with
    /// `-security` in it makes a security suite) and indexes it; returns the `.deb`'s SHA-256.
    pub fn add(&mut self, suite: &str, name: &str, version: &str) -> String {
        let dir = self.dir.join(suite);
        std::fs::create_dir_all(&dir).unwrap();
        if !self.suites.iter().any(|s| s == suite) {
            self.suites.push(suite.to_string());
        }
        let sha = deb(&dir, name, version);
        index(&dir);
        sha
    }

    /// Puts real `.deb` files into the suite directory `suite` (hard links where the file
    /// system allows, else copies) and indexes it once.
    pub fn add_debs(&mut self, suite: &str, debs: &[PathBuf]) {
        let dir = self.dir.join(suite);
        std::fs::create_dir_all(&dir).unwrap();
        if !self.suites.iter().any(|s| s == suite) {
            self.suites.push(suite.to_string());
        }
        for d in debs {
            let to = dir.join(d.file_name().unwrap());
            if std::fs::hard_link(d, &to).is_err() {
                std::fs::copy(d, &to).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
            }
        }
        index(&dir);
    }

    /// A sources.list of every suite, written into the repository's directory.
    pub fn sources(&self) -> PathBuf {
        let text: String = self
            .suites
            .iter()
            .map(|s| format!("deb [trusted=yes] file:{} ./\n", self.dir.join(s).display()))
            .collect();
        let path = self.dir.join("sources.list");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// A sources.list naming a repository that is not there (an archive out of reach).
    pub fn unreachable(&self) -> PathBuf {
        let path = self.dir.join("gone.list");
        let text = format!("deb [trusted=yes] file:{}/nowhere ./\n", self.dir.display());
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// The suite directory's `Packages` index (dpkg-scanpackages, every `.deb` in it).
fn index(dir: &Path) {
    let o = run(Command::new("dpkg-scanpackages")
        .args(["-m", "."])
        .current_dir(dir));
    std::fs::write(dir.join("Packages"), o.stdout).unwrap();
}

/// The real package `deb` again with `version` as its version (its files and maintainer
/// scripts as they were): unpacked with `dpkg-deb -R`, the control file's `Version:` changed,
/// packed with `dpkg-deb --build` into `out`, a new `.deb` as a rebuild in the archive is.
pub fn rebuilt_with_version(deb: &Path, version: &str, out: &Path) {
    let root = out.with_extension("root");
    run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&root));
    let control = root.join("DEBIAN/control");
    let text = std::fs::read_to_string(&control).unwrap();
    let changed: String = text
        .lines()
        .map(|l| match l.starts_with("Version: ") {
            true => format!("Version: {version}\n"),
            false => format!("{l}\n"),
        })
        .collect();
    assert_ne!(text, changed, "{}: no Version: line", control.display());
    std::fs::write(&control, changed).unwrap();
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(out));
    std::fs::remove_dir_all(&root).unwrap();
}

/// Builds an empty package into `dir`; returns its SHA-256.
fn deb(dir: &Path, name: &str, version: &str) -> String {
    let root = dir.join(format!("{name}-{version}.root"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n\
             Maintainer: test <test@example.org>\nDescription: outdated test\n"
        ),
    )
    .unwrap();
    let file = dir.join(format!("{name}_{version}_amd64.deb"));
    run(Command::new("dpkg-deb")
        .arg("--build")
        .arg(&root)
        .arg(&file));
    std::fs::remove_dir_all(&root).unwrap();
    use sha2::Digest;
    sha2::Sha256::digest(std::fs::read(&file).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn run(c: &mut Command) -> Output {
    let o = c
        .output()
        .unwrap_or_else(|e| panic!("{c:?}: {e} (scripts/setup installs dpkg-dev)"));
    assert!(
        o.status.success(),
        "{c:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}
