//! The systemd side without a running systemd: `install-systemd` into a root directory, the
//! generator's output for a few specs (ordering, limits, enabling, a broken spec), and both
//! checked by `systemd-analyze verify` (systemd's own parser: an unknown or misspelt directive,
//! a relative path or a bad value is reported). The real systemd test is `systemd.rs`.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_host-launch");

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn generated_units_pass_systemd_analyze_verify() {
    let dir = std::env::temp_dir().join(format!("hl-units-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (specs, out, root) = (dir.join("specs"), dir.join("gen"), dir.join("root"));
    for d in [&specs, &out, &root] {
        std::fs::create_dir_all(d).unwrap();
    }
    let spec = |name: &str, text: &str| std::fs::write(specs.join(name), text).unwrap();
    spec(
        "dns1.json",
        r#"{"name":"dns1","image":"dns.img","memory_mib":48}"#,
    );
    spec(
        "web1.json",
        r#"{"name":"web1","image":"web.img","needs":["dns1"],"cpu_weight":200,"stop_timeout_ms":4000}"#,
    );
    spec("bad1.json", r#"{"name":"#);
    spec("notes.txt", "not a spec");
    let installed = run(Command::new(BIN)
        .args(["install-systemd", "--root"])
        .arg(&root));
    assert!(String::from_utf8_lossy(&installed.stdout).contains("host-launch@.service"));
    let unit_dir = root.join("etc/systemd/system");
    let template = std::fs::read_to_string(unit_dir.join("host-launch@.service")).unwrap();
    assert!(template.contains(&format!("ExecStart={BIN} run -q /etc/host-launch/%i.json")));
    let gen_script = root.join("etc/systemd/system-generators/host-launch-generator");
    let script = std::fs::read_to_string(&gen_script).unwrap();
    assert!(
        script.contains(&format!("exec {BIN} systemd-generator")),
        "{script}"
    );

    let template_path = unit_dir.join("host-launch@.service");
    let gen = run(Command::new(BIN)
        .arg("systemd-generator")
        .arg("--spec-dir")
        .arg(&specs)
        .arg("--template")
        .arg(&template_path)
        .args([&out, &out, &out]));
    let notes = String::from_utf8_lossy(&gen.stderr);
    assert!(
        notes.contains("bad1: ") && notes.contains("not valid JSON"),
        "{notes}"
    );

    let dropin = |n: &str| {
        std::fs::read_to_string(out.join(format!(
            "host-launch@{n}.service.d/50-host-launch-spec.conf"
        )))
    };
    let web = dropin("web1").unwrap();
    for line in [
        "Wants=host-launch@dns1.service",
        "After=host-launch@dns1.service",
        "MemoryMax=128M",
        "TasksMax=1056",
        "CPUWeight=200",
        "TimeoutStopSec=34",
        &format!("SourcePath={}", specs.join("web1.json").display()),
    ] {
        assert!(web.lines().any(|l| l == line), "{line} missing:\n{web}");
    }
    let dns = dropin("dns1").unwrap();
    assert!(
        dns.contains("MemoryMax=112M") && !dns.contains("Wants="),
        "{dns}"
    );
    assert!(
        dropin("bad1").is_err(),
        "no settings from an unreadable spec"
    );
    for n in ["dns1", "web1", "bad1"] {
        let link = out.join(format!("multi-user.target.wants/host-launch@{n}.service"));
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            template_path,
            "{n} enabled at boot"
        );
    }
    assert!(!out
        .join("multi-user.target.wants/host-launch@notes.service")
        .exists());

    // systemd's own reading of the template with the drop-ins.
    for entry in std::fs::read_dir(&out).unwrap() {
        let e = entry.unwrap();
        let to = unit_dir.join(e.file_name());
        run(Command::new("cp").arg("-r").arg(e.path()).arg(&to));
    }
    for n in ["dns1", "web1"] {
        let v = Command::new("systemd-analyze")
            .args(["verify", &format!("host-launch@{n}.service")])
            .env("SYSTEMD_UNIT_PATH", format!("{}:", unit_dir.display()))
            .output()
            .expect("systemd-analyze (package systemd) must be installed");
        let err = String::from_utf8_lossy(&v.stderr);
        let ours: Vec<&str> = err.lines().filter(|l| l.contains("host-launch")).collect();
        assert!(v.status.success() && ours.is_empty(), "verify {n}:\n{err}");
    }
    assert!(Path::new(&dir).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}
