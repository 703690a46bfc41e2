//! A busybox guest whose service is one shell script, with a tmpfs at `/scratch` for it to
//! fill: what the memory test and benchmark (`tests/free_pages.rs`, `benches/free_pages.rs`)
//! boot.

use crate::{Result, RootFs, TempDir};
use std::path::PathBuf;

/// The root image (in the caller's directory) and the contract that runs the script.
#[derive(Debug)]
pub struct ScriptGuest {
    pub image: PathBuf,
    pub contract: contract::Contract,
}

/// Builds `dir/root.img` with busybox's `applets` and `script` as `/script.sh`, and a
/// contract (host name `hostname`) that mounts a tmpfs of `scratch_mib` at `/scratch` and runs
/// the script once (`restart: never`).
pub fn script_guest(
    dir: &TempDir,
    hostname: &str,
    applets: &[&str],
    script: &str,
    scratch_mib: u32,
) -> Result<ScriptGuest> {
    let image = dir.join("root.img");
    RootFs::new()
        .busybox(applets)
        .bytes("/script.sh", script, 0o755)
        .dir("/scratch", 0o755)
        .build(&image)?;
    let json = serde_json::json!({
        "version": 1,
        "hostname": hostname,
        "mounts": {"tmpfs": [{"mount_point": "/scratch", "size_mib": scratch_mib, "mode": "0777"}]},
        "service": {"argv": ["/bin/sh", "/script.sh"], "restart": {"policy": "never"}}
    });
    let contract = contract::parse_json(json.to_string().as_bytes())
        .map_err(|e| crate::Error::new("the script guest's contract", format!("{e:?}")))?;
    Ok(ScriptGuest { image, contract })
}
