//! Signed images (root, ~30 s): the DNS appliance on a data disk, its images signed with a
//! minisign key the lab's trust policy (`HOST_LAUNCH_TRUST`) requires:
//!
//! - a signed image boots, and `check` and `status` show its digest and the key;
//! - one flipped byte in the image, one flipped byte in the manifest, a signature by a key
//!   the host does not trust, and no signature at all are each refused (exit 120, the message
//!   names the file and the fix), by `upgrade` before anything stops (the old image still
//!   answers) and by `start`;
//! - an upgrade to a properly signed image works; under "allow-unsigned" an unsigned image
//!   passes `check`, a tampered signed one is still refused.

mod lab;

use appliance::manifest::path_beside as manifest_path;
use build_image::sign;
use lab::dns::dns_recipe;
use lab::{shown, Lab};
use std::path::{Path, PathBuf};

/// A copy of an image with its manifest (and its signature when `with_sig`) as `name`.
fn copy(lab: &Lab, from: &Path, name: &str, with_sig: bool) -> PathBuf {
    let to = lab.join(name);
    std::fs::copy(from, &to).unwrap();
    std::fs::copy(manifest_path(from), manifest_path(&to)).unwrap();
    if with_sig {
        std::fs::copy(sign::signature_path(from), sign::signature_path(&to)).unwrap();
    }
    to
}

fn flip(path: &Path, at: impl FnOnce(&[u8]) -> usize) {
    let mut b = std::fs::read(path).unwrap();
    let i = at(&b);
    b[i] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

#[test]
fn signed_images_boot_and_tampered_or_unknown_ones_are_refused() {
    let lab = Lab::new("signing", None);
    let v1 = lab.build(&dns_recipe("v1", |_| {}));
    let v2 = lab.build(&dns_recipe("v2", |_| {}));
    let (key, _) = sign::new_key(&lab.join("builder")).unwrap();
    let (other, _) = sign::new_key(&lab.join("other")).unwrap();
    for image in [&v1, &v2] {
        sign::sign(image, &manifest_path(image), &key).unwrap();
    }
    std::fs::write(
        lab.trust_file(),
        r#"{"policy": "require", "keys": ["builder.pub"]}"#,
    )
    .unwrap();
    // The tampered and the unknown.
    let bad_image = copy(&lab, &v2, "bad-image.img", true);
    flip(&bad_image, |b| b.len() / 2);
    let bad_manifest = copy(&lab, &v2, "bad-manifest.img", true);
    // A letter of the description: still valid JSON, so only the signature can tell.
    flip(&manifest_path(&bad_manifest), |b| {
        let t = String::from_utf8_lossy(b);
        t.find("authoritative").unwrap()
    });
    let unknown = copy(&lab, &v2, "unknown.img", false);
    sign::sign(&unknown, &manifest_path(&unknown), &other).unwrap();
    let unsigned = copy(&lab, &v2, "unsigned.img", false);

    let disk = lab.data_disk("data.img");
    let tap = format!("tsg{}", std::process::id() % 100_000);
    let spec = lab.spec("sgdns", &v1, &disk, &tap);
    let spec_s = spec.to_str().unwrap();
    let check = lab.host_launch(&["check", spec_s]);
    let text = shown(&check);
    assert!(check.status.success(), "{text}");
    assert!(
        text.contains("digest:   sha256:")
            && text.contains("(signed, verified with ")
            && text.contains("builder.pub"),
        "{text}"
    );
    lab.start(&spec);
    assert_eq!(lab.version(), "v1");
    let status = shown(&lab.host_launch(&["status", "sgdns"]));
    assert!(status.contains("digest:   sha256:"), "{status}");

    let refusals: [(&Path, &str); 4] = [
        (&bad_image, "changed since they were signed"),
        (&bad_manifest, "changed since they were signed"),
        (&unknown, "signed by a key this host does not trust"),
        (&unsigned, "not signed (no "),
    ];
    for (image, why) in refusals {
        let o = lab.host_launch(&["upgrade", spec_s, "--image", image.to_str().unwrap()]);
        let text = shown(&o);
        assert_eq!(o.status.code(), Some(120), "{}: {text}", image.display());
        assert!(text.contains(why), "{}: {text}", image.display());
        assert!(
            text.contains(image.to_str().unwrap()),
            "names the file: {text}"
        );
        assert_eq!(
            lab.version(),
            "v1",
            "the old image answers after {}",
            image.display()
        );
    }
    // A proper upgrade.
    let o = lab.host_launch(&["upgrade", spec_s, "--image", v2.to_str().unwrap()]);
    assert!(o.status.success(), "{}", shown(&o));
    assert_eq!(lab.version(), "v2");
    lab.stop("sgdns");
    // Booting a tampered image is refused as well.
    let spec_bad = lab.spec("sgbad", &bad_image, &disk, &tap);
    let o = lab.host_launch(&["start", spec_bad.to_str().unwrap(), "--wait-ready", "30"]);
    assert_eq!(o.status.code(), Some(120), "{}", shown(&o));
    // "allow-unsigned": the unsigned image passes, the tampered signed one still does not.
    std::fs::write(
        lab.trust_file(),
        r#"{"policy": "allow-unsigned", "keys": ["builder.pub"]}"#,
    )
    .unwrap();
    let spec_unsigned = lab.spec("sgunsigned", &unsigned, &disk, &tap);
    let o = lab.host_launch(&["check", spec_unsigned.to_str().unwrap()]);
    assert!(o.status.success(), "{}", shown(&o));
    assert!(shown(&o).contains("unsigned; the trust policy allows unsigned images"));
    let o = lab.host_launch(&["check", spec_bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(120), "{}", shown(&o));
}
