//! How fast an appliance serves next to the same server as a plain process (what an operator
//! would run instead: a container's network namespace), side by side in one run (root).
//!
//! One lab namespace with a bridge; on it, each class image as an appliance on each kernel
//! (the project's and Debian's; `--kernels` picks) through `host-launch start`, and the same
//! Debian binaries, unpacked from the same image, as plain processes in a network namespace of
//! their own joined to the bridge by a veth pair (`chroot`, the image's own start script, the
//! image's user, no VM). The clients run in the lab namespace: `dnsperf -c8` against Knot (one
//! UDP worker, as the image runs it), one UDP query at a time from this process (p50, p99),
//! `wrk -t2 -c16` against lighttpd for a 1 KiB and a 100 KiB file. Rounds alternate targets so
//! all see the same load; prints the median of each figure over the rounds and its ratio to
//! the plain process, with the CPU and the load average.
//!
//! ```sh
//! cargo bench -p build-image --bench serving [-- --rounds 3 --seconds 5 --kernels project,debian]
//! ```

#[path = "../tests/lab/mod.rs"]
mod lab;

#[path = "serving/mod.rs"]
mod serving;

use lab::{bench_kernels, Lab};
use serving::plain::Plain;
use serving::{clients, Args, Target};

fn main() {
    let a = Args::parse();
    clients::ensure_tools();
    let pid = std::process::id() % 100_000;
    let lab = Lab::new("serving", Some(&format!("brs{pid}")));
    let knot = lab.image("knot");
    let web = lab.image("web");
    let site = serving::site(&lab);
    let plain = Plain::new(&lab, "192.0.2.150", &[&knot, &web], &site);
    let mut targets = vec![Target::plain(&plain)];
    for (i, (label, kernel)) in bench_kernels(&a.kernels).iter().enumerate() {
        targets.push(Target::appliance(
            &lab, label, kernel, i as u8, &knot, &web, &site,
        ));
    }
    serving::print_context();
    for round in 1..=a.rounds {
        for t in &mut targets {
            t.measure(&lab, &a, round);
        }
    }
    serving::print_context();
    serving::report(&targets, &a);
    drop(plain);
}
