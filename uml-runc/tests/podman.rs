//! uml-runc under real podman (Debian's), in a network namespace the test makes:
//!
//! - `podman run -d --runtime uml-runc` of our DNS appliance's OCI image: the VM gets the
//!   memory the annotation asks for and podman's hostname, `dig` (direct and through a
//!   published port) from the
//!   namespace answers, `podman ps` shows it up, `podman logs` has dnsmasq's lines,
//!   `podman stop` powers the guest off cleanly (exit code 0, guest-init's power-off in the
//!   log) within its timeout, and `podman rm` leaves nothing behind: no runtime state, no
//!   process of the VM's uid, no network namespace, no TAP device;
//! - the same for an image nobody built for the contract (Debian's lighttpd on a debootstrap
//!   base, `podman import` + `podman build`), also reached from another container on the
//!   network, and `podman run --rm` of a command that exits with 7 returns 7;
//! - what a VM cannot do (a terminal, a volume) is refused with the reason;
//! - a volume as the data disk: the syslog appliance with `-v DIR:/data` (a disk image made in
//!   DIR), then with `--device` of a loop device the test makes, stores a message in each of
//!   two containers in turn, refuses a second container while one runs, and the web image's
//!   shell then prints both lines from the disk; a directory elsewhere is refused; the web
//!   appliance serves the site of a disk image the operator wrote into its volume.
//!
//! Needs root, podman, conmon, dig, curl, losetup, debootstrap's cached root (scripts/foreign-rootfs);
//! fails, rather than skips, without them.

mod lab;

use lab::{processes_of, shown, Lab};
use std::process::Command;
use std::time::{Duration, Instant};

fn container_id(lab: &Lab, name: &str) -> String {
    let out = lab.podman_ok(&["inspect", "--format", "{{.Id}}", name]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `podman stop` (timeout 10 s), its time, and the exit code podman recorded.
fn stop(lab: &Lab, name: &str) -> (Duration, String) {
    let t = Instant::now();
    lab.podman_ok(&["stop", "-t", "10", name]);
    let took = t.elapsed();
    let out = lab.podman_ok(&["inspect", "--format", "{{.State.ExitCode}}", name]);
    (
        took,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

#[test]
fn podman_runs_our_dns_image_as_a_vm() {
    let lab = Lab::new("urunc-dns");
    lab.load_dns_image();
    let conf = lab.dnsmasq_conf();
    let volume = format!("{}:/run/dnsmasq.conf:ro", conf.display());
    lab.podman_ok(&[
        "run",
        "-d",
        "--name",
        "dns1",
        "--network",
        lab.network(),
        "--ip",
        "192.0.2.53",
        "-v",
        &volume,
        "--annotation",
        "org.host-contract.memory-mib=72",
        "-p",
        "5353:53/udp",
        "localhost/dns:latest",
    ]);
    let id = container_id(&lab, "dns1");
    let (uid, netns) = lab.vm_uid_netns(&id);
    lab.wait_for_answer(
        "192.0.2.53",
        "www.example.net",
        "192.0.2.80",
        Duration::from_secs(60),
    );
    // What the guest sends leaves only through its anti-spoofing table (the answers above
    // came that way: there is no other path from the TAP device to the veth).
    let table = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["nft", "list", "table", "netdev", "uml-runc"])
        .output()
        .expect("nsenter nft");
    let table = String::from_utf8_lossy(&table.stdout);
    for want in [
        "hook ingress device \"uml0\"",
        "ether saddr != ",
        "fwd to \"",
    ] {
        assert!(
            table.contains(want),
            "no {want:?} in the container's table:\n{table}"
        );
    }
    // A published port reaches the guest as it would the container (podman's DNAT to the
    // container's address).
    let out = lab
        .ns
        .output(
            "dig",
            &[
                "@192.0.2.1",
                "-p",
                "5353",
                "www.example.net",
                "+short",
                "+time=2",
                "+tries=2",
            ],
        )
        .expect("dig");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "192.0.2.80",
        "through the published port: {}",
        shown(&out)
    );
    let cmdlines = lab::command_lines_of(uid);
    assert!(
        cmdlines.iter().any(|c| c.contains(" mem=72M ")),
        "the memory annotation did not reach UML: {cmdlines:?}"
    );
    let ps = lab.podman_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(ps.contains("dns1 Up"), "podman ps: {ps}");
    assert!(
        !processes_of(uid).is_empty(),
        "no process of the VM's uid {uid}"
    );
    let logs = lab.podman_ok(&["logs", "dns1"]);
    let text = shown(&logs);
    assert!(
        text.contains("query[A] www.example.net from 192.0.2.1"),
        "podman logs: {text}"
    );
    // podman's hostname (the id's first 12 characters) is the guest's.
    assert!(
        text.contains(&format!("contract loaded: hostname={}", &id[..12])),
        "podman logs: {text}"
    );
    let (took, code) = stop(&lab, "dns1");
    assert_eq!(code, "0", "dnsmasq exits 0 on the graceful stop");
    assert!(
        took < Duration::from_secs(10),
        "podman stop took {took:?}: past its timeout"
    );
    let text = shown(&lab.podman_ok(&["logs", "dns1"]));
    assert!(
        text.contains("exiting on receipt of SIGTERM")
            && text.contains("guest-init: power off")
            && text.contains("reason=requested"),
        "the guest did not power off cleanly: {text}"
    );
    lab.podman_ok(&["rm", "dns1"]);
    lab.assert_nothing_left(uid, &netns);
    eprintln!("dns: podman stop took {took:?}");
}

fn curl(lab: &Lab, url: &str) -> String {
    let out = lab
        .ns
        .output("curl", &["-sS", "--max-time", "2", url])
        .expect("running curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_foreign_image_serves_and_its_exit_code_comes_back() {
    let lab = Lab::new("urunc-foreign");
    lab.build_foreign_image();
    lab.podman_ok(&[
        "run",
        "-d",
        "--name",
        "web1",
        "--network",
        lab.network(),
        "--ip",
        "192.0.2.80",
        "localhost/web-foreign",
    ]);
    let id = container_id(&lab, "web1");
    let (uid, netns) = lab.vm_uid_netns(&id);
    let until = Instant::now() + Duration::from_secs(90);
    let mut got = String::new();
    while Instant::now() < until {
        got = curl(&lab, "http://192.0.2.80/");
        if got.contains("hello from a plain Debian image") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        got.contains("hello from a plain Debian image"),
        "lighttpd did not answer: {got:?}; logs: {}",
        shown(&lab.podman(&["logs", "web1"]))
    );
    let ps = lab.podman_ok(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(String::from_utf8_lossy(&ps.stdout).contains("web1 Up"));
    // Another container (a VM too) reaches it over podman's network as it would a container:
    // bash's /dev/tcp, the image has no HTTP client.
    let out = lab.podman(&[
        "run",
        "--rm",
        "--network",
        lab.network(),
        "localhost/web-foreign",
        "bash",
        "-c",
        "exec 3<>/dev/tcp/192.0.2.80/80; printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3",
    ]);
    let text = shown(&out);
    assert!(
        out.status.success() && text.contains("hello from a plain Debian image"),
        "from another container: {text}"
    );
    let text = shown(&lab.podman_ok(&["logs", "web1"]));
    assert!(
        text.contains("service started: argv0=/usr/sbin/lighttpd"),
        "{text}"
    );
    let (took, code) = stop(&lab, "web1");
    assert!(took < Duration::from_secs(10), "podman stop took {took:?}");
    assert_eq!(code, "0", "lighttpd exits 0 on SIGTERM");
    lab.podman_ok(&["rm", "web1"]);
    lab.assert_nothing_left(uid, &netns);

    let out = lab.podman(&[
        "run",
        "--rm",
        "--network",
        lab.network(),
        "localhost/web-foreign",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "podman run --rm: {}",
        shown(&out)
    );
    assert!(lab.runtime_containers().is_empty(), "--rm left state");
    let out = lab.podman(&[
        "run",
        "--rm",
        "--network",
        lab.network(),
        "localhost/web-foreign",
        "sh",
        "-c",
        "echo to-stdout; echo to-stderr >&2; exit 0",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", shown(&out));
    let text = shown(&out);
    assert!(
        text.contains("to-stdout") && text.contains("to-stderr"),
        "{text}"
    );
    // `-t`: the console reaches podman through the terminal; `--ulimit` (process.rlimits)
    // and `--user` (process.user) reach the service in the guest.
    let out = lab.podman(&[
        "run",
        "--rm",
        "-t",
        "--network",
        lab.network(),
        "--ulimit",
        "nofile=512:1024",
        "--user",
        "1234:1235",
        "localhost/web-foreign",
        "sh",
        "-c",
        "echo nofile=$(ulimit -Sn):$(ulimit -Hn) id=$(id -u):$(id -g)",
    ]);
    let text = shown(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("nofile=512:1024 id=1234:1235"),
        "the limits and the user: {text}"
    );
    assert!(lab.runtime_containers().is_empty(), "--rm -t left state");
}

#[test]
fn what_a_vm_cannot_do_is_refused_with_the_reason() {
    let lab = Lab::new("urunc-refused");
    lab.load_dns_image();
    let dir = lab.join("vol");
    std::fs::create_dir_all(&dir).expect("volume dir");
    let volume = format!("{}:/data", dir.display());
    let out = lab.podman(&[
        "run",
        "-d",
        "--name",
        "vol1",
        "--network",
        lab.network(),
        "-v",
        &volume,
        "localhost/dns:latest",
    ]);
    let text = shown(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("cannot reach a VM") && text.contains("data disk"),
        "{text}"
    );
    let _ = lab.podman(&["rm", "-f", "vol1"]);
    assert!(
        lab.runtime_containers().is_empty(),
        "a refused create left state"
    );
}

/// Two syslog containers in turn on the same data disk (`disk`: podman's arguments for it),
/// each storing one message and stopped cleanly; while the first runs another container
/// with the disk is refused with `busy`. Then the web image's shell, as syslog's user, prints
/// what the disk holds. The two containers' logs, then what the shell printed.
fn syslog_twice_then_read(lab: &Lab, disk: &[&str], busy: &str) -> (Vec<String>, String) {
    let syslog = lab.load_image("syslog");
    let web = lab.load_image("web");
    let mut logs = Vec::new();
    for name in ["log1", "log2"] {
        let mut run = vec!["run", "-d", "--name", name, "--network", lab.network()];
        run.extend(disk);
        run.push(&syslog);
        lab.podman_ok(&run);
        let id = container_id(lab, name);
        let (uid, netns) = lab.vm_uid_netns(&id);
        let ip = lab.ip_of(name);
        lab.send_syslog(&ip, &format!("stored-by-{name}"));
        if name == "log1" {
            // The disk is this VM's alone while it runs.
            let out = lab.podman(&reader(disk, &web, "echo second-container-ran"));
            let text = shown(&out);
            assert!(!out.status.success() && text.contains(busy), "{text}");
        }
        // rsyslog has written what it received once it exits on the stop.
        std::thread::sleep(Duration::from_millis(500));
        let (_, code) = stop(lab, name);
        let text = shown(&lab.podman_ok(&["logs", name]));
        assert_eq!(code, "0", "{text}");
        logs.push(text);
        lab.podman_ok(&["rm", name]);
        lab.assert_nothing_left(uid, &netns);
    }
    let out = lab.podman(&reader(disk, &web, lab::PRINT_LOGS));
    let text = shown(&out);
    assert!(out.status.success(), "{text}");
    assert!(lab.runtime_containers().is_empty(), "--rm left state");
    (logs, text)
}

/// `podman run --rm` of the web image's shell (as syslog's user) running `script` on `disk`.
fn reader<'a>(disk: &[&'a str], web: &'a str, script: &'a str) -> Vec<&'a str> {
    // No network: it needs none, and takes no address of the lab's range from another test.
    let mut run = vec!["run", "--rm", "--network", "none", "--user", "102:102"];
    run.extend(disk);
    run.extend([
        "--timeout",
        "120",
        "--entrypoint",
        "/bin/dash",
        web,
        "-c",
        script,
    ]);
    run
}

/// Both messages on the disk, and the guest formatted it only the first time.
fn assert_kept(logs: &[String], printed: &str) {
    eprintln!("the disk holds:\n{printed}");
    for want in [
        "podvol28 14 test - stored-by-log1",
        "podvol28 14 test - stored-by-log2",
    ] {
        assert!(printed.contains(want), "no {want:?} on the disk: {printed}");
    }
    let mounted = "disk mounted: checked=false device=/dev/ubdb";
    assert!(
        logs[0].contains(&format!("{mounted} formatted=true mount_point=/data")),
        "the first container's guest did not format the blank disk: {}",
        logs[0]
    );
    assert!(
        logs[1].contains(&format!("{mounted} formatted=false mount_point=/data")),
        "the second container's guest did not mount the disk as it was: {}",
        logs[1]
    );
}

#[test]
fn a_directory_volume_keeps_the_syslog_data_across_containers() {
    let lab = Lab::new("urunc-volume");
    let dir = lab.join("logs");
    std::fs::create_dir_all(&dir).expect("the volume's directory");
    let volume = format!("{}:/data", dir.display());
    let size = "org.host-contract.data-size-mib=64";
    let disk = ["-v", volume.as_str(), "--annotation", size];
    let (logs, printed) = syslog_twice_then_read(&lab, &disk, "in use by another container");
    assert_kept(&logs, &printed);
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir.join(".uml-data.img")).expect("the volume's disk image");
    assert_eq!(m.len(), 64 << 20, "the annotation's size");
    eprintln!(
        "the 64 MiB disk image holds {} KiB on the host after the format and two messages",
        m.blocks() / 2
    );
    assert!(
        m.blocks() * 512 < m.len() / 2,
        "the disk image is not sparse: {} of {} bytes",
        m.blocks() * 512,
        m.len()
    );
    // A directory anywhere but the image's data path is refused, naming the mount and the fix.
    let elsewhere = format!("{}:/srv", dir.display());
    let out = lab.podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &elsewhere,
        "localhost/syslog:latest",
    ]);
    let text = shown(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("mounts[")
            && text.contains("/srv")
            && text.contains("only at the image's data path (/data)")
            && text.contains("-v DIR:/data"),
        "{text}"
    );
    // Without a volume the image's data disk is missing: said with the ways to give one.
    let out = lab.podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/syslog:latest",
    ]);
    let text = shown(&out);
    assert!(
        !out.status.success()
            && text.contains("the image needs a data disk at /data")
            && text.contains("podman -v DIR:/data"),
        "{text}"
    );
    assert!(
        lab.runtime_containers().is_empty(),
        "a refused create left state"
    );
}

#[test]
fn a_block_device_is_the_syslog_appliances_data_disk() {
    let dev = lab::Loop::new(64);
    let lab = Lab::new("urunc-device");
    let device = format!("{}:/dev/xvdb", dev.dev);
    let (logs, printed) =
        syslog_twice_then_read(&lab, &["--device", &device], "in use on the host");
    assert_kept(&logs, &printed);
}

#[test]
fn a_web_appliance_serves_the_site_its_volume_was_seeded_with() {
    let lab = Lab::new("urunc-site");
    let web = lab.load_image("web");
    // The operator's own file system (docs/classes/web.md), written before the first run.
    let site = lab.join("site");
    std::fs::create_dir_all(site.join("www")).expect("the site");
    std::fs::write(site.join("www/index.html"), "seeded site\n").expect("index.html");
    let dir = lab.join("web-volume");
    std::fs::create_dir_all(&dir).expect("the volume's directory");
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-d"])
        .arg(&site)
        .arg(dir.join(".uml-data.img"))
        .arg("16M")
        .output()
        .expect("mkfs.ext4");
    assert!(out.status.success(), "mkfs.ext4: {}", shown(&out));
    let volume = format!("{}:/data", dir.display());
    lab.podman_ok(&[
        "run",
        "-d",
        "--name",
        "site1",
        "--network",
        lab.network(),
        "-v",
        &volume,
        &web,
    ]);
    let url = format!("http://{}/", lab.ip_of("site1"));
    let id = container_id(&lab, "site1");
    let (uid, netns) = lab.vm_uid_netns(&id);
    let until = Instant::now() + Duration::from_secs(90);
    let mut got = String::new();
    while Instant::now() < until && !got.contains("seeded site") {
        got = curl(&lab, &url);
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs = shown(&lab.podman(&["logs", "site1"]));
    assert!(
        got.contains("seeded site"),
        "lighttpd served {got:?}: {logs}"
    );
    assert!(
        logs.contains("formatted=false mount_point=/data"),
        "the operator's file system was not used as it is: {logs}"
    );
    let (_, code) = stop(&lab, "site1");
    assert_eq!(code, "0", "lighttpd exits 0 on the graceful stop");
    lab.podman_ok(&["rm", "site1"]);
    lab.assert_nothing_left(uid, &netns);
    assert_eq!(
        std::fs::metadata(dir.join(".uml-data.img"))
            .map(|m| m.len())
            .ok(),
        Some(16 << 20),
        "the operator's disk image is used as it is, never resized"
    );
}
