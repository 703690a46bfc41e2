//! A test service for the data-safety tests: appends numbered, self-checking records to a
//! file on a data disk, `fsync`s after each one, and only then prints `synced N` (on stdout,
//! which guest-init relays to the console). A record the test has seen as `synced N` was
//! acknowledged by the guest kernel as on the disk.
//!
//! At start it checks what the file holds: the longest prefix of valid records (numbered 1,
//! 2, ... in order, each with its checksum) is kept and printed as `verified M`; anything
//! after it (a record torn by a crash, never acknowledged) is cut off and reported as
//! `discarded B bytes`; a bad record followed by good ones is `CORRUPT at record N`.
//!
//! `fsync-writer FILE [--interval-ms MS] [--filler FILE --filler-kib KIB]`: with a filler,
//! after each record it also appends KIB KiB to the filler file and fsyncs it, to fill the
//! disk. Write and fsync errors are printed (`error N: ...`) and the loop goes on after
//! 200 ms: the service neither exits nor hangs when the disk fails.

#![deny(missing_debug_implementations)]
#![deny(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::exit,
    clippy::tests_outside_test_module
)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::time::Duration;

/// Bytes per record: `NNNNNNNNNN CCCCCCCCCCCCCCCCCCCC\n`.
const RECORD: usize = 32;

fn record(n: u64) -> String {
    format!(
        "{n:010} {:020x}\n",
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995
    )
}

fn parse(chunk: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(chunk).ok()?;
    let n: u64 = s.get(..10)?.parse().ok()?;
    (record(n).as_bytes() == chunk).then_some(n)
}

/// The command line.
struct Args {
    path: String,
    interval: Duration,
    filler: Option<String>,
    filler_kib: usize,
}

/// What is wrong with the command line.
enum Usage {
    NoFile,
    Unknown(String),
}

fn parse_args(args: &[String]) -> Result<Args, Usage> {
    let path = args.first().cloned().ok_or(Usage::NoFile)?;
    let mut out = Args {
        path,
        interval: Duration::ZERO,
        filler: None,
        filler_kib: 256,
    };
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--interval-ms" => out.interval = Duration::from_millis(v.parse().unwrap_or(0)),
            "--filler" => out.filler = Some(v),
            "--filler-kib" => out.filler_kib = v.parse().unwrap_or(256),
            _ => return Err(Usage::Unknown(a.clone())),
        }
    }
    Ok(out)
}

/// The file's bytes and how many records at its start are valid and in order (says
/// `CORRUPT` when a later one is whole: a sync that lost a record in the middle).
fn verify(path: &str) -> (Vec<u8>, u64) {
    let mut data = Vec::new();
    if let Ok(mut f) = File::open(path) {
        if let Err(e) = f.read_to_end(&mut data) {
            println!("error reading {path}: {e}");
        }
    }
    let mut valid = 0u64;
    for chunk in data.chunks(RECORD) {
        if chunk.len() == RECORD && parse(chunk) == Some(valid + 1) {
            valid += 1;
        } else {
            break;
        }
    }
    let later_good = data[kept_bytes(valid)..]
        .chunks(RECORD)
        .skip(1)
        .any(|c| c.len() == RECORD && parse(c).is_some());
    if later_good {
        println!("CORRUPT at record {}", valid + 1);
    }
    (data, valid)
}

/// The bytes `valid` records take.
fn kept_bytes(valid: u64) -> usize {
    usize::try_from(valid)
        .unwrap_or(usize::MAX)
        .saturating_mul(RECORD)
}

/// Appends records from `n` on, each synced (and a filler block after each), forever.
fn write_forever(file: &mut File, mut fill: Option<File>, a: &Args, mut n: u64) -> ! {
    let block = vec![0xa5u8; a.filler_kib * 1024];
    loop {
        match file
            .write_all(record(n).as_bytes())
            .and_then(|_| file.sync_all())
        {
            Ok(()) => {
                println!("synced {n}");
                n += 1;
            }
            Err(e) => {
                println!("error {n}: {e}");
                std::thread::sleep(Duration::from_millis(200));
                // What a failed append left is never acknowledged: start the record again
                // where the valid ones end.
                let len = (n - 1) * RECORD as u64;
                let _ = file.set_len(len);
                continue;
            }
        }
        if let Some(f) = fill.as_mut() {
            if let Err(e) = f.write_all(&block).and_then(|_| f.sync_all()) {
                println!("error filler: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        if !a.interval.is_zero() {
            std::thread::sleep(a.interval);
        }
    }
}

fn open_append(path: &str) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let a = match parse_args(&args) {
        Ok(a) => a,
        Err(Usage::NoFile) => {
            eprintln!(
                "usage: fsync-writer FILE [--interval-ms MS] [--filler FILE --filler-kib KIB]"
            );
            std::process::exit(2);
        }
        Err(Usage::Unknown(arg)) => {
            eprintln!("fsync-writer: unknown argument {arg}");
            std::process::exit(2);
        }
    };
    let (data, valid) = verify(&a.path);
    let kept = kept_bytes(valid);
    let mut file = open_append(&a.path).unwrap_or_else(|e| {
        println!("error opening {}: {e}", a.path);
        std::process::exit(1);
    });
    if data.len() > kept {
        println!("discarded {} bytes", data.len() - kept);
        if let Err(e) = file.set_len(kept as u64).and_then(|_| file.sync_all()) {
            println!("error truncating: {e}");
        }
    }
    println!("verified {valid}");
    let fill = a.filler.as_ref().map(|p| {
        open_append(p).unwrap_or_else(|e| {
            println!("error opening {p}: {e}");
            std::process::exit(1);
        })
    });
    write_forever(&mut file, fill, &a, valid + 1)
}
