//! Bulk TCP through an appliance's TAP device, both ways (issue 24, the data path): a client
//! in the test's namespace sends 16 MiB to the guest (busybox `nc` into `wc -c`, which answers
//! the count) and reads 16 MiB from it (`head -c` of /dev/zero). Both transfers must complete
//! whole, and the guest must have taken every frame the host sent it: no "Incoming GSO
//! frames" on its console (the vector driver's complaint when the host's 64 KiB TCP frames
//! meet receive buffers of the MTU's size, which it then cuts) and no IP packet dropped as
//! truncated (`InTruncatedPkts` of the guest's /proc/net/netstat, which the sink prints after
//! the count). Before vmm gave the TAP interface `gro=1` the host → guest transfer stalled
//! in retransmissions and the test failed after 209 s. Needs root and busybox-static; fails,
//! rather than skips, without them. About 2 s.

mod common;

use common::bulk::{self, GSO_ERROR};
use common::{launch, netns, require_root_and_busybox, tap_name, temp_dir};
use std::time::Duration;

/// What each transfer moves: many times the TAP's 64 KiB frames and the sockets' buffers.
const BYTES: usize = 16 << 20;
/// Far more than a transfer takes (under a second here) unless frames are dropped.
const DEADLINE: Duration = Duration::from_secs(120);

#[test]
fn bulk_tcp_both_ways_arrives_whole_with_no_frame_dropped() {
    require_root_and_busybox();
    let dir = temp_dir("bulk-tcp");
    let image = bulk::image(dir.path(), BYTES);
    let ns = netns(false);
    let spec = bulk::spec(dir.path(), "bulk", &image, &ns, &tap_name("b"), None);
    let state = dir.join("state");
    let mut run = launch(&spec, "bulk", &state);
    run.wait_ready(Duration::from_secs(60)).unwrap();

    let to_guest = bulk::send_to_guest(&ns, BYTES, DEADLINE);
    let from_guest = bulk::read_from_guest(&ns, DEADLINE);
    let console = std::fs::read_to_string(state.join("bulk/console.log")).unwrap_or_default();
    let (code, all) = run.stop();

    if let Some(e) = &to_guest.error {
        panic!("host → guest: {e}\n--- console:\n{console}");
    }
    let reply = &to_guest.reply;
    let (count, netstat) = reply.split_once('\n').unwrap_or((reply, ""));
    assert_eq!(
        count.trim(),
        BYTES.to_string(),
        "host → guest: the guest's wc -c counted another length; its answer:\n{reply}"
    );
    if let Some(e) = &from_guest.error {
        panic!("guest → host: {e}\n--- console:\n{console}");
    }
    assert_eq!(from_guest.bytes, BYTES, "guest → host: bytes read");
    assert!(
        !console.contains(GSO_ERROR),
        "the guest cut the host's large frames (gro=1 missing on the vec0 argument?):\n{console}"
    );
    let truncated = bulk::ip_ext(netstat, "InTruncatedPkts")
        .unwrap_or_else(|| panic!("no IpExt InTruncatedPkts in the guest's answer:\n{reply}"));
    assert_eq!(
        truncated, 0,
        "the guest dropped {truncated} truncated packets:\n{netstat}"
    );
    assert_eq!(code, Some(0), "{all}");
}
