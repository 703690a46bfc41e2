//! Each appliance image boots under User-Mode Linux (e2e harness) and its service program
//! runs in the guest with its libraries and plugins: the manifest's service (user,
//! capabilities) runs the program's own configuration check, which loads everything the real
//! service loads, then exits, and the VM powers off cleanly.
//!
//! Serving on the network is tested end to end with host-launch in `appliances.rs`.

mod common;

use contract::Contract;
use e2e::{TempDir, Vm, VmOutcome};
use std::path::Path;
use std::time::Duration;

/// The contract from the image's manifest, with `argv` replaced, run once, plus `files`
/// and data disks at `/dev/ubdb`.
fn contract(name: &str, argv: &[&str], files: serde_json::Value) -> Contract {
    let r = common::recipe(name);
    let mut service = serde_json::to_value(&r.manifest.service).unwrap();
    service["argv"] = serde_json::json!(argv);
    service["restart"] = serde_json::json!({"policy": "never"});
    service["readiness"] = serde_json::json!({"type": "none"});
    let disks: Vec<serde_json::Value> = r
        .manifest
        .disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            serde_json::json!({
                "device": e2e::guest_disk(i + 1),
                "mount_point": d.mount_point,
                "fs_type": d.fs_type,
                "options": d.options,
                "format_if_blank": d.format_if_blank,
                "owner_uid": d.owner_uid,
                "owner_gid": d.owner_gid,
            })
        })
        .collect();
    let c = serde_json::json!({
        "version": 1,
        "hostname": name,
        "service": service,
        "mounts": {"disks": disks, "tmpfs": r.manifest.tmpfs},
        "files": files,
    });
    contract::parse_json(c.to_string().as_bytes())
        .unwrap_or_else(|e| panic!("{name}: contract: {e}"))
}

/// Boots `image` with a blank sparse data disk per manifest disk.
fn boot(name: &str, dir: &Path, image: &Path, c: &Contract) -> VmOutcome {
    let mut vm = Vm::new(image).timeout(Duration::from_secs(60));
    for i in 0..common::recipe(name).manifest.disks.len() {
        let disk = dir.join(format!("data{i}.img"));
        let f = std::fs::File::create(&disk).unwrap();
        f.set_len(32 << 20).unwrap();
        vm = vm.disk(disk, false);
    }
    let outcome = vm
        .contract_device(c)
        .run()
        .unwrap_or_else(|e| panic!("{name}: running the VM: {e}"));
    eprintln!("{}", outcome.report());
    outcome
}

#[test]
fn dns_image_runs_dnsmasq() {
    let dir = TempDir::new("boot-dns").unwrap();
    let built = common::build("dns", dir.path());
    let mut argv = common::recipe("dns").manifest.service.argv;
    argv.push("--test".into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let files = serde_json::json!([{
        "path": "/run/dnsmasq.conf",
        "content": "local=/example.net/\nhost-record=www.example.net,192.0.2.80\n"
    }]);
    let outcome = boot(
        "dns",
        dir.path(),
        &built.image,
        &contract("dns", &argv, files),
    );
    outcome.assert_clean_poweroff();
    outcome.assert_console_contains("dnsmasq: syntax check OK.");
    outcome.assert_console_contains("status=exited with code 0");
}

#[test]
fn web_image_runs_lighttpd() {
    let dir = TempDir::new("boot-web").unwrap();
    let built = common::build("web", dir.path());
    // The image's start script (it writes the listen lines the configuration includes) with
    // -tt for lighttpd: parse the configuration and also load the modules and pre-flight
    // checks.
    let argv = ["/bin/dash", "/usr/libexec/web-class/lighttpd-start", "-tt"];
    let outcome = boot(
        "web",
        dir.path(),
        &built.image,
        &contract("web", &argv, serde_json::json!([])),
    );
    outcome.assert_clean_poweroff();
    // The blank data disk was formatted by the image's own mke2fs.
    outcome.assert_console_contains("/data");
    outcome.assert_console_contains("status=exited with code 0");
}

#[test]
fn syslog_image_runs_rsyslog_with_its_plugins() {
    let dir = TempDir::new("boot-syslog").unwrap();
    let built = common::build("syslog", dir.path());
    // -N1: check the configuration, which loads imudp, imtcp and their helper modules.
    let argv = ["/usr/sbin/rsyslogd", "-N1", "-f", "/etc/rsyslog.conf"];
    let outcome = boot(
        "syslog",
        dir.path(),
        &built.image,
        &contract("syslog", &argv, serde_json::json!([])),
    );
    outcome.assert_clean_poweroff();
    outcome.assert_console_contains("End of config validation run. Bye.");
    outcome.assert_console_contains("status=exited with code 0");
}

#[test]
fn nginx_image_runs_nginx() {
    let dir = TempDir::new("boot-nginx").unwrap();
    let built = common::build("nginx", dir.path());
    // The image's start script (it writes the listen lines the configuration includes) with
    // -t for nginx: parse the configuration and open what it names (temp paths, the pid
    // file's place).
    let argv = ["/bin/dash", "/usr/libexec/web-class/nginx-start", "-t"];
    let outcome = boot(
        "nginx",
        dir.path(),
        &built.image,
        &contract("nginx", &argv, serde_json::json!([])),
    );
    outcome.assert_clean_poweroff();
    outcome.assert_console_contains("configuration file /etc/nginx/nginx.conf test is successful");
    outcome.assert_console_contains("status=exited with code 0");
}

#[test]
fn syslog_ng_image_runs_syslog_ng_with_its_modules() {
    let dir = TempDir::new("boot-syslog-ng").unwrap();
    let built = common::build("syslog-ng", dir.path());
    // --syntax-only with the manifest's own options: loads the modules the configuration uses.
    let mut argv = common::recipe("syslog-ng").manifest.service.argv;
    argv.push("--syntax-only".into());
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let outcome = boot(
        "syslog-ng",
        dir.path(),
        &built.image,
        &contract("syslog-ng", &argv, serde_json::json!([])),
    );
    outcome.assert_clean_poweroff();
    assert!(!outcome.console.contains("Error"), "{}", outcome.console);
    outcome.assert_console_contains("status=exited with code 0");
}
