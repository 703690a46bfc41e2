//! uml-runc under containerd 1.6 (Debian's) as Kubernetes reaches it: containerd started by
//! the test in a network namespace of the test's own (see `containerd/mod.rs`), its CRI
//! runtime handler `uml` = the runc shim with `BinaryName` uml-runc, and kubelet's calls made
//! through a CRI client (`k8s-cri`, tonic) over containerd's socket:
//!
//! - our DNS appliance: Version, RunPodSandbox (handler `uml`, a cgroup parent as kubelet's
//!   cgroupfs driver gives), ImageStatus, CreateContainer (a configMap-style file mount, a
//!   memory annotation), StartContainer, ContainerStatus running, `dig` to the pod's IP
//!   answers, the CRI log file has dnsmasq's lines, ContainerStats and ListContainerStats give
//!   the VM's CPU time and memory, `ctr task ps` the VM's processes, ExecSync is refused with
//!   the reason, StopContainer powers the guest off cleanly within its timeout (exit code 0),
//!   RemoveContainer and RemovePodSandbox leave no UML process, TAP, namespace, mount, cgroup,
//!   shim or file behind;
//! - a foreign image (Debian's lighttpd, nothing of ours in it) serves `curl` in a pod, and a
//!   container whose command exits with 7 reports exit code 7;
//! - a pod's host-path volume at `/data` holds the syslog appliance's data disk image: two
//!   containers in turn each store a message, and the web image's shell in a third reads
//!   both from the disk; the same with a loop device as a `volumeMode: Block` claim;
//! - `ctr run` with the runc shim's `--runc-binary` uml-runc runs the DNS appliance in a
//!   namespace of the test's and `ctr task kill` stops it cleanly.
//!
//! Needs root, losetup, containerd, ctr, containernetworking-plugins, podman (it makes the images'
//! archives), dig, curl, busybox-static, debootstrap's cached root (scripts/foreign-rootfs);
//! fails, rather than skips, without them.

mod containerd;
mod lab;

use containerd::client::{cri, Cri};
use containerd::{config, images, wait_for, Containerd, CGROUP_PARENT};
use lab::{processes_of, Lab};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A lab with containerd up and the sandbox image imported.
fn lab_with_containerd(label: &str) -> (Lab, Containerd, Cri) {
    let lab = Lab::new(label);
    let c = Containerd::start(&lab);
    images::import_sandbox(&lab, &c);
    let cri = Cri::connect(&c.socket);
    (lab, c, cri)
}

/// A pod as kubelet describes it: metadata, log directory, cgroup parent.
fn pod_config(lab: &Lab, name: &str) -> cri::PodSandboxConfig {
    let uid = format!("{name}-{}", std::process::id());
    let logs = lab.join(&format!("pods/{name}"));
    std::fs::create_dir_all(&logs).expect("the pod's log directory");
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: name.into(),
            uid: uid.clone(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: format!("/{CGROUP_PARENT}/pod{uid}"),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// RunPodSandbox with the handler `uml`; returns the pod's id and IP.
fn run_pod(cri: &Cri, pc: &cri::PodSandboxConfig) -> (String, String) {
    let id = cri
        .call(cri.rs().run_pod_sandbox(cri::RunPodSandboxRequest {
            config: Some(pc.clone()),
            runtime_handler: config::HANDLER.into(),
        }))
        .expect("RunPodSandbox")
        .pod_sandbox_id;
    let st = cri
        .call(cri.rs().pod_sandbox_status(cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: false,
        }))
        .expect("PodSandboxStatus");
    let status = st.status.expect("a pod status");
    assert_eq!(
        status.state,
        cri::PodSandboxState::SandboxReady as i32,
        "the pod is not ready"
    );
    let ip = status.network.map(|n| n.ip).unwrap_or_default();
    assert!(ip.starts_with("198.51.100."), "the pod's IP: {ip:?}");
    (id, ip)
}

/// CreateContainer then StartContainer; returns the container's id.
fn create_and_start(
    cri: &Cri,
    pod: &str,
    pc: &cri::PodSandboxConfig,
    cc: cri::ContainerConfig,
) -> String {
    let id = cri
        .call(cri.rs().create_container(cri::CreateContainerRequest {
            pod_sandbox_id: pod.into(),
            config: Some(cc),
            sandbox_config: Some(pc.clone()),
        }))
        .expect("CreateContainer")
        .container_id;
    cri.call(cri.rs().start_container(cri::StartContainerRequest {
        container_id: id.clone(),
    }))
    .expect("StartContainer");
    id
}

fn container_status(cri: &Cri, id: &str) -> cri::ContainerStatus {
    cri.call(cri.rs().container_status(cri::ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    }))
    .expect("ContainerStatus")
    .status
    .expect("a container status")
}

fn container_config(name: &str, image: &str) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        log_path: format!("{name}.log"),
        ..Default::default()
    }
}

/// StopContainer with kubelet's grace period; returns how long it took and the status after.
fn stop(cri: &Cri, id: &str, timeout: i64) -> (Duration, cri::ContainerStatus) {
    let t = Instant::now();
    cri.call(cri.rs().stop_container(cri::StopContainerRequest {
        container_id: id.into(),
        timeout,
    }))
    .expect("StopContainer");
    (t.elapsed(), container_status(cri, id))
}

fn remove_container(cri: &Cri, id: &str) {
    cri.call(cri.rs().remove_container(cri::RemoveContainerRequest {
        container_id: id.into(),
    }))
    .expect("RemoveContainer");
}

fn remove_pod(cri: &Cri, pod: &str) {
    cri.call(cri.rs().stop_pod_sandbox(cri::StopPodSandboxRequest {
        pod_sandbox_id: pod.into(),
    }))
    .expect("StopPodSandbox");
    cri.call(cri.rs().remove_pod_sandbox(cri::RemovePodSandboxRequest {
        pod_sandbox_id: pod.into(),
    }))
    .expect("RemovePodSandbox");
}

/// The CRI log file's text (kubelet's format: `TIME STREAM TAG LINE`).
fn log_text(pc: &cri::PodSandboxConfig, name: &str) -> String {
    std::fs::read_to_string(Path::new(&pc.log_directory).join(format!("{name}.log")))
        .unwrap_or_default()
}

/// The cgroup directories of the pod's parent in every hierarchy that has it.
fn pod_cgroups(pc: &cri::PodSandboxConfig) -> Vec<PathBuf> {
    let parent = pc
        .linux
        .as_ref()
        .map(|l| l.cgroup_parent.trim_start_matches('/').to_string())
        .unwrap_or_default();
    uml_runc::cgroup::hierarchies()
        .expect("the cgroup hierarchies")
        .into_iter()
        .map(|h| h.join(&parent))
        .filter(|d| d.is_dir())
        .collect()
}

/// After RemovePodSandbox: no runtime state, process of the VM's uid, pod namespace, mount
/// below the lab, shim, task directory or container cgroup is left (the pod's own cgroup is
/// kubelet's to remove: the lab does).
fn assert_nothing_left(
    lab: &Lab,
    c: &Containerd,
    uid: u32,
    netns: &Path,
    pc: &cri::PodSandboxConfig,
) {
    lab.assert_nothing_left(uid, netns);
    let mounts = Containerd::mounts_below(&c.dir);
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    let mounts = Containerd::mounts_below(&lab.state);
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    wait_for("the pod's shim to exit", Duration::from_secs(10), || {
        c.shims().is_empty().then_some(())
    });
    // The shim's bundles, and the CRI's own directories of each container and sandbox.
    for d in [
        "state/io.containerd.runtime.v2.task/k8s.io",
        "root/io.containerd.grpc.v1.cri/containers",
        "root/io.containerd.grpc.v1.cri/sandboxes",
        "state/io.containerd.grpc.v1.cri/containers",
        "state/io.containerd.grpc.v1.cri/sandboxes",
    ] {
        let left: Vec<_> = std::fs::read_dir(c.dir.join(d))
            .unwrap_or_else(|e| panic!("containerd's {d}: {e}"))
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "left in {d}: {left:?}");
    }
    for d in pod_cgroups(pc) {
        let inner: Vec<_> = std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name())
            .collect();
        assert!(
            inner.is_empty(),
            "container cgroups left in {d:?}: {inner:?}"
        );
    }
}

#[test]
fn kubelets_calls_run_our_dns_appliance_in_a_pod() {
    let (lab, c, cri) = lab_with_containerd("urunc-cri-dns");
    let v = cri
        .call(cri.rs().version(cri::VersionRequest {
            version: "v1".into(),
        }))
        .expect("Version");
    assert_eq!(v.runtime_name, "containerd", "{v:?}");
    assert_eq!(v.runtime_api_version, "v1", "{v:?}");
    images::import_dns(&lab, &c);
    let img = cri
        .call(cri.is().image_status(cri::ImageStatusRequest {
            image: Some(cri::ImageSpec {
                image: images::DNS.into(),
                ..Default::default()
            }),
            verbose: false,
        }))
        .expect("ImageStatus");
    assert!(img.image.is_some(), "{} was not imported", images::DNS);

    let mut pc = pod_config(&lab, "dns1");
    // containerd passes no image annotation or label into the bundle: our image's manifest
    // reaches uml-runc as the pod's annotation (the handler's pod_annotations lets it through).
    let manifest =
        std::fs::read_to_string(lab.join("dns.img.manifest.json")).expect("the image's manifest");
    pc.annotations = [(
        "org.host-contract.manifest.v1".to_string(),
        manifest.clone(),
    )]
    .into();
    let (pod, ip) = run_pod(&cri, &pc);
    let conf = lab.dnsmasq_conf();
    let mut cc = container_config("dns", images::DNS);
    // A configMap's file, as kubelet mounts it (subPath): a contract file in the guest.
    cc.mounts = vec![cri::Mount {
        container_path: "/run/dnsmasq.conf".into(),
        host_path: conf.display().to_string(),
        readonly: true,
        ..Default::default()
    }];
    cc.annotations = [("org.host-contract.memory-mib".to_string(), "72".to_string())].into();
    let id = create_and_start(&cri, &pod, &pc, cc);
    let st = container_status(&cri, &id);
    assert_eq!(
        st.state,
        cri::ContainerState::ContainerRunning as i32,
        "{st:?}"
    );
    let (uid, netns) = lab.vm_uid_netns(&id);
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(lab.state.join(&id).join("state.json")).expect("state.json"),
    )
    .expect("state JSON");
    assert_eq!(
        state["annotations"]["org.host-contract.manifest.v1"].as_str(),
        Some(manifest.as_str()),
        "the pod's manifest annotation did not reach the bundle"
    );
    lab.wait_for_answer(
        &ip,
        "www.example.net",
        "192.0.2.80",
        Duration::from_secs(60),
    );
    let cmdlines = lab::command_lines_of(uid);
    assert!(
        cmdlines.iter().any(|c| c.contains(" mem=72M ")),
        "the memory annotation (container_annotations) did not reach UML: {cmdlines:?}"
    );
    let text = wait_for(
        "dnsmasq's query line in the CRI log",
        Duration::from_secs(10),
        || {
            let t = log_text(&pc, "dns");
            t.contains(&format!(
                "query[A] www.example.net from {}",
                containerd::POD_GATEWAY
            ))
            .then_some(t)
        },
    );
    assert!(
        text.contains(" stdout F "),
        "not the CRI log format: {text}"
    );

    check_stats_and_processes(&cri, &c, &pod, &id, uid);
    // Kubelet's exec probes and `kubectl exec` get the reason, not a hang.
    let e = cri
        .call(cri.rs().exec_sync(cri::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["cat".into(), "/etc/hostname".into()],
            timeout: 10,
        }))
        .expect_err("ExecSync into a VM");
    assert!(
        e.message().contains("not supported by uml-runc"),
        "ExecSync: {e:?}"
    );

    let (took, st) = stop(&cri, &id, 10);
    assert!(
        took < Duration::from_secs(10),
        "StopContainer took {took:?}: past its timeout"
    );
    assert_eq!(
        st.state,
        cri::ContainerState::ContainerExited as i32,
        "{st:?}"
    );
    assert_eq!(
        st.exit_code, 0,
        "dnsmasq exits 0 on the graceful stop: {st:?}"
    );
    let text = log_text(&pc, "dns");
    assert!(
        text.contains("exiting on receipt of SIGTERM")
            && text.contains("guest-init: power off")
            && text.contains("reason=requested"),
        "the guest did not power off cleanly: {text}"
    );
    remove_container(&cri, &id);
    remove_pod(&cri, &pod);
    assert_nothing_left(&lab, &c, uid, &netns, &pc);
    eprintln!("cri dns: StopContainer took {took:?}");
}

/// ContainerStats, ListContainerStats and PodSandboxStats give the VM's figures (its cgroup: the monitor and
/// UML's processes), and `ctr task ps` (the shim's Pids, uml-runc's `ps`) lists every process
/// of the VM's uid.
fn check_stats_and_processes(cri: &Cri, c: &Containerd, pod: &str, id: &str, uid: u32) {
    let s = cri
        .call(cri.rs().container_stats(cri::ContainerStatsRequest {
            container_id: id.into(),
        }))
        .expect("ContainerStats")
        .stats
        .expect("stats");
    let cpu = s
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value)
        .unwrap_or(0);
    let mem = s
        .memory
        .and_then(|m| m.working_set_bytes)
        .map(|v| v.value)
        .unwrap_or(0);
    eprintln!("cri dns: ContainerStats cpu {cpu} ns, working set {mem} bytes");
    // A booted UML has spent CPU time and touched megabytes of its memory; the whole host's
    // figures (a monitor left in the root cgroup) would be far above 1 GiB.
    assert!(cpu > 10_000_000, "CPU time {cpu} ns");
    assert!(
        (4 << 20..1 << 30).contains(&mem),
        "working set {mem} bytes is not one VM's"
    );
    let all = cri
        .call(
            cri.rs()
                .list_container_stats(cri::ListContainerStatsRequest { filter: None }),
        )
        .expect("ListContainerStats");
    assert!(
        all.stats
            .iter()
            .any(|s| s.attributes.as_ref().is_some_and(|a| a.id == id)),
        "ListContainerStats lacks {id}"
    );
    // The pod's figures (kubelet's CRI stats provider), from the pod's cgroup parent: the
    // sandbox's placeholder and the VM.
    let pod = cri
        .call(cri.rs().pod_sandbox_stats(cri::PodSandboxStatsRequest {
            pod_sandbox_id: pod.into(),
        }))
        .expect("PodSandboxStats")
        .stats
        .and_then(|s| s.linux)
        .expect("the pod's Linux stats");
    let pod_cpu = pod
        .cpu
        .and_then(|c| c.usage_core_nano_seconds)
        .map(|v| v.value)
        .unwrap_or(0);
    eprintln!("cri dns: PodSandboxStats cpu {pod_cpu} ns");
    assert!(
        pod_cpu >= cpu,
        "the pod's CPU time {pod_cpu} ns < its container's {cpu} ns"
    );
    let out = c.ctr_ok(&["task", "ps", id]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let listed: Vec<u32> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    for p in processes_of(uid) {
        assert!(
            listed.contains(&p),
            "ctr task ps lacks the VM's {p}: {text}"
        );
    }
}

#[test]
fn a_foreign_image_serves_in_a_pod_and_its_exit_code_comes_back() {
    let (lab, c, cri) = lab_with_containerd("urunc-cri-web");
    images::import_foreign(&lab, &c);
    let pc = pod_config(&lab, "web1");
    let (pod, ip) = run_pod(&cri, &pc);
    let id = create_and_start(&cri, &pod, &pc, container_config("web", images::FOREIGN));
    let (uid, netns) = lab.vm_uid_netns(&id);
    let url = format!("http://{ip}/");
    let got = wait_for("lighttpd's answer", Duration::from_secs(90), || {
        let out = lab
            .ns
            .output("curl", &["-sS", "--max-time", "2", &url])
            .expect("running curl");
        let t = String::from_utf8_lossy(&out.stdout).into_owned();
        t.contains("hello from a plain Debian image").then_some(t)
    });
    assert!(got.contains("hello"));
    assert!(
        log_text(&pc, "web").contains("service started: argv0=/usr/sbin/lighttpd"),
        "{}",
        log_text(&pc, "web")
    );
    let (took, st) = stop(&cri, &id, 10);
    assert!(
        took < Duration::from_secs(10),
        "StopContainer took {took:?}"
    );
    assert_eq!(st.exit_code, 0, "lighttpd exits 0 on SIGTERM: {st:?}");
    remove_container(&cri, &id);

    // The pod's next container: a command that exits with 7.
    let mut cc = container_config("seven", images::FOREIGN);
    cc.command = vec!["sh".into(), "-c".into(), "echo bye; exit 7".into()];
    let seven = create_and_start(&cri, &pod, &pc, cc);
    let st = wait_for("the container to exit", Duration::from_secs(60), || {
        let st = container_status(&cri, &seven);
        (st.state == cri::ContainerState::ContainerExited as i32).then_some(st)
    });
    assert_eq!(st.exit_code, 7, "{st:?}");
    assert!(
        log_text(&pc, "seven").contains(" stdout F sh: bye"),
        "{}",
        log_text(&pc, "seven")
    );
    remove_container(&cri, &seven);
    remove_pod(&cri, &pod);
    assert_nothing_left(&lab, &c, uid, &netns, &pc);
}

#[test]
fn ctr_run_with_uml_runc_as_the_runc_binary_runs_and_stops_the_dns_appliance() {
    let lab = Lab::new("urunc-ctr");
    let c = Containerd::start(&lab);
    images::import_dns(&lab, &c);
    // The container's network namespace: a veth from the lab's namespace, as a CNI plugin
    // would make it (ctr's own --cni reads only /etc/cni/net.d).
    let ns = e2e::NetNs::new().expect("the container's network namespace");
    lab.ns
        .ip(&[
            "link",
            "add",
            "ctr0",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ])
        .expect("the veth");
    lab.ns
        .ip(&["addr", "add", "203.0.113.1/24", "dev", "ctr0"])
        .expect("address");
    lab.ns.ip(&["link", "set", "ctr0", "up"]).expect("up");
    ns.ip(&["addr", "add", "203.0.113.53/24", "dev", "eth0"])
        .expect("address");
    ns.ip(&["link", "set", "eth0", "up"]).expect("up");
    let conf = lab.dnsmasq_conf();
    // Unique on the host: ctr puts the container in the cgroup /k8s.io/ID.
    let id = format!("dns-ctr-{}", std::process::id());
    let out_file = lab.join("ctr-run.out");
    let mut run = c.ctr_cmd(&[
        "run",
        "--rm",
        "--runtime",
        "io.containerd.runc.v2",
        "--runc-binary",
        lab::path_str(&lab.wrapper),
        "--runc-root",
        lab::path_str(&c.runc_root),
        "--with-ns",
        &format!("network:{}", ns.path().display()),
        "--mount",
        &format!(
            "type=bind,src={},dst=/run/dnsmasq.conf,options=rbind:ro",
            conf.display()
        ),
        images::DNS,
        &id,
    ]);
    let f = std::fs::File::create(&out_file).expect("ctr's output");
    let mut child = run
        .stdout(f.try_clone().expect("fd"))
        .stderr(f)
        .spawn()
        .expect("ctr run");
    lab.wait_for_answer(
        "203.0.113.53",
        "www.example.net",
        "192.0.2.80",
        Duration::from_secs(60),
    );
    let (uid, _) = lab.vm_uid_netns(&id);
    pause_and_resume(&lab, &c, &id);
    // A stop of a paused VM thaws it first: it powers off as a running one does.
    c.ctr_ok(&["task", "pause", &id]);
    let t = Instant::now();
    c.ctr_ok(&["task", "kill", "--signal", "SIGTERM", &id]);
    let status = wait_for("ctr run to return", Duration::from_secs(20), || {
        child.try_wait().expect("waiting for ctr")
    });
    let took = t.elapsed();
    let text = std::fs::read_to_string(&out_file).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "ctr run's exit status: {text}");
    assert!(took < Duration::from_secs(10), "the stop took {took:?}");
    assert!(
        text.contains("guest-init: power off") && text.contains("reason=requested"),
        "the guest did not power off cleanly: {text}"
    );
    let listed = c.ctr_ok(&["containers", "list", "-q"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).trim().is_empty(),
        "ctr run --rm left a container"
    );
    assert!(lab.runtime_containers().is_empty(), "uml-runc state left");
    assert!(
        processes_of(uid).is_empty(),
        "processes of the VM's uid left"
    );
    assert!(!ns.has_link("uml0"), "the TAP device left");
    let mounts = Containerd::mounts_below(&c.dir);
    assert!(mounts.is_empty(), "mounts left: {mounts:?}");
    for h in uml_runc::cgroup::hierarchies().expect("the cgroup hierarchies") {
        let d = h.join("k8s.io").join(&id);
        assert!(!d.exists(), "the container's cgroup {d:?} left");
    }
    eprintln!("ctr: the stop took {took:?}");
}

/// `ctr task pause` freezes the VM (uml-runc's `pause`, the cgroup's freezer): no answer,
/// the task and the runtime's state say paused; `ctr task resume` thaws it and it answers.
/// The stop that follows finds it paused again.
fn pause_and_resume(lab: &Lab, c: &Containerd, id: &str) {
    c.ctr_ok(&["task", "pause", id]);
    let tasks = String::from_utf8_lossy(&c.ctr_ok(&["task", "ls"]).stdout).into_owned();
    assert!(tasks.contains("PAUSED"), "ctr task ls: {tasks}");
    let out = Command::new(&lab.wrapper)
        .args([
            "--root",
            lab::path_str(&c.runc_root.join("k8s.io")),
            "state",
            id,
        ])
        .output()
        .expect("uml-runc state");
    let state = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        state.contains("\"status\": \"paused\""),
        "uml-runc state: {state}"
    );
    let got = lab.dig("203.0.113.53", "www.example.net");
    assert!(!got.contains("192.0.2.80"), "a paused VM answered: {got}");
    c.ctr_ok(&["task", "resume", id]);
    lab.wait_for_answer(
        "203.0.113.53",
        "www.example.net",
        "192.0.2.80",
        Duration::from_secs(10),
    );
}

/// A container of our image `recipe` whose manifest (the image builder's) comes as the
/// container's annotation, with the pod's directory `dir` mounted at `/data` (a `hostPath`
/// or filesystem claim as kubelet passes it) and a 64 MiB disk image asked for.
fn with_data_volume(
    lab: &Lab,
    name: &str,
    image: &str,
    recipe: &str,
    dir: &Path,
) -> cri::ContainerConfig {
    let manifest = std::fs::read_to_string(lab.join(&format!("{recipe}.img.manifest.json")))
        .expect("the image's manifest");
    let mut cc = container_config(name, image);
    cc.mounts = vec![cri::Mount {
        container_path: "/data".into(),
        host_path: dir.display().to_string(),
        ..Default::default()
    }];
    cc.annotations = [
        ("org.host-contract.manifest.v1".to_string(), manifest),
        (
            "org.host-contract.data-size-mib".to_string(),
            "64".to_string(),
        ),
    ]
    .into();
    cc
}

#[test]
fn a_pods_host_path_and_block_volumes_keep_the_syslog_data() {
    let (lab, c, cri) = lab_with_containerd("urunc-cri-volume");
    let syslog = images::import_ours(&lab, &c, "syslog");
    let web = images::import_ours(&lab, &c, "web");
    let dir = lab.join("pod-data");
    std::fs::create_dir_all(&dir).expect("the volume's directory");
    let pc = pod_config(&lab, "log1");
    let (pod, ip) = run_pod(&cri, &pc);
    let mut vm = None;
    // The container re-created, as kubelet does after a restart or an update.
    for attempt in 0..2u32 {
        let mut cc = with_data_volume(&lab, "syslog", &syslog, "syslog", &dir);
        if let Some(m) = cc.metadata.as_mut() {
            m.attempt = attempt;
        }
        cc.log_path = format!("syslog-{attempt}.log");
        let id = create_and_start(&cri, &pod, &pc, cc);
        vm = Some(lab.vm_uid_netns(&id));
        lab.send_syslog(&ip, &format!("stored-by-attempt-{attempt}"));
        std::thread::sleep(Duration::from_millis(500));
        let (_, st) = stop(&cri, &id, 10);
        assert_eq!(st.exit_code, 0, "{st:?}");
        remove_container(&cri, &id);
    }
    let log = std::fs::read_to_string(Path::new(&pc.log_directory).join("syslog-0.log"))
        .unwrap_or_default();
    assert!(log.contains("formatted=true mount_point=/data"), "{log}");
    let m = std::fs::metadata(dir.join(".uml-data.img")).expect("the disk image");
    assert_eq!(m.len(), 64 << 20);
    // The web image's shell as syslog's user reads what both stored.
    let mut cc = with_data_volume(&lab, "reader", &web, "web", &dir);
    cc.command = vec!["/bin/dash".into()];
    cc.args = vec!["-c".into(), lab::PRINT_LOGS.into()];
    cc.linux = as_syslog_user();
    let text = read_back(&cri, &pod, &pc, cc);
    for want in [
        "podvol28 14 test - stored-by-attempt-0",
        "podvol28 14 test - stored-by-attempt-1",
    ] {
        assert!(text.contains(want), "no {want:?} on the disk: {text}");
    }
    // A claim of volumeMode: Block, as kubelet passes it (CreateContainer's devices): the
    // loop device is the data disk, formatted by the first guest, read by the next.
    let dev = lab::Loop::new(64);
    let block = |name: &str, image: &str, recipe: &str| {
        let mut cc = with_data_volume(&lab, name, image, recipe, &dir);
        cc.mounts.clear();
        cc.devices = vec![cri::Device {
            container_path: "/dev/xvdb".into(),
            host_path: dev.dev.clone(),
            permissions: "rwm".into(),
        }];
        cc
    };
    let id = create_and_start(&cri, &pod, &pc, block("block", &syslog, "syslog"));
    lab.send_syslog(&ip, "stored-on-the-block-device");
    std::thread::sleep(Duration::from_millis(500));
    let (_, st) = stop(&cri, &id, 10);
    assert_eq!(st.exit_code, 0, "{st:?}");
    remove_container(&cri, &id);
    let mut cc = block("block-reader", &web, "web");
    cc.command = vec!["/bin/dash".into()];
    cc.args = vec!["-c".into(), lab::PRINT_LOGS.into()];
    cc.linux = as_syslog_user();
    let text = read_back(&cri, &pod, &pc, cc);
    assert!(
        text.contains("podvol28 14 test - stored-on-the-block-device"),
        "{text}"
    );
    assert!(
        !text.contains("stored-by-attempt"),
        "the device is not the directory's disk: {text}"
    );
    remove_pod(&cri, &pod);
    let (uid, netns) = vm.expect("a syslog container ran");
    assert_nothing_left(&lab, &c, uid, &netns, &pc);
}

/// kubelet's `runAsUser`/`runAsGroup` 102: the syslog image's user, who reads its files.
fn as_syslog_user() -> Option<cri::LinuxContainerConfig> {
    Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: 102 }),
            run_as_group: Some(cri::Int64Value { value: 102 }),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Runs a reading container to its end (exit code 0) and removes it; its CRI log's text.
fn read_back(cri: &Cri, pod: &str, pc: &cri::PodSandboxConfig, cc: cri::ContainerConfig) -> String {
    let name = cc
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let id = create_and_start(cri, pod, pc, cc);
    let st = wait_for("the reader to exit", Duration::from_secs(90), || {
        let st = container_status(cri, &id);
        (st.state == cri::ContainerState::ContainerExited as i32).then_some(st)
    });
    let text = log_text(pc, &name);
    assert_eq!(st.exit_code, 0, "{st:?}: {text}");
    remove_container(cri, &id);
    text
}
