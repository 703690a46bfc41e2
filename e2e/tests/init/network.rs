//! The network the contract describes (IPv4 and IPv6), the kernel's `ip=` fallback, and the
//! hostname, resolver files and identity the service sees.

use super::*;

#[test]
fn network_as_the_contract_says() {
    let (_dir, image) = image("net");
    let ns = NetNs::with_tap("tap0").expect("test network");
    let c = contract(json!({
        "version": 1,
        "hostname": "web1",
        "network": network(json!({
            "routes": [
                {"destination": "198.51.100.0/24", "gateway": "192.0.2.1"},
                {"destination": "::/0", "gateway": "2001:db8::1"}
            ],
            "dns_servers": ["192.0.2.53", "2001:db8::53"],
            "search_domains": ["example.test"]
        })),
        "service": {
            "name": "web",
            "argv": ["/bin/sh", "-c",
                     "ip -4 route; ip -6 route; exec httpd -f -p 8080 -h /www"],
            "readiness": {"type": "tcp", "port": 8080}
        }
    }));
    let vm = spawn(Vm::new(&image).network(&ns).contract_cmdline(&c));
    wait_event(&vm, "ready", BOOT);
    for (args, what) in [
        (vec!["ping", "-c", "1", "-W", "5", "192.0.2.10"], "ping"),
        (
            vec!["ping", "-6", "-c", "1", "-W", "5", "2001:db8::10"],
            "ping -6",
        ),
    ] {
        let out = ns.output("busybox", &args).expect("ping");
        assert!(
            out.status.success(),
            "{what} failed: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            vm.console()
        );
    }
    for url in [
        "http://192.0.2.10:8080/index.html",
        "http://[2001:db8::10]:8080/index.html",
    ] {
        let out = ns
            .output("curl", &["-sS", "-g", "--max-time", "10", url])
            .expect("curl");
        assert!(
            out.status.success(),
            "GET {url} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            vm.console()
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), PAGE, "GET {url}");
    }
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    outcome.assert_events_in_order(&[
        "contract_loaded",
        "network_up",
        "service_started",
        "ready",
        "shutting_down",
        "power_off",
    ]);
    let up = outcome.expect_event("network_up");
    let addresses = up.field("addresses").to_string();
    for a in ["192.0.2.10/24", "2001:db8::10/64"] {
        assert!(addresses.contains(a), "{a} not in {addresses}");
    }
    let ready = outcome.expect_event("ready");
    assert_eq!(
        ready.str("via"),
        Some("tcp 127.0.0.1:8080"),
        "{:?}",
        ready.json
    );
    let routes = service_lines(&outcome, "web").join("\n");
    for r in [
        "198.51.100.0/24 via 192.0.2.1 dev vec0",
        "192.0.2.0/24 dev vec0",
        "default via 2001:db8::1 dev vec0",
        "2001:db8::/64 dev vec0",
    ] {
        assert!(routes.contains(r), "route {r:?} not in\n{routes}");
    }
}

/// Whether the kernel under test has IPv6 as a module: Debian's user-mode-linux package ships
/// `ipv6.ko` for its kernel's release; a kernel with no such module (the project's,
/// kernel/build) has IPv6 built in.
fn ipv6_is_a_module() -> bool {
    let kernel = e2e::kernel_path();
    let out = Command::new(&kernel)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{} --version: {e}", kernel.display()));
    let release = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !release.is_empty(),
        "{} --version printed nothing",
        kernel.display()
    );
    e2e::uml_modules_dir()
        .join(&release)
        .join(e2e::IPV6_MODULES[0])
        .exists()
}

#[test]
fn ipv6_in_an_image_without_modules_needs_a_kernel_with_ipv6_built_in() {
    let dir = TempDir::new("noipv6ko").expect("temporary directory");
    let image = dir.join("root.img");
    RootFs::new()
        .busybox(&APPLETS)
        .bytes("/www/index.html", PAGE, 0o644)
        .build(&image)
        .unwrap_or_else(|e| panic!("building the root image: {e}"));
    let ns = NetNs::with_tap("tap0").expect("test network");
    let c = contract(json!({
        "version": 1,
        "hostname": "v6",
        "network": network(json!({})),
        "service": {
            "name": "web",
            "argv": ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"],
            "readiness": {"type": "tcp", "port": 8080}
        }
    }));
    let vm = Vm::new(&image).network(&ns).contract_cmdline(&c);
    if ipv6_is_a_module() {
        // Debian's kernel: guest-init must say which module the image lacks.
        let outcome = run(vm);
        super::fatal::assert_runtime_fatal(&outcome, "network", "ipv6.ko");
        return;
    }
    let vm = spawn(vm);
    wait_event(&vm, "ready", BOOT);
    let out = ns
        .output(
            "curl",
            &[
                "-sS",
                "-g",
                "--max-time",
                "10",
                "http://[2001:db8::10]:8080/index.html",
            ],
        )
        .expect("curl");
    assert!(
        out.status.success(),
        "GET over IPv6 failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        vm.console()
    );
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    assert!(
        !outcome.console.contains("ipv6.ko"),
        "guest-init looked for a module:\n{}",
        outcome.report()
    );
}

#[test]
fn kernel_ip_parameter_configures_the_network_when_the_contract_has_none() {
    let (_dir, image) = image("ip-param");
    let ns = NetNs::with_tap("tap0").expect("test network");
    let c = contract(json!({
        "version": 1,
        "hostname": "web2",
        "service": {
            "name": "web",
            "argv": ["/bin/sh", "-c", "ip -4 route; exec httpd -f -p 8080 -h /www"],
            "readiness": {"type": "tcp", "port": 8080}
        }
    }));
    let vm = spawn(
        Vm::new(&image)
            .network(&ns)
            .arg("ip=192.0.2.10::192.0.2.1:255.255.255.0::vec0:off")
            .contract_cmdline(&c),
    );
    wait_event(&vm, "ready", BOOT);
    let out = ns
        .output(
            "curl",
            &[
                "-sS",
                "--max-time",
                "10",
                "http://192.0.2.10:8080/index.html",
            ],
        )
        .expect("curl");
    assert!(
        out.status.success(),
        "GET failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        vm.console()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), PAGE);
    let outcome = cad_and_wait(vm);
    outcome.assert_clean_poweroff();
    let loaded = outcome.expect_event("contract_loaded");
    assert_eq!(
        loaded.str("network"),
        Some("ip= parameter"),
        "{:?}",
        loaded.json
    );
    let routes = service_lines(&outcome, "web").join("\n");
    assert!(
        routes.contains("default via 192.0.2.1 dev vec0"),
        "no default route from ip= in\n{routes}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. What the service sees
// ---------------------------------------------------------------------------------------------

#[test]
fn hostname_resolver_and_identity_seen_by_the_service() {
    let (_dir, image) = image("seen");
    let ns = NetNs::with_tap("tap0").expect("test network");
    let c = contract(json!({
        "version": 1,
        "hostname": "seen1",
        "network": network(json!({
            "dns_servers": ["192.0.2.53", "2001:db8::53"],
            "search_domains": ["example.test", "lab.example"]
        })),
        "logging": {"console": true},
        "service": {
            "name": "probe",
            "argv": ["/bin/sh", "-c",
                     "echo host=$(hostname); cat /etc/resolv.conf; cat /etc/hosts; id"],
            "uid": 1000, "gid": 1001, "groups": [2000],
            "restart": {"policy": "never"}
        }
    }));
    let outcome = run(Vm::new(&image).network(&ns).contract_cmdline(&c));
    outcome.assert_clean_poweroff();
    // The console copy of a line has its tabs turned into spaces (syslog-safe text).
    let lines: Vec<String> = service_lines(&outcome, "probe")
        .into_iter()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let text = lines.join("\n");
    assert!(lines.iter().any(|l| l == "host=seen1"), "{text}");
    for want in [
        "nameserver 192.0.2.53",
        "nameserver 2001:db8::53",
        "search example.test lab.example",
        "127.0.0.1 localhost",
        "192.0.2.10 seen1",
        "2001:db8::10 seen1",
        "uid=1000 gid=1001 groups=2000",
    ] {
        assert!(
            lines.iter().any(|l| l == want),
            "no line {want:?} in the service's output:\n{text}\n{}",
            outcome.report()
        );
    }
    let off = outcome.expect_event("power_off");
    assert_eq!(off.i64("code"), Some(0), "{:?}", off.json);
}

// ---------------------------------------------------------------------------------------------
// 3. Remote syslog
// ---------------------------------------------------------------------------------------------
