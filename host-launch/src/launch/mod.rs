//! Launching an appliance, in the order a `run` takes the steps: `load` (the spec file read
//! once, its image's manifest, the merge; touches nothing), `prepare` (the state directory,
//! the VM's uid, the TAP device through `tap`, the network policy through `nft` (libnftables in the launcher, `nft_lib`, or the `nft` program), the data
//! disks through `disks`, a block device's checks in `block`), `vm` (the machine and jail in `vmm`'s terms) and `run` (launched
//! and followed by `vmm`'s pipeline; what host-launch adds to it: the state file, sd_notify,
//! the operator's lines).

pub mod block;
pub mod disks;
pub mod load;
pub mod nft;
pub mod nft_lib;
pub mod prepare;
pub mod run;
pub mod tap;
pub mod vm;
