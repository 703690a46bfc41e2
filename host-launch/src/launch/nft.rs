//! An appliance's chains in host-launch's nftables table, through the host's `nft` (Debian's
//! `nftables`) run inside the TAP device's network namespace: installed in one transaction,
//! removed, summed up for `status`. What they say is [`appliance::netpolicy`]'s.

use crate::error::{Error, Result};
use crate::launch::nft_lib;
use appliance::netpolicy;
use std::io::Write;
use std::process::{Command, Stdio};

/// The environment variable naming another `nft` program (tests make it fail on purpose).
const NFT_ENV: &str = "HOST_LAUNCH_NFT";

/// `nft`, or the program `$HOST_LAUNCH_NFT` names.
fn program() -> String {
    std::env::var(NFT_ENV).unwrap_or_else(|_| "nft".into())
}

/// Runs a script (`nft -f -`) in the namespace: through libnftables in this process
/// ([`nft_lib`]) unless `$HOST_LAUNCH_NFT` names a program or the library is missing, else
/// by running `nft`.
fn script(netns: Option<&str>, text: &str) -> std::io::Result<std::result::Result<String, String>> {
    if std::env::var_os(NFT_ENV).is_none() {
        if let Some(r) = crate::launch::tap::in_netns(netns, || nft_lib::run(text))? {
            return Ok(r.map(|()| String::new()));
        }
    }
    run(netns, &["-f", "-"], text)
}

fn where_(netns: Option<&str>) -> String {
    netns
        .map(|n| format!(" in namespace {n}"))
        .unwrap_or_default()
}

/// Runs `nft ARGS` in the namespace with `input` on its standard input; its output, or its
/// error output as the error.
fn run(
    netns: Option<&str>,
    args: &[&str],
    input: &str,
) -> std::io::Result<std::result::Result<String, String>> {
    let go = || -> std::io::Result<std::result::Result<String, String>> {
        let mut child = Command::new(program())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            // A program that exits without reading it all says why in its exit status.
            match stdin.write_all(input.as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e),
                _ => {}
            }
        }
        let out = child.wait_with_output()?;
        Ok(if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            let err = String::from_utf8_lossy(&out.stderr);
            Err(format!("{}: {}", out.status, err.trim()))
        })
    };
    crate::launch::tap::in_netns(netns, go)?
}

/// Installs `script` ([`appliance::netpolicy::render`]) in one transaction: all of it or nothing.
pub fn install(table: &str, text: &str, netns: Option<&str>) -> Result<()> {
    let failed = |e: String| {
        Error::host(format!(
            "network policy: installing the appliance's chains in the nftables table {table}{} \
             failed, so it does not start: {e} (is nftables installed? `{} --version`)",
            where_(netns),
            program()
        ))
    };
    match script(netns, text) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(failed(e)),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// Removes appliance `name`'s chains from the table: one `nft` run, whether they are there or
/// not ([`netpolicy::removal`] adds before it deletes), since every stop pays for it.
pub fn remove(table: &str, name: &str, netns: Option<&str>) -> Result<()> {
    let failed = |e: String| {
        Error::host(format!(
            "removing {name}'s chains from the nftables table {table}{}: {e}",
            where_(netns)
        ))
    };
    match script(netns, &netpolicy::removal(table, name)) {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(failed(e)),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// Whether appliance `name`'s base chain is in the table.
pub fn installed(table: &str, name: &str, netns: Option<&str>) -> bool {
    let chain = format!("from_guest_{name}");
    matches!(
        run(netns, &["list", "chain", "netdev", table, &chain], ""),
        Ok(Ok(_))
    )
}

/// What `status` shows of an installed table.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    pub table: String,
    pub rules: usize,
    /// Frames dropped from the guest (ingress chains) and to it (egress chains).
    pub dropped_from_guest: u64,
    pub dropped_to_guest: u64,
}

/// Appliance `name`'s chains, read back one by one with `nft -j list chain` (a listing of
/// the whole table takes seconds with hundreds of appliances); `None` when they are not there.
pub fn summary(table: &str, name: &str, netns: Option<&str>) -> Option<Summary> {
    let mut s = Summary {
        table: table.to_string(),
        ..Summary::default()
    };
    for (i, chain) in netpolicy::chains_of(name).iter().enumerate() {
        let listed = run(netns, &["-j", "list", "chain", "netdev", table, chain], "");
        let Ok(Ok(out)) = listed else {
            // The first is the guest's base chain, always there when the policy is.
            if i == 0 {
                return None;
            }
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&out).ok()?;
        for rule in v
            .get("nftables")?
            .as_array()?
            .iter()
            .filter_map(|i| i.get("rule"))
        {
            s.rules += 1;
            let packets: u64 = rule
                .get("expr")
                .and_then(|e| e.as_array())
                .into_iter()
                .flatten()
                .filter_map(|e| e.get("counter")?.get("packets")?.as_u64())
                .sum();
            if chain.contains("from_guest") {
                s.dropped_from_guest += packets;
            } else {
                s.dropped_to_guest += packets;
            }
        }
    }
    Some(s)
}
