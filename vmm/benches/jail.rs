//! What the jail costs per start: `vmm::spawn::start` (clone into namespaces, build the jail,
//! drop privileges, exec UML) beside a plain fork and exec of the same kernel with the same
//! arguments (`std::process::Command::spawn`, which also returns once the exec happened).
//! Each started kernel is killed at once: only the start is measured. Also what finding the
//! kernel's files for the jail costs (`vmm::elf::runtime_files`). Median, min and max of
//! 20 (`-- --runs N` for another count). Needs root.
//!
//! ```sh
//! cargo bench -p vmm --bench jail
//! ```

use std::time::{Duration, Instant};

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (ms(v[v.len() / 2]), ms(v[0]), ms(v[v.len() - 1]))
}

fn main() {
    let runs = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20usize);
    let kernel = vmm::kernel::default_kernel();
    let dir = std::env::temp_dir().join(format!("vmm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench directory");
    let root = dir.join("root.img");
    std::fs::write(&root, vec![0u8; 1 << 20]).expect("root image");
    let machine = vmm::cmdline::Machine {
        kernel: kernel.clone(),
        root: root.clone(),
        disks: Vec::new(),
        config_ubd: None,
        tap: None,
        memory_mib: 32,
        umid: "bench".into(),
        kernel_log: false,
        needs_raid6: false,
        extra: Vec::new(),
    };
    let args = vmm::cmdline::command_line(&machine).expect("command line");
    let files = vmm::elf::runtime_files(&kernel).expect("kernel files");
    // What finding the kernel's jail files costs each start (read from its ELF, no exec).
    let lookups: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let found = vmm::elf::runtime_files(&kernel).expect("kernel files");
            assert_eq!(found, files);
            t.elapsed()
        })
        .collect();
    let (range, _) = vmm::ids::configured_range().expect("id range");
    let mut jailed = Vec::new();
    let mut plain = Vec::new();
    for i in 0..runs {
        let jail_dir = dir.join(format!("jail{i}"));
        std::fs::create_dir(&jail_dir).expect("jail directory");
        let mut jail = vmm::jail::Jail::sized(jail_dir, range.start + 1, range.start + 1, 32, 0);
        jail.files = files
            .iter()
            .cloned()
            .chain([(root.clone(), vmm::jail::Access::ReadOnly)])
            .collect();
        let t = Instant::now();
        let started = vmm::spawn::start(&machine, &jail).unwrap_or_else(|e| panic!("{e}"));
        jailed.push(t.elapsed());
        drop(started);

        let t = Instant::now();
        let mut child = std::process::Command::new(&kernel)
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("plain spawn");
        plain.push(t.elapsed());
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let (jm, jmin, jmax) = stats(jailed);
    let (pm, pmin, pmax) = stats(plain);
    println!("start of {} ({runs} runs), milliseconds:", kernel.display());
    println!("| | median | min | max |");
    println!("|---|---|---|---|");
    println!("| jailed (vmm::spawn::start) | {jm:.2} | {jmin:.2} | {jmax:.2} |");
    println!("| plain fork + exec | {pm:.2} | {pmin:.2} | {pmax:.2} |");
    println!("| jail set-up cost | {:.2} | | |", jm - pm);
    let (lm, lmin, lmax) = stats(lookups);
    println!(
        "| finding its {} jail files (vmm::elf::runtime_files) | {lm:.3} | {lmin:.3} | {lmax:.3} |",
        files.len()
    );
}
