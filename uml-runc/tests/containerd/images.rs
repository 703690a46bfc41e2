//! The images the CRI and ctr tests import into containerd, each an OCI archive made here (no
//! registry is reachable): the sandbox image, our DNS appliance (the image builder's
//! `--oci-archive`) and the foreign lighttpd image (podman's build, `podman save`).

use super::Containerd;
use crate::lab::{path_str, Lab};
use std::process::Command;

/// The DNS appliance's name once imported (its archive's index names it so).
pub const DNS: &str = "localhost/dns:latest";
/// The foreign image's.
pub const FOREIGN: &str = "localhost/web-foreign:latest";

/// The sandbox ("pause") image: a static busybox whose entrypoint sleeps, which is what a
/// pause container does under runc. uml-runc runs none of it (a sandbox container gets a
/// placeholder process and no VM), but the CRI unpacks and names it as any image.
pub fn import_sandbox(lab: &Lab, c: &Containerd) {
    let root = lab.join("pause-root");
    std::fs::create_dir_all(root.join("bin")).expect("the pause root");
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("/bin/busybox (busybox-static, scripts/setup installs it)");
    let tar = lab.join("pause.tar");
    let out = Command::new("tar")
        .args(["-C", path_str(&root), "-cf", path_str(&tar), "."])
        .output()
        .expect("tar");
    assert!(out.status.success(), "tar of the pause root failed");
    lab.podman_ok(&[
        "import",
        "--change",
        r#"ENTRYPOINT ["/bin/busybox", "sleep", "2147483647"]"#,
        path_str(&tar),
        super::config::SANDBOX_IMAGE,
    ]);
    save_and_import(lab, c, super::config::SANDBOX_IMAGE, "pause.oci.tar");
}

/// Builds our DNS image and imports it as [`DNS`], through podman's `load` and `save` as
/// the foreign image: the image builder's archive names it `dns:latest` in its index, which
/// ctr keeps as it is and the CRI then reads as `docker.io/library/dns:latest`; podman names
/// it `localhost/dns:latest`, as a registry's image has a full name.
pub fn import_dns(lab: &Lab, c: &Containerd) {
    lab.load_dns_image();
    save_and_import(lab, c, DNS, "dns-saved.oci.tar");
}

/// Builds our image of recipe `recipe` and imports it, as [`import_dns`] does; its name,
/// `localhost/RECIPE:latest`.
pub fn import_ours(lab: &Lab, c: &Containerd, recipe: &str) -> String {
    let image = lab.load_image(recipe);
    save_and_import(lab, c, &image, &format!("{recipe}-saved.oci.tar"));
    image
}

/// Builds the foreign image with podman and imports it as [`FOREIGN`].
pub fn import_foreign(lab: &Lab, c: &Containerd) {
    lab.build_foreign_image();
    save_and_import(lab, c, "localhost/web-foreign", "web.oci.tar");
}

fn save_and_import(lab: &Lab, c: &Containerd, image: &str, file: &str) {
    let archive = lab.join(file);
    lab.podman_ok(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        path_str(&archive),
        image,
    ]);
    c.import(&archive);
}
