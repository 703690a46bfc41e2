//! Building images: clear errors before anything is written, byte-identical rebuilds, and
//! every program's shared-library closure present in the image.

mod common;

use build_image::{build, parse, Recipe};
use common::{debugfs, ls, options, sha256};
use e2e::TempDir;
use rootfs::elf;
use std::collections::BTreeSet;
use std::path::Path;

fn recipe_for(program: &str, packages: &[&str]) -> Recipe {
    let text = serde_json::json!({
        "recipe_version": 1,
        "name": "t",
        "packages": packages,
        "programs": [program],
        "ipv6": false,
        "manifest": { "contract_version": 1, "service": { "argv": [program] } }
    });
    parse(text.to_string().as_bytes()).unwrap()
}

/// The directory holds nothing but what the test put there.
#[track_caller]
fn assert_nothing_written(dir: &Path, expected: &[&str]) {
    let names: BTreeSet<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
    assert_eq!(names, expected, "the failed build left files behind");
}

#[test]
fn missing_program_fails_before_writing() {
    let dir = TempDir::new("img-noprog").unwrap();
    let out = dir.join("x.img");
    let e = build(
        &recipe_for("/usr/sbin/no-such-daemon", &["coreutils"]),
        &options(&out),
    )
    .expect_err("a missing program must fail");
    let text = e.to_string();
    assert!(
        text.contains(
            "/usr/sbin/no-such-daemon: no such file in the recipe's packages as unpacked from \
             the archive"
        ) && text.contains("apt-file search no-such-daemon"),
        "{text}"
    );
    assert_nothing_written(dir.path(), &[]);
}

#[test]
fn missing_package_fails_before_writing() {
    let dir = TempDir::new("img-nopkg").unwrap();
    let out = dir.join("x.img");
    let r = recipe_for("/bin/true", &["coreutils", "no-such-package-zz9"]);
    let e = build(&r, &options(&out)).expect_err("a package the archive lacks must fail");
    let text = e.to_string();
    assert!(
        text.starts_with("apt cannot resolve the packages coreutils, no-such-package-zz9:")
            && text.contains("Unable to locate package no-such-package-zz9"),
        "{text}"
    );
    assert_nothing_written(dir.path(), &[]);
}

/// A copy of /bin/true whose `libc.so.6` dependency is renamed `libq.so.6` (same length, so
/// the ELF stays valid): a library no search path has.
#[test]
fn missing_library_fails_before_writing() {
    let dir = TempDir::new("img-nolib").unwrap();
    let mut bytes = std::fs::read("/bin/true").unwrap();
    let (from, to) = (b"libc.so.6", b"libq.so.6");
    let at: Vec<usize> = bytes
        .windows(from.len())
        .enumerate()
        .filter(|(_, w)| w == from)
        .map(|(i, _)| i)
        .collect();
    assert!(!at.is_empty());
    for i in at {
        bytes[i..i + to.len()].copy_from_slice(to);
    }
    // The closure is looked up under a root (the builder's staging root): this one holds
    // only the program.
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::write(dir.join("bin/badtrue"), &bytes).unwrap();
    assert!(elf::parse(&bytes)
        .unwrap()
        .needed
        .contains(&"libq.so.6".into()));
    let e = rootfs::closure::resolve(
        &[("/bin/badtrue".into(), rootfs::closure::Root::Program)],
        dir.path(),
    )
    .expect_err("a missing library must fail");
    assert!(
        e.iter().any(|l| l.starts_with(
            "library libq.so.6 needed by /bin/badtrue not found in /lib/x86_64-linux-gnu"
        )),
        "{e:#?}"
    );
    // The loader is looked for under the root too, never on the host.
    assert!(
        e.iter()
            .any(|l| l
                .starts_with("/lib64/ld-linux-x86-64.so.2 (needed by /bin/badtrue): cannot read")),
        "{e:#?}"
    );
}

#[test]
fn unreadable_init_and_conflicting_entries_are_reported_together() {
    let dir = TempDir::new("img-conflict").unwrap();
    let out = dir.join("x.img");
    let text = serde_json::json!({
        "recipe_version": 1, "name": "t", "packages": ["coreutils"], "programs": ["/bin/true"],
        "ipv6": false,
        "files": [
            {"path": "/lib/x86_64-linux-gnu/libc.so.6", "content": "not libc"},
            {"path": "/etc/x/y", "content": ""}
        ],
        "symlinks": [{"path": "/etc/x", "target": "/run/x"}],
        "manifest": { "contract_version": 1, "service": { "argv": ["/bin/true"] } }
    });
    let r = parse(text.to_string().as_bytes()).unwrap();
    let mut o = options(&out);
    o.init = dir.join("no-init");
    let e = build(&r, &o).expect_err("must fail").0;
    let has = |s: &str| e.iter().any(|l| l.contains(s));
    assert!(has("--init"), "{e:#?}");
    assert!(
        has(
            "files[0]: /lib/x86_64-linux-gnu/libc.so.6 is already provided by library of /bin/true"
        ),
        "{e:#?}"
    );
    assert!(
        has("/etc/x/y is below /etc/x, which symlinks[0] makes a file or symlink"),
        "{e:#?}"
    );
    assert_nothing_written(dir.path(), &[]);
}

#[test]
fn two_builds_from_one_lock_are_byte_identical() {
    let dir = TempDir::new("img-repro").unwrap();
    let a = common::build("dns", &dir.join("a").tap_mkdir());
    // The second build from the same lock starts from an empty package cache: apt's own
    // lists and the .deb files downloaded again give the same bytes.
    let mut o = options(&dir.join("b").tap_mkdir().join("dns.img"));
    o.lock = Some(common::lock("dns"));
    o.cache_dir = dir.join("cold-cache");
    let b = build(&common::recipe("dns"), &o).unwrap();
    assert!(dir.join("cold-cache/debs").read_dir().unwrap().count() > 10);
    assert_eq!(a.size, b.size);
    let (ha, hb) = (sha256(&a.image), sha256(&b.image));
    assert_eq!(ha.len(), 64);
    assert_eq!(ha, hb, "the same lock built twice gave different images");
    assert_eq!(a.digest, b.digest);
    assert_eq!(
        std::fs::read(&a.sbom).unwrap(),
        std::fs::read(&b.sbom).unwrap()
    );
    assert_eq!(
        std::fs::read(&a.manifest).unwrap(),
        std::fs::read(&b.manifest).unwrap()
    );
    // Another time stamp gives another image: the times really are the builder's.
    let mut o = options(&dir.join("c.img"));
    o.lock = Some(common::lock("dns"));
    o.epoch = 1_000_000_000;
    let c = build(&common::recipe("dns"), &o).unwrap();
    assert_ne!(sha256(&c.image), ha);
    let stat = debugfs(&c.image, "stat /usr/sbin/dnsmasq");
    assert!(stat.contains("mtime: 0x3b9aca00"), "{stat}");
    assert!(stat.contains("ctime: 0x3b9aca00"), "{stat}");
}

trait MkDir {
    fn tap_mkdir(self) -> Self;
}

impl MkDir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

/// Every ELF object in the image has each of its DT_NEEDED libraries in the image (where the
/// guest's loader looks), the loader is there, and `ldd` on the host agrees.
#[test]
fn closures_are_complete() {
    let dir = TempDir::new("img-closure").unwrap();
    for name in ["dns", "web", "syslog", "nginx", "syslog-ng"] {
        let r = common::recipe(name);
        let built = common::build(name, dir.path());
        eprintln!("{name}: {} bytes", built.size);
        // The loader's default directories in the image.
        let libdir: BTreeSet<String> = ls(&built.image, "/lib/x86_64-linux-gnu")
            .into_iter()
            .collect();
        let usr: BTreeSet<String> = ls(&built.image, "/usr/lib/x86_64-linux-gnu")
            .into_iter()
            .collect();
        let in_usr = |lib: &str| usr.contains(lib);
        assert!(libdir.contains("libc.so.6"), "{name}: {libdir:?}");
        assert!(
            ls(&built.image, "/lib64").contains(&"ld-linux-x86-64.so.2".to_string()),
            "{name}: no loader"
        );
        let mut objects: Vec<String> = r.programs.clone();
        objects.extend(r.libraries.iter().cloned());
        if r.wants_disk_tools() {
            objects.extend(["/sbin/mke2fs".to_string(), "/sbin/e2fsck".to_string()]);
        }
        let mut queue = objects.clone();
        let mut seen = BTreeSet::new();
        while let Some(obj) = queue.pop() {
            if !seen.insert(obj.clone()) {
                continue;
            }
            // Read the object out of the image, not from the host.
            let copy = dir.join("obj");
            debugfs(&built.image, &format!("dump {obj} {}", copy.display()));
            let bytes = std::fs::read(&copy).unwrap_or_else(|_| panic!("{name}: {obj} missing"));
            let d = elf::parse(&bytes).unwrap();
            for lib in d.needed {
                if lib.starts_with("ld-linux") {
                    continue;
                }
                // A library in a directory of the object's own run path (syslog-ng's
                // /usr/lib/syslog-ng), as the loader finds it.
                let in_runpath = d
                    .runpath
                    .iter()
                    .chain(&d.rpath)
                    .find(|dir| !dir.contains('$') && ls(&built.image, dir).contains(&lib));
                if let Some(dir) = in_runpath {
                    queue.push(format!("{dir}/{lib}"));
                    continue;
                }
                if in_usr(&lib) && !libdir.contains(&lib) {
                    queue.push(format!("/usr/lib/x86_64-linux-gnu/{lib}"));
                    continue;
                }
                assert!(
                    libdir.contains(&lib),
                    "{name}: {lib} (needed by {obj}) is not in /lib/x86_64-linux-gnu or \
                     /usr/lib/x86_64-linux-gnu"
                );
                queue.push(format!("/lib/x86_64-linux-gnu/{lib}"));
            }
        }
        // The plugins are where the program looks for them.
        for lib in &r.libraries {
            let (parent, file) = lib.rsplit_once('/').unwrap();
            assert!(
                ls(&built.image, parent).contains(&file.to_string()),
                "{lib}"
            );
        }
    }
}

#[test]
fn image_layout_and_manifest() {
    let dir = TempDir::new("img-layout").unwrap();
    let built = common::build("syslog", dir.path());
    let root = ls(&built.image, "/");
    for d in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "etc",
        "sbin",
        "data",
        "lib",
        "lost+found",
    ] {
        assert!(root.contains(&d.to_string()), "/{d} missing: {root:?}");
    }
    let sbin = ls(&built.image, "/sbin");
    for f in ["init", "mke2fs", "e2fsck"] {
        assert!(sbin.contains(&f.to_string()), "/sbin/{f} missing: {sbin:?}");
    }
    let modules = ls(&built.image, "/lib/modules");
    assert_eq!(modules.len(), 1, "{modules:?}");
    let release = &modules[0];
    for m in build_image::build::IPV6_MODULES {
        let st = debugfs(&built.image, &format!("stat /lib/modules/{release}/{m}"));
        assert!(st.contains("Type: regular"), "{m}: {st}");
    }
    let etc = debugfs(&built.image, "ls -l /etc");
    assert!(etc.contains("resolv.conf"), "{etc}");
    let link = debugfs(&built.image, "stat /etc/resolv.conf");
    assert!(
        link.contains("Fast link dest: \"/run/resolv.conf\""),
        "{link}"
    );
    let link = debugfs(&built.image, "stat /etc/hosts");
    assert!(link.contains("Fast link dest: \"/run/hosts\""), "{link}");
    let passwd = debugfs(&built.image, "cat /etc/passwd");
    assert!(passwd.starts_with("root:x:0:0:"), "{passwd}");
    let init = debugfs(&built.image, "stat /sbin/init");
    assert!(init.contains("Mode:  0755"), "{init}");
    let tmp = debugfs(&built.image, "stat /tmp");
    assert!(tmp.contains("Mode:  01777"), "{tmp}");
    // The manifest beside the image is what host-launch reads.
    assert_eq!(
        built.manifest,
        Path::new(&format!("{}.manifest.json", built.image.display()))
    );
    let m = appliance::manifest::parse(&std::fs::read(&built.manifest).unwrap()).unwrap();
    assert_eq!(m, common::recipe("syslog").manifest);
}
