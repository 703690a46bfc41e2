//! Times an appliance's first DNS answer as the benchmarks do, for `scripts/demo`: from one UDP
//! socket inside a network namespace, an A query every 5 ms (`e2e::dns::first_answer`), started
//! before the appliance, so that neither `dig`'s own start (about 25 ms a run) nor a `--wait-ready`
//! poll is counted.
//!
//! Usage: `first_answer NETNS SERVER NAME WANT [LIMIT_S]` (e.g. `first_answer appliances
//! 192.0.2.53 www.example.net 192.0.2.80`). It prints `probing` once its socket is in the
//! namespace and asking, then, at the first answer that gives NAME the address WANT, the wall
//! clock of that moment in nanoseconds since 1970 (the caller subtracts its own `date +%s%N`
//! taken just before `host-launch start`), and exits 0; 1 with a message after LIMIT_S seconds
//! (default 60) without one, 2 on bad arguments.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often a query goes out (the benchmarks' period).
const PERIOD: Duration = Duration::from_millis(5);

struct Args {
    netns: PathBuf,
    server: String,
    name: String,
    want: [u8; 4],
    limit: Duration,
}

fn args() -> Result<Args, String> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [ns, server, name, want, rest @ ..] = a.as_slice() else {
        return Err("usage: first_answer NETNS SERVER NAME WANT [LIMIT_S]".into());
    };
    let want: Ipv4Addr = want
        .parse()
        .map_err(|e| format!("WANT {want:?}: not an IPv4 address ({e})"))?;
    let limit = match rest {
        [] => 60,
        [s] => s
            .parse()
            .map_err(|e| format!("LIMIT_S {s:?}: not a number of seconds ({e})"))?,
        _ => return Err("too many arguments".into()),
    };
    let netns = if ns.contains('/') {
        PathBuf::from(ns)
    } else {
        PathBuf::from("/run/netns").join(ns)
    };
    Ok(Args {
        netns,
        server: server.clone(),
        name: name.clone(),
        want: want.octets(),
        limit: Duration::from_secs(limit),
    })
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("first_answer: {e}");
            return ExitCode::from(2);
        }
    };
    let probe = e2e::dns::first_answer(&a.netns, &a.server, &a.name, a.want, PERIOD, a.limit);
    let handle = match probe {
        Ok(h) => h,
        Err(e) => {
            eprintln!("first_answer: {}: {e}", a.netns.display());
            return ExitCode::FAILURE;
        }
    };
    println!("probing");
    let _ = std::io::stdout().flush();
    match handle.join() {
        Ok(Ok(Some(at))) => {
            // The answer's Instant as wall-clock time: now minus how long ago it came.
            let ago = Instant::now().saturating_duration_since(at);
            let wall = SystemTime::now()
                .checked_sub(ago)
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .unwrap_or_default();
            println!("{}", wall.as_nanos());
            ExitCode::SUCCESS
        }
        Ok(Ok(None)) => {
            eprintln!(
                "first_answer: no answer {} for {} from {} within {} s",
                Ipv4Addr::from(a.want),
                a.name,
                a.server,
                a.limit.as_secs()
            );
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("first_answer: {}: {e}", a.netns.display());
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("first_answer: the probing thread panicked");
            ExitCode::FAILURE
        }
    }
}
