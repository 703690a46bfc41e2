//! The serving benchmark's clients, run in the lab namespace: dnsperf, one UDP query at a
//! time from this process, wrk. Each returns its figures or an error with the tool's output.

use super::super::lab::Lab;
use std::net::UdpSocket;
use std::time::{Duration, Instant};

/// dnsperf and wrk are Debian packages scripts/setup installs; missing, the bench fails.
pub fn ensure_tools() {
    for tool in ["dnsperf", "wrk"] {
        let found = std::process::Command::new(tool).arg("-h").output().is_ok();
        assert!(found, "{tool} is missing: scripts/setup installs it");
    }
}

/// `dnsperf -c8` for `seconds` against `addr`: queries per second and queries lost.
pub fn dnsperf(lab: &Lab, addr: &str, seconds: u32) -> Result<(f64, u64), String> {
    let queries = lab.join("dnsperf-queries");
    std::fs::write(
        &queries,
        "www.example.net A\nmail.example.net A\nexample.net SOA\n",
    )
    .map_err(|e| e.to_string())?;
    let out = lab
        .command("dnsperf")
        .args(["-s", addr, "-c", "8", "-l", &seconds.to_string(), "-d"])
        .arg(&queries)
        .output()
        .map_err(|e| format!("dnsperf: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let qps = field(&text, "Queries per second:").ok_or_else(|| format!("dnsperf:\n{text}"))?;
    let lost = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Queries lost:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    Ok((qps, lost))
}

/// `wrk -t2 -c16` for `seconds` on `url`: requests per second; any non-2xx answer or socket
/// error is an error.
pub fn wrk(lab: &Lab, url: &str, seconds: u32) -> Result<f64, String> {
    let out = lab
        .command("wrk")
        .args(["-t2", "-c16", &format!("-d{seconds}s"), url])
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") || text.contains("Socket errors") {
        return Err(format!("wrk {url}: errors:\n{text}"));
    }
    field(&text, "Requests/sec:").ok_or_else(|| format!("wrk {url}:\n{text}"))
}

/// The number after `label` on its line.
fn field(text: &str, label: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// `n` A queries one at a time (each sent once its answer came) from one UDP socket in the
/// lab namespace: the round trips in µs, sorted, and how many got no answer within 1 s.
pub fn one_at_a_time(lab: &Lab, addr: &str, n: u16) -> Result<(Vec<f64>, u32), String> {
    let server = format!("{addr}:53");
    lab.ns
        .enter(move || -> Result<(Vec<f64>, u32), String> {
            let s = UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            s.connect(&server).map_err(|e| e.to_string())?;
            s.set_read_timeout(Some(Duration::from_secs(1)))
                .map_err(|e| e.to_string())?;
            let mut rtt = Vec::with_capacity(n as usize);
            let mut lost = 0;
            let mut buf = [0u8; 512];
            for id in 0..n {
                let q = e2e::dns::a_query(id, "www.example.net");
                let t = Instant::now();
                s.send(&q).map_err(|e| e.to_string())?;
                loop {
                    match s.recv(&mut buf) {
                        Ok(len) if buf[..len.min(2)] == id.to_be_bytes() => {
                            rtt.push(t.elapsed().as_secs_f64() * 1e6);
                            break;
                        }
                        Ok(_) => continue, // a late answer to an earlier query
                        Err(_) => {
                            lost += 1;
                            break;
                        }
                    }
                }
            }
            rtt.sort_by(f64::total_cmp);
            Ok((rtt, lost))
        })
        .map_err(|e| e.to_string())?
}

/// The `p`-th percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[i]
}
