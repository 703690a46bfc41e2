//! containerd's configuration for the lab, as a node's `/etc/containerd/config.toml` would
//! have it for uml-runc (uml-runc/README.md shows the same runtime entry), with every path in
//! the lab's directory; and the CNI network (bridge + host-local) the pods get.

use std::path::{Path, PathBuf};

/// The runtime handler a pod names (`RuntimeClass.handler`).
pub const HANDLER: &str = "uml";
/// The sandbox ("pause") image the CRI runs each pod's sandbox container from.
pub const SANDBOX_IMAGE: &str = "localhost/pause:uml";

/// Writes `config.toml` and the CNI config into `dir`; returns the config's path.
/// `runtime` is uml-runc (here its wrapper), `runtime_root` its `--root`.
pub fn write(dir: &Path, runtime: &Path, runtime_root: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("cni")).expect("containerd's directory");
    let d = dir.display();
    let toml = format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
# Plugins that would look for host set-ups this lab has no use for.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{SANDBOX_IMAGE}"
  # The streaming server (exec, attach, port-forward) on loopback, any port.
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  # The pods' network namespaces in the lab's directory, not /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}]
      runtime_type = "io.containerd.runc.v2"
      pod_annotations = ["org.host-contract.*"]
      container_annotations = ["org.host-contract.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}.options]
        BinaryName = "{runtime}"
        Root = "{runtime_root}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
"#,
        runtime = runtime.display(),
        runtime_root = runtime_root.display(),
    );
    let conf = dir.join("config.toml");
    std::fs::write(&conf, toml).expect("config.toml");
    let cni = serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "uml-pods",
        "plugins": [{
            "type": "bridge",
            "bridge": "cri0",
            "isGateway": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": super::POD_SUBNET, "gateway": super::POD_GATEWAY}]],
                "dataDir": dir.join("ipam"),
            }
        }]
    });
    std::fs::write(dir.join("cni/10-uml-pods.conflist"), cni.to_string()).expect("CNI config");
    conf
}
