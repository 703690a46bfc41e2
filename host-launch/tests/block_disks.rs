//! Block devices as data disks (issue 28, item 1), on loop devices made by the test: an
//! appliance serves with a loop device as its disk, its jail holding a node of its own owned
//! by the VM's uid while the host's node stays as it was; every refusal names its field and
//! fix (mounted, a mounted partition of a whole disk, open exclusively, attached to another
//! running appliance under another name, smaller than size_mib, a character device); a blank
//! device is not formatted unless the contract says so, and the host never writes it; the
//! guest's flushes reach the device under the loop device while it runs.
//!
//! Needs root (loop devices, network namespace, TAP device); fails, rather than skips,
//! without it. The devices are detached on drop, also when a test fails.

mod common;

use common::{host_launch, http_get, launch, setup, Setup, GUEST};
use e2e::blockdev::{all_zero, LoopDevice};
use e2e::host::{assert_fsck_clean, output_text};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A copy of `spec` at `DIR/NAME.json` whose disk is `disk` (with `size_mib` if given), and
/// whose name and TAP device are `name` when given.
fn spec_with_disk(
    spec: &Path,
    disk: &Path,
    size_mib: Option<u64>,
    rename: Option<&str>,
) -> PathBuf {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(spec).unwrap()).unwrap();
    v["disks"][0] = serde_json::json!({ "file": disk });
    if let Some(n) = size_mib {
        v["disks"][0]["size_mib"] = n.into();
    }
    if let Some(name) = rename {
        v["name"] = name.into();
        v["network"]["tap"] = common::tap_name("b").into();
    }
    let out = spec.with_file_name(format!(
        "{}-{}.json",
        rename.unwrap_or("disk"),
        size_mib.unwrap_or(0)
    ));
    std::fs::write(&out, v.to_string()).unwrap();
    out
}

/// `host-launch check SPEC`: its exit status and stdout+stderr.
fn check(state: &Path, spec: &Path) -> (i32, String) {
    output_text(host_launch(state, &["check"]).arg(spec))
}

#[track_caller]
fn assert_refused(state: &Path, spec: &Path, expect: &str) {
    let (code, out) = check(state, spec);
    assert_eq!(code, 120, "{out}");
    assert!(out.contains(expect), "expected {expect:?} in:\n{out}");
}

fn run_ok(cmd: &mut Command) {
    let (code, out) = output_text(cmd);
    assert_eq!(code, 0, "{cmd:?}: {out}");
}

#[test]
fn a_loop_device_is_a_data_disk_and_each_refusal_names_its_field() {
    let Setup {
        dir,
        ns,
        spec,
        data,
        ..
    } = setup("blk", 64);
    let state = dir.join("state");
    let lo = LoopDevice::attach(&data).expect("a loop device (this test needs root)");
    let dev = lo.path().to_path_buf();
    let disk_spec = spec_with_disk(&spec, &dev, Some(16), None);
    let (code, out) = check(&state, &disk_spec);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("block device, 16 MiB, free on the host"),
        "{out}"
    );

    // Smaller than size_mib; a character device.
    let shown = dev.display().to_string();
    assert_refused(
        &state,
        &spec_with_disk(&spec, &dev, Some(64), None),
        &format!(
            "disks[0].size_mib: {shown} holds 16 MiB, less than size_mib 64; give a larger \
             device, or a size_mib of at most 16"
        ),
    );
    assert_refused(
        &state,
        &spec_with_disk(&spec, Path::new("/dev/zero"), None, None),
        "disks[0].file: /dev/zero is a character device; a data disk is a regular file or a \
         block device",
    );
    // Mounted on the host.
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run_ok(Command::new("mount").arg(&dev).arg(&mnt));
    let (_, mounted) = check(&state, &disk_spec);
    run_ok(Command::new("umount").arg(&mnt));
    assert!(
        mounted.contains(&format!(
            "disks[0].file: {shown} ({}) is mounted on the host at {}; a disk the guest writes \
             must be mounted nowhere else: unmount it",
            rdev_name(&dev),
            mnt.display()
        )),
        "{mounted}"
    );
    // Open exclusively by another program (here: this test).
    let held = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(&dev)
        .unwrap();
    assert_refused(
        &state,
        &disk_spec,
        &format!(
            "disks[0].file: {shown} ({}) is open exclusively",
            rdev_name(&dev)
        ),
    );
    drop(held);

    // It serves; the jail has a node of its own, the host's is untouched.
    let mounts_before = mount_count(&data);
    let before = std::fs::metadata(&dev).unwrap();
    let mut run = launch(&disk_spec, "blk", &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();
    let body = http_get(&ns, &format!("{GUEST}:8080")).expect("HTTP from the guest");
    assert!(body.contains("hello from the appliance"), "{body}");
    let uid = run.state_json()["uid"].as_u64().expect("the VM's uid") as u32;
    let in_jail =
        Path::new(&format!("/proc/{}/root", run.uml_pid())).join(dev.strip_prefix("/").unwrap());
    let node = std::fs::metadata(&in_jail).expect("the device's node in the jail");
    assert_eq!(
        (node.uid(), node.mode() & 0o7777, node.rdev()),
        (uid, 0o600, before.rdev()),
        "the jail's node: the VM's uid's alone, the same device"
    );
    let host_node = std::fs::metadata(&dev).unwrap();
    assert_eq!(
        (host_node.uid(), host_node.mode()),
        (before.uid(), before.mode()),
        "the host's node was changed"
    );
    // Another appliance naming the same device under another name is refused.
    let alias = dir.join("alias");
    std::os::unix::fs::symlink(&dev, &alias).unwrap();
    let other = spec_with_disk(&spec, &alias, None, Some("blk2"));
    let (code, out) = output_text(host_launch(&state, &["run"]).arg(&other));
    assert_eq!(code, 121, "{out}");
    assert!(
        out.contains("is attached to the running appliance 'blk'"),
        "{out}"
    );

    // The guest's flushes reach the host (kernel patch 0010): ext4 flushed the superblock
    // with the mount it counted, so the loop device's backing file holds it already, not
    // only the device's page cache.
    assert_eq!(
        mount_count(&data),
        mounts_before + 1,
        "the guest's flush after its mount did not reach the backing file"
    );

    let (code, all) = run.stop();
    assert_eq!(code, Some(0), "{all}");
    drop(lo);
    // The guest unmounted it cleanly: still one more mount, and clean.
    assert_eq!(mount_count(&data), mounts_before + 1);
    assert_fsck_clean(&data);
}

/// The ext4 superblock's mount count (`dumpe2fs -h`).
fn mount_count(disk: &Path) -> u64 {
    let (code, header) = output_text(Command::new("dumpe2fs").arg("-h").arg(disk));
    assert_eq!(code, 0, "{header}");
    header
        .lines()
        .find_map(|l| l.strip_prefix("Mount count:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no mount count in:\n{header}"))
}

/// `major:minor` of a device node.
fn rdev_name(dev: &Path) -> String {
    let r = std::fs::metadata(dev).unwrap().rdev();
    format!("{}:{}", libc::major(r), libc::minor(r))
}

/// A new sparse file of `len` zero bytes.
fn blank_file(path: &Path, len: u64) -> PathBuf {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
    path.to_path_buf()
}

#[test]
fn a_whole_disk_whose_partition_is_mounted_is_refused() {
    let Setup { dir, spec, ns, .. } = setup("blkpart", 64);
    let state = dir.join("state");
    let file = blank_file(&dir.join("disk.img"), 32 << 20);
    let mut lo = LoopDevice::attach(&file).expect("a loop device (this test needs root)");
    let part = lo
        .add_partition(1, 2048, 63488, dir.path())
        .expect("the loop device's partition");
    run_ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&part));
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    run_ok(Command::new("mount").arg(&part).arg(&mnt));
    let (code, out) = check(&state, &spec_with_disk(&spec, lo.path(), None, None));
    run_ok(Command::new("umount").arg(&mnt));
    drop(ns);
    assert_eq!(code, 120, "{out}");
    assert!(
        out.contains(&format!(
            "disks[0].file: {} ({}) is mounted on the host at {}",
            lo.path().display(),
            rdev_name(&part),
            mnt.display()
        )),
        "{out}"
    );
}

#[test]
fn a_blank_device_is_formatted_by_no_one_without_format_if_blank() {
    let Setup { dir, spec, ns, .. } = setup("blkblank", 64);
    let state = dir.join("state");
    let file = blank_file(&dir.join("blank.img"), 16 << 20);
    let lo = LoopDevice::attach(&file).expect("a loop device (this test needs root)");
    let blank_spec = spec_with_disk(&spec, lo.path(), None, None);
    let (code, out) = output_text(host_launch(&state, &["run"]).arg(&blank_spec));
    assert_eq!(code, 123, "guest-init's fatal error:\n{out}");
    assert!(
        out.contains("is blank (no file system); set format_if_blank to true"),
        "{out}"
    );
    drop((lo, ns));
    assert!(
        all_zero(&file, 16 << 20).unwrap(),
        "the blank device was written"
    );
}

/// A volume group on a loop device, removed (with its volumes) on drop.
struct VolumeGroup {
    name: String,
    pv: LoopDevice,
}

impl VolumeGroup {
    fn new(backing: &Path) -> Result<VolumeGroup, String> {
        let pv = LoopDevice::attach(backing)?;
        let name = format!("hl{}vg", std::process::id());
        for (cmd, args) in [
            ("pvcreate", vec!["-q".to_string()]),
            ("vgcreate", vec!["-q".to_string(), name.clone()]),
        ] {
            let (code, out) = output_text(Command::new(cmd).args(&args).arg(pv.path()));
            if code != 0 {
                return Err(format!("{cmd} (package lvm2): {out}"));
            }
        }
        Ok(VolumeGroup { name, pv })
    }

    /// A logical volume of `mib` MiB: `/dev/VG/NAME`.
    fn lv(&self, name: &str, mib: u64) -> Result<PathBuf, String> {
        let (code, out) = output_text(
            Command::new("lvcreate")
                .args(["-q", "-y", "-Zn", "-L", &format!("{mib}M"), "-n", name])
                .arg(&self.name),
        );
        if code != 0 {
            return Err(format!("lvcreate: {out}"));
        }
        Ok(Path::new("/dev").join(&self.name).join(name))
    }
}

impl Drop for VolumeGroup {
    fn drop(&mut self) {
        let _ = Command::new("vgremove")
            .args(["-q", "-f"])
            .arg(&self.name)
            .output();
        let _ = Command::new("pvremove")
            .arg("-q")
            .arg(self.pv.path())
            .output();
    }
}

/// An LVM logical volume made in the test serves as a disk, and the physical volume under
/// it is refused as held. Needs device-mapper in the host's kernel (`/dev/mapper/control`
/// usable): the CI machine's kernel (6.18, a Firecracker guest's) has none, so it runs
/// with `cargo test -p host-launch --test block_disks -- --ignored` on a host that has it,
/// where a missing device-mapper fails it with that message.
#[test]
#[ignore = "needs device-mapper in the host's kernel (the CI machine's has none)"]
fn an_lvm_logical_volume_is_a_data_disk_and_its_physical_volume_is_held() {
    let Setup {
        dir,
        ns,
        spec,
        data,
        ..
    } = setup("blklvm", 64);
    let state = dir.join("state");
    let backing = blank_file(&dir.join("pv.img"), 64 << 20);
    let vg = VolumeGroup::new(&backing).expect("a volume group on a loop device");
    let lv = vg
        .lv("data", 16)
        .expect("a logical volume (device-mapper must be in the host's kernel)");
    // The operator's file system, copied onto the volume (the image has no mke2fs).
    run_ok(
        Command::new("dd")
            .arg(format!("if={}", data.display()))
            .arg(format!("of={}", lv.display()))
            .args(["bs=1M", "conv=fsync", "status=none"]),
    );
    assert_refused(
        &state,
        &spec_with_disk(&spec, vg.pv.path(), None, None),
        &format!("disks[0].file: {} (", vg.pv.path().display()),
    );
    let (_, held) = check(&state, &spec_with_disk(&spec, vg.pv.path(), None, None));
    assert!(held.contains(") is held by dm-"), "{held}");
    let lv_spec = spec_with_disk(&spec, &lv, Some(16), None);
    let mut run = launch(&lv_spec, "blklvm", &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();
    let body = http_get(&ns, &format!("{GUEST}:8080")).expect("HTTP from the guest");
    assert!(body.contains("hello from the appliance"), "{body}");
    let (code, all) = run.stop();
    assert_eq!(code, Some(0), "{all}");
    assert_fsck_clean(&lv);
}
