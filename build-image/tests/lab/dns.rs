//! The DNS appliance on a data disk, in versions, for the upgrade test and benchmark: images
//! built from modified copies of `recipes/dns.json`, a data disk whose hosts file it answers,
//! its spec on the lab's network, and `dig` at it from the namespace.
//!
//! Needs dig.

use super::{disk_from_dir, Lab};
use serde_json::{json, Value};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

// The DNS probe is shared with uml-runc's benchmark: it lives in the e2e harness.
#[allow(unused_imports)] // each test and bench that includes the lab uses some of them
pub use e2e::dns::{a_query, answers_a, first_answer, query};

/// The appliance's address.
pub const GUEST: &str = "192.0.2.53";
/// The name the data disk's hosts file answers, and its address.
pub const DATA_NAME: &str = "data.example.net";
pub const DATA_ADDRESS: &str = "192.0.2.99";

/// The checked-in DNS recipe with a data disk on `/data` and `/etc/version.conf` answering
/// `version.example.net TXT "<version>"`; `tweak` changes it further.
pub fn dns_recipe(version: &str, tweak: impl FnOnce(&mut Value)) -> Value {
    let path = e2e::workspace_root().join("build-image/recipes/dns.json");
    let mut r: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    r["name"] = format!("dns-{version}").into();
    r["files"] = json!([{
        "path": "/etc/version.conf",
        "content": format!("txt-record=version.example.net,\"{version}\"\n")
    }]);
    r["manifest"]["disks"] = json!([{"mount_point": "/data", "format_if_blank": false}]);
    tweak(&mut r);
    r
}

/// The spec's records: the example zone, the image's version record, the data disk's hosts.
pub fn dnsmasq_conf() -> String {
    "local=/example.net/\nhost-record=www.example.net,192.0.2.80\n\
     conf-file=/etc/version.conf\naddn-hosts=/data/hosts\n"
        .to_string()
}

impl Lab {
    /// An ext4 data disk `DIR/<file>` made on the host holding `/hosts` (the data the service
    /// answers).
    pub fn data_disk(&self, file: &str) -> PathBuf {
        let path = self.join(file);
        let content = self.join(&format!("{file}.content"));
        std::fs::create_dir_all(&content).unwrap();
        std::fs::write(
            content.join("hosts"),
            format!("{DATA_ADDRESS} {DATA_NAME}\n"),
        )
        .unwrap();
        disk_from_dir(&path, &content);
        path
    }

    /// Writes the spec of DNS appliance `name` on `image` with the data disk; returns its path.
    pub fn spec(&self, name: &str, image: &Path, disk: &Path, tap: &str) -> PathBuf {
        self.spec_at(name, image, disk, tap, GUEST)
    }

    /// [`Lab::spec`] with the guest at `address` (a fleet on the lab's bridge).
    pub fn spec_at(
        &self,
        name: &str,
        image: &Path,
        disk: &Path,
        tap: &str,
        address: &str,
    ) -> PathBuf {
        self.write_spec(&json!({
            "name": name,
            "image": image,
            "memory_mib": 48,
            "disks": [{"file": disk}],
            "files": [{"path": "/run/dnsmasq.conf", "mode": "0644", "content": dnsmasq_conf()}],
            "network": self.network(tap, address),
        }))
    }

    /// `dig +short` of one name and type at the appliance (one try, one second).
    pub fn dig(&self, name: &str, rtype: &str) -> String {
        let out = self
            .command("dig")
            .args([
                &format!("@{GUEST}"),
                "+short",
                "+tries=1",
                "+time=1",
                rtype,
                name,
            ])
            .output()
            .expect("dig");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The version the appliance answers (`""` when it does not answer).
    pub fn version(&self) -> String {
        self.dig("version.example.net", "TXT").replace('"', "")
    }
}

/// One dig (of [`probe`]): when it was started, when it ended, what it answered ("" for nothing).
pub struct Answer {
    pub sent: Instant,
    pub done: Instant,
    pub text: String,
}

/// Starts `dig @GUEST +short +tries=1 +time=1 QUERY` every `period` from a thread inside the
/// namespace `ns` until `stop` is set, each dig on its own (so a query lost while the appliance
/// is down does not hold up the next ones); the answers come on the returned channel.
pub fn probe(
    ns: &Path,
    period: Duration,
    stop: Arc<AtomicBool>,
    query: &[&str],
) -> mpsc::Receiver<Answer> {
    let query: Vec<String> = query.iter().map(|q| q.to_string()).collect();
    let (tx, rx) = mpsc::channel();
    let netns = std::fs::File::open(ns).expect("netns");
    std::thread::spawn(move || {
        // SAFETY: setns on this thread only; children it spawns inherit the namespace.
        let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let child = Command::new("dig")
                .args([&format!("@{GUEST}"), "+short", "+tries=1", "+time=1"])
                .args(&query)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("dig");
            let tx = tx.clone();
            std::thread::spawn(move || {
                let out = child.wait_with_output().expect("dig");
                let text = String::from_utf8_lossy(&out.stdout).trim().replace('"', "");
                let _ = tx.send(Answer {
                    sent,
                    done: Instant::now(),
                    text: if text.starts_with(";;") {
                        String::new()
                    } else {
                        text
                    },
                });
            });
            next += period;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    });
    rx
}

/// Like [`probe`] for a TXT name, from one UDP socket of this process instead of a `dig` per
/// query (dig processes every 20 ms took CPU from the boot being measured): an [`Answer`]
/// per query, its text the one of `texts` whose TXT string is in the reply ("" when there was
/// no answer within a second; NSD adds the zone's NS records after the answer).
pub fn txt_probe(
    ns: &Path,
    server: &str,
    name: &str,
    texts: &[&str],
    period: Duration,
    stop: Arc<AtomicBool>,
) -> mpsc::Receiver<Answer> {
    let (tx, rx) = mpsc::channel();
    let netns = std::fs::File::open(ns).expect("netns");
    let server: std::net::SocketAddr = format!("{server}:53").parse().expect("address");
    let name = name.to_string();
    let texts: Vec<String> = texts.iter().map(|t| t.to_string()).collect();
    std::thread::spawn(move || {
        // SAFETY: setns on this thread only, which then only uses its own socket.
        let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let sock = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
        sock.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        let mut sent: Vec<Instant> = Vec::new();
        let mut answered: Vec<bool> = Vec::new();
        let mut next = Instant::now();
        let mut buf = [0u8; 512];
        let mut stopped_at = None;
        loop {
            let now = Instant::now();
            if stopped_at.is_none() && stop.load(Ordering::Relaxed) {
                stopped_at = Some(now);
            }
            if stopped_at.is_some_and(|t| now.duration_since(t) > Duration::from_secs(1)) {
                break;
            }
            if stopped_at.is_none() && now >= next && sent.len() < usize::from(u16::MAX) {
                let _ = sock.send_to(&query(sent.len() as u16, &name, 16), server);
                sent.push(now);
                answered.push(false);
                next += period;
            }
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let reply = buf.get(..n).unwrap_or_default();
            let Some(id) = reply
                .get(..2)
                .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
            else {
                continue;
            };
            if from != server
                || id >= sent.len()
                || answered[id]
                || reply.get(3).is_none_or(|f| f & 0x0f != 0)
            {
                continue;
            }
            let text = texts.iter().find(|t| {
                let mut tail = vec![t.len() as u8];
                tail.extend_from_slice(t.as_bytes());
                reply.windows(tail.len()).any(|w| w == tail)
            });
            if let Some(t) = text {
                answered[id] = true;
                let _ = tx.send(Answer {
                    sent: sent[id],
                    done: Instant::now(),
                    text: t.clone(),
                });
            }
        }
        for (i, s) in sent.iter().enumerate() {
            if !answered[i] {
                let _ = tx.send(Answer {
                    sent: *s,
                    done: *s,
                    text: String::new(),
                });
            }
        }
    });
    rx
}
