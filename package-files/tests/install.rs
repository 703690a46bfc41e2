//! The Debian package's install story on a real systemd: the .deb that `scripts/deb` builds
//! is installed with apt into the cached Debian 12 root of `scripts/systemd-rootfs` booted
//! with `systemd-nspawn --boot` (`e2e::nspawn`: its own network namespace, so nothing leaves
//! it, and apt has no network: everything the package Depends on and Recommends is in that
//! root already). Inside: the installed build-image builds the NSD image (guest-init found in
//! /usr/lib/host-launch, the locked .debs from a cache the test fills), a spec in
//! /etc/host-launch/dns1.json, `systemctl enable --now host-launch@dns1` boots it on the
//! packaged kernel with no configuration, dig answers, the installed conformance kit passes
//! the image (its probe and kernel found in /usr/lib/host-launch), `man host-launch`
//! renders, bash completes `host-launch <TAB>`, the unattended update's script, service and
//! timer are where host-launch/README.md says and the timer is off; `apt remove` stops the appliances (the systemd one and one
//! started by hand) and nothing else and keeps specs and data; `apt purge` removes the state
//! directories but not the data disk; and no file of the project is left outside the
//! package's paths but the operator's own.
//!
//! Before the container, on this host: the packaged build-image and conformance, run outside
//! their package paths, refuse to run without `--init` and `--probe` rather than build the
//! checkout's guest-init or probe.
//! Needs root, debootstrap, systemd-container, debhelper and lintian (`scripts/setup`), and
//! Debian's archive or a warm /var/cache/image-builder for the NSD image's packages.

use e2e::nspawn::{systemd_rootfs, Container};
use e2e::TempDir;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Builds the package with `scripts/deb` (reused while nothing changed) and returns its path.
fn build_deb() -> PathBuf {
    let script = e2e::workspace_root().join("scripts/deb");
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scripts/deb failed: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("deb: "))
        .unwrap_or_else(|| panic!("scripts/deb named no package:\n{stdout}"));
    PathBuf::from(deb)
}

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn recipe(name: &str) -> PathBuf {
    e2e::workspace_root().join(format!("build-image/recipes/{name}"))
}

/// The packaged build-image outside its paths: no guest-init of the checkout, an error that
/// names where the package puts it; then, given the package's guest-init, it builds the NSD
/// image here, which fills this host's package cache for the container's build.
fn packaged_build_image_on_the_host(unpacked: &Path, dir: &Path) {
    let exe = unpacked.join("usr/bin/build-image");
    let out = run(Command::new(&exe)
        .arg(recipe("nsd.json"))
        .arg("-o")
        .arg(dir.join("refused.img")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(
                "no static guest-init in /usr/local/lib/host-launch or /usr/lib/host-launch"
            )
            && err.contains("--init PATH"),
        "the packaged build-image must not build the checkout's guest-init: {}\n{err}",
        out.status
    );
    assert!(!dir.join("refused.img").exists());
    let out = run(Command::new(&exe)
        .arg(recipe("nsd.json"))
        .arg("-o")
        .arg(dir.join("host-nsd.img"))
        .arg("--init")
        .arg(unpacked.join("usr/lib/host-launch/guest-init")));
    assert!(
        out.status.success(),
        "the packaged build-image with the package's guest-init: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The packaged conformance kit outside its paths: no probe built from the checkout, an error
/// that names where the package puts it (exit 2: the kit could not run).
fn packaged_conformance_on_the_host(unpacked: &Path, image: &Path) {
    let out = run(Command::new(unpacked.join("usr/bin/conformance")).arg(image));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2)
            && err.contains(
                "no conformance-probe in /usr/local/lib/host-launch or /usr/lib/host-launch"
            ),
        "the packaged conformance must not build the checkout's probe: {}\n{err}",
        out.status
    );
}

/// A cache for the container's build-image holding the NSD lock's .debs (copies: the
/// container's purge must never reach this host's cache).
fn debs_for_the_container(cache: &Path) {
    let host_cache = build_image::archive::default_cache_dir().join("debs");
    let lock: Value =
        serde_json::from_slice(&std::fs::read(recipe("nsd.lock.json")).expect("nsd.lock.json"))
            .expect("the lock's JSON");
    let debs = cache.join("debs");
    std::fs::create_dir_all(&debs).expect("cache/debs");
    for p in lock["packages"].as_array().expect("packages") {
        let name = format!("{}.deb", p["sha256"].as_str().expect("sha256"));
        std::fs::copy(host_cache.join(&name), debs.join(&name))
            .unwrap_or_else(|e| panic!("{}: {e}", host_cache.join(&name).display()));
    }
}

/// examples/dns.json for the container: the image built there, the namespace and bridge the
/// test makes, no syslog host, no kernel (the packaged one, found without configuration).
fn spec(name: &str, tap: &str, address: &str) -> String {
    let path = e2e::workspace_root().join("examples/dns.json");
    let mut v: Value =
        serde_json::from_slice(&std::fs::read(path).expect("examples/dns.json")).expect("json");
    let o = v.as_object_mut().expect("object");
    o.remove("syslog");
    o.insert("name".into(), json!(name));
    o.insert("image".into(), json!("/srv/appliances/nsd.img"));
    o["network"]["netns"] = json!("hlapps");
    o["network"]["bridge"] = json!("br-hl");
    o["network"]["tap"] = json!(tap);
    o["network"]["addresses"] = json!([format!("{address}/24")]);
    serde_json::to_string_pretty(&v).expect("json")
}

/// Asks `server` for www.example.net until it answers 192.0.2.80 (at most 20 s: on a loaded
/// machine one query of a second can go unanswered).
fn dig_answers(c: &Container, server: &str) {
    c.until(&format!("{server} answers"), Duration::from_secs(20), |c| {
        let out = c.sh(&format!(
            "ip netns exec hlapps dig @{server} www.example.net +short +tries=1 +time=1"
        ));
        let answer = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if answer == "192.0.2.80" {
            Ok(())
        } else {
            Err(answer)
        }
    });
}

/// The unattended update and the scheduled backup where host-launch/README.md ("Fleet
/// updates", "Backup and restore") says: their service and timer templates pass systemd's own
/// reading as an instance (their man pages installed), the update's script is executable
/// there, and no timer is enabled (off by default).
fn timers_installed_off(c: &Container) {
    for unit in [
        "host-launch-auto-update@dns.service",
        "host-launch-auto-update@dns.timer",
        "host-launch-backup@dns.service",
        "host-launch-backup@dns.timer",
    ] {
        let v = c.sh(&format!("systemd-analyze verify {unit}"));
        let err = String::from_utf8_lossy(&v.stderr);
        let ours: Vec<&str> = err
            .lines()
            .filter(|l| l.contains("auto-update") || l.contains("backup"))
            .collect();
        assert!(
            v.status.success() && ours.is_empty(),
            "verify {unit}:\n{err}"
        );
    }
    c.ok("test -x /usr/lib/host-launch/host-launch-auto-update");
    let exec = c.prop("host-launch-auto-update@dns.service", "ExecStart");
    assert!(
        exec.contains("path=/usr/lib/host-launch/host-launch-auto-update ")
            && exec.contains("/etc/host-launch/auto-update/dns.conf"),
        "{exec}"
    );
    assert_disabled(c, "host-launch-auto-update@dns.timer");
    let exec = c.prop("host-launch-backup@dns.service", "ExecStart");
    assert!(
        exec.contains(
            "argv[]=/usr/bin/host-launch backup dns --to /var/lib/host-launch/backups/dns --keep 7"
        ),
        "{exec}"
    );
    assert_disabled(c, "host-launch-backup@dns.timer");
    let timers = c.ok("systemctl list-timers --all --no-legend");
    assert!(
        !timers.contains("auto-update") && !timers.contains("host-launch-backup"),
        "{timers}"
    );
}

/// `timer` is off until the operator enables it.
fn assert_disabled(c: &Container, timer: &str) {
    let enabled = c.sh(&format!("systemctl is-enabled {timer}"));
    assert_eq!(
        String::from_utf8_lossy(&enabled.stdout).trim(),
        "disabled",
        "{timer} is off until the operator enables it"
    );
}

/// Whether a file name is one of the project's (its programs, its directories, its unit;
/// systemd writes `-` as `\x2d` in some names).
fn project_name(name: &str) -> bool {
    name.contains("host-launch")
        || name.contains("host\\x2dlaunch")
        || ["uml-runc", "build-image", "conformance", "guest-init"]
            .iter()
            .any(|p| name.starts_with(p))
        || name == "uml-vmm"
        || name == "image-builder"
}

/// Every path in the container, outside /proc, /sys and /dev, that is or lies under a name
/// of the project's.
fn project_paths(c: &Container) -> Vec<String> {
    let out = c.ok("find / /run /tmp -xdev 2>/dev/null | sort -u");
    out.lines()
        .filter(|p| p.split('/').any(project_name))
        .map(str::to_string)
        .collect()
}

/// The operator's files: a spec, the data disk and their directories.
const OPERATORS: [&str; 5] = [
    "/etc/host-launch",
    "/etc/host-launch/dns1.json",
    "/var/lib/host-launch",
    "/var/lib/host-launch/dns1",
    "/var/lib/host-launch/dns1/data.img",
];

#[test]
fn install_serve_remove_purge() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "this test needs root (systemd-nspawn)");
    let deb = build_deb();
    let rootfs = systemd_rootfs();
    let dir = TempDir::new("deb-install").expect("temporary directory");
    let unpacked = dir.join("unpacked");
    let st = run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked)).status;
    assert!(st.success(), "dpkg-deb -x {}", deb.display());
    packaged_build_image_on_the_host(&unpacked, dir.path());
    packaged_conformance_on_the_host(&unpacked, &dir.join("host-nsd.img"));
    debs_for_the_container(&dir.join("cache"));
    let debdir = dir.join("deb");
    std::fs::create_dir_all(&debdir).unwrap();
    std::fs::copy(&deb, debdir.join("host-launch.deb")).unwrap();
    let binds = [
        (debdir, "/srv/deb", false),
        (recipe(""), "/srv/recipes", false),
        (dir.join("cache"), "/srv/cache", true),
        // Debian's UML modules (user-mode-linux, a Suggests): the images' IPv6 modules.
        (
            PathBuf::from(build_image::build::UML_MODULES),
            build_image::build::UML_MODULES,
            false,
        ),
    ];
    let c = Container::boot(&rootfs, dir.path(), &binds);

    // apt from the local file, with no network (the container has none).
    let out = c.ok(
        "cd /srv/deb && DEBIAN_FRONTEND=noninteractive apt-get install -y ./host-launch.deb 2>&1",
    );
    assert!(out.contains("Setting up host-launch"), "{out}");
    let listed = c.ok("dpkg -L host-launch");
    let listed: Vec<&str> = listed.lines().collect();
    for want in [
        "/usr/bin/host-launch",
        "/usr/bin/uml-runc",
        "/usr/bin/build-image",
        "/usr/bin/conformance",
        "/usr/lib/host-launch/linux",
        "/usr/lib/host-launch/guest-init",
        "/usr/lib/systemd/system/host-launch@.service",
        "/usr/lib/systemd/system-generators/host-launch-generator",
        "/usr/lib/systemd/system/host-launch-auto-update@.service",
        "/usr/lib/systemd/system/host-launch-auto-update@.timer",
        "/usr/lib/host-launch/host-launch-auto-update",
        "/usr/lib/systemd/system/host-launch-backup@.service",
        "/usr/lib/systemd/system/host-launch-backup@.timer",
        "/usr/share/man/man1/host-launch-run.1.gz",
        "/usr/share/bash-completion/completions/host-launch",
        "/usr/share/zsh/vendor-completions/_host-launch",
        "/usr/share/fish/vendor_completions.d/host-launch.fish",
        "/usr/share/doc/host-launch/schemas/spec-v1.schema.json.gz",
        "/usr/share/doc/host-launch/examples/dns.json",
    ] {
        assert!(listed.contains(&want), "{want} in dpkg -L: {listed:?}");
    }

    // The installed build-image: guest-init from /usr/lib/host-launch, no --init.
    let out = c.ok(
        "mkdir -p /srv/appliances && IMAGE_BUILDER_CACHE=/srv/cache \
         build-image /srv/recipes/nsd.json -o /srv/appliances/nsd.img 2>&1",
    );
    assert!(
        out.contains("build-image: wrote /srv/appliances/nsd.img"),
        "{out}"
    );

    // The network the appliances join, and a service of someone else's.
    c.ok("ip netns add hlapps && ip -n hlapps link set lo up && \
          ip -n hlapps link add br-hl type bridge && \
          ip -n hlapps addr add 192.0.2.1/24 dev br-hl && ip -n hlapps link set br-hl up");
    c.ok("systemd-run --unit=bystander sleep 100000");

    // The story: a spec, enable --now, dig. Beside it, a data disk where the unit's convention
    // puts them (made as an operator makes one for an image that takes a disk; the NSD image
    // takes none): no removal may touch it.
    c.ok("mkdir -p /var/lib/host-launch/dns1 && \
          mkfs.ext4 -q -F -L data /var/lib/host-launch/dns1/data.img 16M");
    let dns1 = spec("dns1", "tap-dns1", "192.0.2.53");
    c.ok(&format!(
        "cat > /etc/host-launch/dns1.json <<'EOF'\n{dns1}\nEOF"
    ));
    let started =
        c.sh("systemctl daemon-reload && timeout 120 systemctl enable --now host-launch@dns1");
    assert!(
        started.status.success(),
        "enable --now host-launch@dns1: {}\n{}",
        String::from_utf8_lossy(&started.stderr),
        c.ok("journalctl -u host-launch@dns1 --no-pager | tail -n 40")
    );
    dig_answers(&c, "192.0.2.53");
    // systemd's own reading of the packaged unit with the generator's drop-in (its man pages
    // are there now: verify checks them).
    let v = c.sh("systemd-analyze verify host-launch@dns1.service");
    let err = String::from_utf8_lossy(&v.stderr);
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("host-launch")).collect();
    assert!(v.status.success() && ours.is_empty(), "verify:\n{err}");
    timers_installed_off(&c);
    let status = c.ok("host-launch status dns1");
    assert!(
        status.contains("/usr/lib/host-launch/linux"),
        "the packaged kernel, with no configuration: {status}"
    );
    assert!(
        status.contains("managed:  by systemd: host-launch@dns1.service"),
        "{status}"
    );
    // One started by hand, outside systemd (its spec is not in /etc/host-launch).
    let dns2 = spec("dns2", "tap-dns2", "192.0.2.54");
    c.ok(&format!("cat > /root/dns2.json <<'EOF'\n{dns2}\nEOF"));
    c.ok("host-launch start /root/dns2.json --wait-ready 60");
    dig_answers(&c, "192.0.2.54");

    // The installed conformance kit on the image built here, with no configuration: the
    // contract's battery (the packaged probe and kernel; NSD's own service needs the spec's
    // zone) and the dns class suite (dig and kdig, the Recommends).
    for args in ["--spec-files /etc/host-launch/dns1.json ", "--class "] {
        let kit = c.sh(&format!("conformance {args}/srv/appliances/nsd.img 2>&1"));
        let report = String::from_utf8_lossy(&kit.stdout);
        assert!(
            kit.status.success(),
            "conformance {args}: {}\n{report}",
            kit.status
        );
    }

    // Man pages and completions.
    let man = c.ok("COLUMNS=100 MANPAGER=cat man host-launch 2>&1");
    assert!(
        man.contains("host-launch - Run one-service appliances") && man.contains("SYNOPSIS"),
        "{man}"
    );
    let man = c.ok("COLUMNS=100 MANPAGER=cat man host-launch-upgrade 2>&1");
    assert!(man.contains("--stop-timeout"), "{man}");
    let comp = c.ok(
        "bash -c '. /usr/share/bash-completion/bash_completion; _completion_loader host-launch; \
         complete -p host-launch; COMP_WORDS=(host-launch \"\"); COMP_CWORD=1; \
         COMP_LINE=\"host-launch \"; COMP_POINT=12; _host__launch host-launch \"\" host-launch; \
         printf \"%s\\n\" \"${COMPREPLY[@]}\"'",
    );
    assert!(
        comp.lines().any(|l| l.starts_with("complete ")
            && l.contains(" -F _host__launch ")
            && l.ends_with(" host-launch")),
        "{comp}"
    );
    for sub in ["start", "stop", "upgrade", "install-systemd"] {
        assert!(
            comp.lines().any(|l| l == sub),
            "host-launch <TAB> offers {sub}: {comp}"
        );
    }

    // Every project file while installed is the package's, the operator's or run-time state.
    let found = project_paths(&c);
    for want in [
        "/usr/bin/host-launch",
        "/usr/lib/host-launch/linux",
        "/run/host-launch/dns2",
    ] {
        assert!(
            found.iter().any(|p| p == want),
            "the search sees {want}: {found:?}"
        );
    }
    let unowned: Vec<String> = found
        .into_iter()
        .filter(|p| {
            !listed.contains(&p.as_str())
                && !OPERATORS.contains(&p.as_str())
                && !p.starts_with("/run/host-launch")
                && !p.starts_with("/run/uml-vmm")
                && !p.starts_with("/run/systemd/")
                // man-db's cache of formatted pages (systemd-analyze verify ran man).
                && !p.starts_with("/var/cache/man/")
                && !p.starts_with("/srv/")
                && !p.starts_with("/etc/systemd/system/multi-user.target.wants/host-launch@")
                && !p.starts_with("/var/lib/dpkg/info/host-launch.")
        })
        .collect();
    assert!(
        unowned.is_empty(),
        "files of the project no one owns: {unowned:?}"
    );

    // An upgrade (here the same version again) stops nothing: the launcher keeps running.
    let pid = c.prop("host-launch@dns1", "MainPID");
    c.ok("cd /srv/deb && DEBIAN_FRONTEND=noninteractive apt-get install -y --reinstall ./host-launch.deb 2>&1");
    assert_eq!(c.prop("host-launch@dns1", "MainPID"), pid);
    dig_answers(&c, "192.0.2.53");

    // apt remove: both appliances stop cleanly; nothing else stops; specs and data stay.
    let out = c.ok("DEBIAN_FRONTEND=noninteractive apt-get remove -y host-launch 2>&1");
    assert!(out.contains("Removing host-launch"), "{out}");
    assert_eq!(c.prop("host-launch@dns1", "ActiveState"), "inactive");
    let st = c.ok("cat /run/host-launch/dns1/state.json /run/host-launch/dns2/state.json");
    assert_eq!(
        st.matches("\"exit_code\": 0").count() + st.matches("\"exit_code\":0").count(),
        2,
        "both appliances powered off cleanly: {st}"
    );
    assert_eq!(
        c.ok("pgrep -c -x linux || true").trim(),
        "0",
        "a UML is left running"
    );
    assert_eq!(c.prop("bystander", "ActiveState"), "active");
    c.ok("ip netns list | grep -qx 'hlapps.*' && ip -n hlapps link show br-hl");
    c.ok("test -f /etc/host-launch/dns1.json && test -f /var/lib/host-launch/dns1/data.img");
    c.ok("test -d /run/host-launch/dns1 && ! test -e /usr/bin/host-launch");

    // apt purge: the state goes, the data disk and the spec stay.
    let out = c.ok("DEBIAN_FRONTEND=noninteractive apt-get purge -y host-launch 2>&1");
    assert!(
        out.contains("data disks in /var/lib/host-launch are kept"),
        "{out}"
    );
    assert!(!c.sh("dpkg -s host-launch").status.success());
    c.ok("! test -e /run/host-launch && ! test -e /run/uml-vmm");
    c.ok("test -f /etc/host-launch/dns1.json && test -f /var/lib/host-launch/dns1/data.img");
    let left: Vec<String> = project_paths(&c)
        .into_iter()
        .filter(|p| !OPERATORS.contains(&p.as_str()) && !p.starts_with("/srv/"))
        .collect();
    assert!(left.is_empty(), "left after purge: {left:?}");
    assert_eq!(c.prop("bystander", "ActiveState"), "active");
}
