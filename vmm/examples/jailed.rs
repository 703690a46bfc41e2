//! Runs a program in a VM jail, for debugging the jail: `jailed PROGRAM [ARGS...]` (as root).
//! The program gets the jail exactly as UML would (its files, /.vmm, /dev), with its output
//! on the console pipe, which this prints.

use std::io::Read;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((prog, rest)) = args.split_first() else {
        eprintln!("usage: jailed PROGRAM [ARGS...]");
        std::process::exit(2);
    };
    let dir = std::env::temp_dir().join(format!("jailed-{}", std::process::id()));
    let _ = std::fs::create_dir(&dir);
    let machine = vmm::cmdline::Machine {
        kernel: prog.into(),
        root: std::env::var("ROOT").unwrap_or("/dev/null".into()).into(),
        disks: Vec::new(),
        config_ubd: None,
        tap: None,
        memory_mib: 64,
        umid: "x".into(),
        kernel_log: true,
        needs_raid6: true,
        extra: rest.to_vec(),
    };
    let mut jail = vmm::jail::Jail::sized(dir.clone(), 0x6000_0001, 0x6000_0001, 64, 0);
    jail.files = vmm::elf::runtime_files(prog.as_ref()).unwrap_or_else(|e| panic!("{e}"));
    if let Ok(r) = std::env::var("ROOT") {
        jail.files.push((r.into(), vmm::jail::Access::ReadOnly));
    }
    match vmm::spawn::start(&machine, &jail) {
        Ok(mut s) => {
            let mut out = String::new();
            let _ = std::fs::File::from(s.console).read_to_string(&mut out);
            println!("{out}");
            println!("exit: {:?}", s.process.wait());
        }
        Err(e) => println!("error: {e}"),
    }
    let _ = std::fs::remove_dir(&dir);
}
