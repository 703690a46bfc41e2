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
//! the plain process, with the CPU and the load average. `--versus HOST_LAUNCH` measures the
//! appliances of another build of host-launch too, beside this tree's on the same kernels
//! (labelled `(versus)`): a change's before and after in one run. `--cpu N` starts every
//! server on host CPU N (vmm pins each VM to the least used core it may use, which for the
//! two sides of a comparison can be a busy core and an idle one).
//!
//! ```sh
//! cargo bench -p build-image --bench serving [-- --rounds 3 --seconds 5 --kernels project,debian
//!     --versus /tmp/host-launch.before --cpu 1]
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
    let plain = e2e::host::started_on(a.cpu, || {
        Plain::new(&lab, "192.0.2.150", &[&knot, &web], &site)
    });
    let mut targets = vec![Target::plain(&plain)];
    let ours = e2e::launch::host_launch_exe();
    let mut builds = vec![(ours, String::new())];
    if let Some(v) = &a.versus {
        builds.push((v.clone(), " (versus)".to_string()));
    }
    let kernels = bench_kernels(&a.kernels);
    for (b, (exe, tag)) in builds.iter().enumerate() {
        for (k, (label, kernel)) in kernels.iter().enumerate() {
            let i = (b * kernels.len() + k) as u8;
            let label = format!("{label}{tag}");
            targets.push(e2e::host::started_on(a.cpu, || {
                Target::appliance(&lab, exe, &label, kernel, i, &knot, &web, &site)
            }));
        }
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
