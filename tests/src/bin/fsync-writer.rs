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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first().cloned() else {
        eprintln!("usage: fsync-writer FILE [--interval-ms MS] [--filler FILE --filler-kib KIB]");
        std::process::exit(2);
    };
    let mut interval = Duration::ZERO;
    let mut filler: Option<String> = None;
    let mut filler_kib = 256usize;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--interval-ms" => interval = Duration::from_millis(v.parse().unwrap_or(0)),
            "--filler" => filler = Some(v),
            "--filler-kib" => filler_kib = v.parse().unwrap_or(256),
            _ => {
                eprintln!("fsync-writer: unknown argument {a}");
                std::process::exit(2);
            }
        }
    }
    let mut data = Vec::new();
    if let Ok(mut f) = File::open(&path) {
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
    let kept = usize::try_from(valid)
        .unwrap_or(usize::MAX)
        .saturating_mul(RECORD);
    let later_good = data[kept..]
        .chunks(RECORD)
        .skip(1)
        .any(|c| c.len() == RECORD && parse(c).is_some());
    if later_good {
        println!("CORRUPT at record {}", valid + 1);
    }
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap_or_else(|e| {
            println!("error opening {path}: {e}");
            std::process::exit(1);
        });
    if data.len() > kept {
        println!("discarded {} bytes", data.len() - kept);
        if let Err(e) = file.set_len(kept as u64).and_then(|_| file.sync_all()) {
            println!("error truncating: {e}");
        }
    }
    println!("verified {valid}");
    let mut fill = filler.as_ref().map(|p| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .unwrap_or_else(|e| {
                println!("error opening {p}: {e}");
                std::process::exit(1);
            })
    });
    let block = vec![0xa5u8; filler_kib * 1024];
    let mut n = valid + 1;
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
        if !interval.is_zero() {
            std::thread::sleep(interval);
        }
    }
}
