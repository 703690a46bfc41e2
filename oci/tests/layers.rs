//! Reading OCI images back: a crafted two-layer image with whiteouts and an opaque
//! directory, the written image read back unchanged, hostile layers (a path leaving the root,
//! a control character, an entry below a symlink) refused, and each bad image (no label,
//! another architecture, a missing or altered layer) refused with its reason, leaving the
//! cache empty. Needs mkfs.ext4 and debugfs (e2fsprogs) for the cache tests.

use oci::read::{self, Reference};
use oci::types::{self, Config, Descriptor, Index, Manifest, RootFs, RunConfig};
use oci::{apply, cache, Digest};
use rootfs::ext4::{Content, Entry};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A fresh directory under the target's tmp dir.
fn tmp(name: &str) -> PathBuf {
    let d =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("oci-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A tar layer: (path, kind) where kind is a file's content, "dir/", or "-> target".
fn layer(items: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, what) in items {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(1);
        h.set_uid(0);
        h.set_gid(0);
        if *what == "dir/" {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, path, std::io::empty()).unwrap();
        } else if let Some(t) = what.strip_prefix("-> ") {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            b.append_link(&mut h, path, t).unwrap();
        } else {
            h.set_size(what.len() as u64);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, path, what.as_bytes()).unwrap();
        }
    }
    b.into_inner().unwrap()
}

/// A tar whose one entry has the raw name `name` (the tar crate refuses to write `..`).
fn raw_layer(name: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_size(1);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let mut v = h.as_bytes().to_vec();
    v.push(b'x');
    v.resize(1024 + 1024, 0);
    v
}

fn blob(dir: &Path, data: &[u8]) -> Digest {
    let d = Digest::of(data);
    std::fs::write(dir.join("blobs/sha256").join(d.hex()), data).unwrap();
    d
}

fn desc(media: &str, d: Digest, size: usize) -> Descriptor {
    Descriptor {
        media_type: media.into(),
        digest: d,
        size: size as u64,
        annotations: BTreeMap::new(),
        platform: None,
    }
}

/// Writes a layout of `layers` (uncompressed) with `labels`, for `arch`.
fn layout(
    dir: &Path,
    layers: &[Vec<u8>],
    labels: Option<BTreeMap<String, String>>,
    arch: &str,
) -> PathBuf {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let descs: Vec<Descriptor> = layers
        .iter()
        .map(|l| desc(types::MEDIA_LAYER, blob(dir, l), l.len()))
        .collect();
    let config = Config {
        created: None,
        architecture: arch.into(),
        os: "linux".into(),
        config: RunConfig {
            entrypoint: None,
            user: None,
            labels,
        },
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids: layers.iter().map(|l| Digest::of(l)).collect(),
        },
    };
    let c = serde_json::to_vec(&config).unwrap();
    let m = serde_json::to_vec(&Manifest {
        schema_version: 2,
        media_type: Some(types::MEDIA_MANIFEST.into()),
        config: desc(types::MEDIA_CONFIG, blob(dir, &c), c.len()),
        layers: descs,
        annotations: Default::default(),
    })
    .unwrap();
    let index = Index {
        schema_version: 2,
        media_type: None,
        manifests: vec![desc(types::MEDIA_MANIFEST, blob(dir, &m), m.len())],
    };
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    dir.to_path_buf()
}

fn labels() -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([(
        oci::LABEL_MANIFEST.to_string(),
        r#"{"contract_version":1}"#.to_string(),
    )]))
}

fn entries(dir: &Path) -> Result<BTreeMap<String, Entry>, oci::Error> {
    let img = read::open(&Reference::Layout(dir.to_path_buf()), dir)?;
    apply::layers(&img)
}

fn file(root: &BTreeMap<String, Entry>, p: &str) -> Option<String> {
    match &root.get(p)?.content {
        Content::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(format!("{other:?}")),
    }
}

#[test]
fn whiteouts_and_opaque_directories_apply_in_layer_order() {
    let d = tmp("whiteouts");
    let lower = layer(&[
        ("etc/", "dir/"),
        ("etc/a", "a1"),
        ("etc/b", "b1"),
        ("etc/keep", "k"),
        ("opt/", "dir/"),
        ("opt/x", "x"),
        ("opt/sub/", "dir/"),
        ("opt/sub/y", "y"),
        ("gone/", "dir/"),
        ("gone/deep", "d"),
        ("link", "-> etc/a"),
    ]);
    let upper = layer(&[
        ("etc/.wh.a", ""),
        ("etc/b", "b2"),
        ("opt/", "dir/"),
        ("opt/.wh..wh..opq", ""),
        ("opt/z", "z"),
        (".wh.gone", ""),
        ("link", "now a file"),
    ]);
    let root = entries(&layout(&d, &[lower, upper], labels(), "amd64")).unwrap();
    assert_eq!(file(&root, "/etc/a"), None, "whited out");
    assert_eq!(
        file(&root, "/etc/b").as_deref(),
        Some("b2"),
        "replaced by the upper layer"
    );
    assert_eq!(file(&root, "/etc/keep").as_deref(), Some("k"), "untouched");
    assert_eq!(
        file(&root, "/opt/x"),
        None,
        "opaque directory hides the lower layer"
    );
    assert_eq!(file(&root, "/opt/sub/y"), None);
    assert!(!root.contains_key("/opt/sub"));
    assert_eq!(
        file(&root, "/opt/z").as_deref(),
        Some("z"),
        "the upper layer's own entry stays"
    );
    assert!(
        !root.contains_key("/gone") && !root.contains_key("/gone/deep"),
        "a whited-out directory goes with its content"
    );
    assert_eq!(file(&root, "/link").as_deref(), Some("now a file"));
    assert!(
        root.keys().all(|k| !k.contains(".wh.")),
        "{:?}",
        root.keys()
    );
}

#[test]
fn a_written_image_reads_back_to_its_entries() {
    let d = tmp("roundtrip");
    let mut src = BTreeMap::new();
    let e = |content, mode, uid| Entry {
        content,
        mode,
        uid,
        gid: uid,
        origin: "t".into(),
    };
    src.insert("/bin".to_string(), e(Content::Dir, 0o755, 0));
    src.insert(
        "/bin/tool".to_string(),
        e(Content::Bytes(b"#!/bin/true\n".to_vec()), 0o4755, 0),
    );
    src.insert("/data".to_string(), e(Content::Dir, 0o700, 101));
    src.insert(
        "/sbin".to_string(),
        e(Content::Symlink("bin".into()), 0o777, 0),
    );
    for gzip in [false, true] {
        let s = oci::write::Source {
            entries: &src,
            manifest_json: r#"{"contract_version":1}"#.into(),
            contract_version: 1,
            entrypoint: vec!["/bin/tool".into()],
            user: "101:102".into(),
            epoch: rootfs::DEFAULT_EPOCH,
            ref_name: "t:latest".into(),
            gzip,
        };
        let img = oci::write::image(&s).unwrap();
        assert_eq!(
            img.manifest,
            oci::write::image(&s).unwrap().manifest,
            "same inputs, same digest"
        );
        let config: Config = serde_json::from_slice(&img.blobs[&img.config]).unwrap();
        assert_eq!(
            config.config.user.as_deref(),
            Some("101:102"),
            "podman's default user"
        );
        let dir = d.join(format!("gz{gzip}"));
        oci::write::write_layout(&img, &dir).unwrap();
        let archive = d.join(format!("gz{gzip}.tar"));
        oci::write::write_archive(&img, &archive, s.epoch).unwrap();
        for r in [Reference::Layout(dir.clone()), Reference::Archive(archive)] {
            let opened = read::open(&r, &d).unwrap();
            assert_eq!(opened.manifest_digest, img.manifest);
            assert_eq!(opened.appliance_manifest, r#"{"contract_version":1}"#);
            let mut got = apply::layers(&opened).unwrap();
            for v in got.values_mut() {
                v.origin = "t".into();
            }
            assert_eq!(got, src, "{r}");
        }
    }
}

#[test]
fn hostile_layers_are_refused() {
    for (name, l, want) in [
        ("dotdot", raw_layer(b"../etc/passwd"), "leaves the root"),
        (
            "control",
            raw_layer(b"a\nrdump / /tmp"),
            "control characters",
        ),
        (
            "below-symlink",
            layer(&[("etc", "-> /tmp"), ("etc/passwd", "x")]),
            "below a file or symlink",
        ),
    ] {
        let d = tmp(name);
        let e = entries(&layout(&d, &[l], labels(), "amd64")).unwrap_err();
        assert!(e.0.contains(want), "{name}: {e}");
    }
}

/// Makes a bad image in a directory.
type Maker<'a> = Box<dyn Fn(&Path) -> Reference + 'a>;

/// Each bad image is refused with its reason by `cache::root`, and the cache stays empty.
#[test]
fn bad_images_are_refused_and_leave_the_cache_empty() {
    let good = || layer(&[("etc/", "dir/"), ("etc/a", "a")]);
    let cases: Vec<(&str, Maker, &str)> = vec![
        (
            "no-label",
            Box::new(|d| Reference::Layout(layout(d, &[good()], None, "amd64"))),
            "has no label org.host-contract.manifest.v1",
        ),
        (
            "arm64",
            Box::new(|d| Reference::Layout(layout(d, &[good()], labels(), "arm64"))),
            "the image is for linux/arm64; appliances run linux/amd64",
        ),
        (
            "missing-layer",
            Box::new(|d| {
                let dir = layout(d, &[good()], labels(), "amd64");
                std::fs::remove_file(dir.join("blobs/sha256").join(Digest::of(&good()).hex()))
                    .unwrap();
                Reference::Layout(dir)
            }),
            "is missing (",
        ),
        (
            "altered-layer",
            Box::new(|d| {
                let dir = layout(d, &[good()], labels(), "amd64");
                let p = dir.join("blobs/sha256").join(Digest::of(&good()).hex());
                let mut b = std::fs::read(&p).unwrap();
                b[600] ^= 1;
                std::fs::write(&p, b).unwrap();
                Reference::Layout(dir)
            }),
            "digest mismatch: the blob is",
        ),
        (
            "corrupt-archive",
            Box::new(|d| {
                std::fs::create_dir_all(d).unwrap();
                let p = d.join("bad.tar");
                std::fs::write(&p, b"this is not a tar archive at all").unwrap();
                Reference::Archive(p)
            }),
            "not a readable oci-archive",
        ),
    ];
    for (name, make, want) in cases {
        let d = tmp(name);
        let r = make(&d.join("image"));
        let c = d.join("cache");
        let e = cache::root(&r, &c).unwrap_err();
        assert!(e.0.contains(want), "{name}: {e}");
        let left: Vec<_> = std::fs::read_dir(&c)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{name}: left in the cache: {left:?}");
    }
}

#[test]
fn the_cache_builds_once() {
    let d = tmp("cache");
    let r = Reference::Layout(layout(
        &d.join("image"),
        &[layer(&[("etc/", "dir/"), ("etc/a", "a")])],
        labels(),
        "amd64",
    ));
    let c = d.join("cache");
    let first = cache::root(&r, &c).unwrap();
    assert!(first.built.is_some());
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let before = ino(&first.image);
    let second = cache::root(&r, &c).unwrap();
    assert!(second.built.is_none(), "the second use builds nothing");
    assert_eq!(
        (second.image.clone(), ino(&second.image)),
        (first.image.clone(), before)
    );
    assert_eq!(second.manifest, br#"{"contract_version":1}"#);
    let names: Vec<_> = std::fs::read_dir(&c)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 1, "one entry, no temporary left: {names:?}");
}

/// Hard links are copies in the root: each counts against the size bound, so a layer of one
/// file and many links to it cannot make the reader hold more than the bound.
#[test]
fn hard_links_count_against_the_size_bound() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_size(1000);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "big", &[7u8; 1000][..]).unwrap();
    for i in 0..5 {
        let mut l = tar::Header::new_gnu();
        l.set_mode(0o644);
        l.set_uid(0);
        l.set_gid(0);
        l.set_mtime(1);
        l.set_size(0);
        l.set_entry_type(tar::EntryType::Link);
        b.append_link(&mut l, format!("link{i}"), "big").unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut root = BTreeMap::new();
    let mut budget = 3500;
    let e = apply::apply_tar(&mut root, &tar[..], &mut budget, 0).unwrap_err();
    assert!(e.0.contains("bytes of files"), "{e}");
    let mut root = BTreeMap::new();
    let mut budget = 6000;
    apply::apply_tar(&mut root, &tar[..], &mut budget, 0).unwrap();
    assert_eq!(
        file(&root, "/link4").as_deref(),
        Some(&*String::from_utf8(vec![7; 1000]).unwrap())
    );
    assert_eq!(budget, 0);
}
