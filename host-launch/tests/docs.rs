//! The documents cannot drift from the tree and the binary: every Markdown file of the
//! repository (found by walking it, so renamed folders need no change here) is read, and
//! - every repository path it names in `code` or a link (`host-launch/src/cli.rs`,
//!   `../vmm/`, `src/tail.rs` beside the document) exists, and every bare Rust file name or
//!   JSON schema file name it gives (`tail.rs`) is somewhere in the tree;
//! - every `host-launch COMMAND --flag` it gives (in `code` or a command block) names a
//!   command of the binary's `--help`, and flags that command's `--help` lists.
//!
//! No VM, no root: about a second.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_host-launch");

/// Directories that are not the repository's sources.
const NOT_SOURCES: &[&str] = &[
    "target",
    "build",
    ".git",
    "corpus",
    "artifacts",
    "node_modules",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// Every file under `dir` but [`NOT_SOURCES`].
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if NOT_SOURCES.contains(&name.as_str()) {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The `code` spans and link targets of a Markdown text, with the lines of its command blocks.
fn mentions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            let l = line.trim_start();
            let l = l.strip_prefix("$ ").or(l.strip_prefix("# ")).unwrap_or(l);
            out.push(l.to_string());
            continue;
        }
        out.extend(line.split('`').skip(1).step_by(2).map(str::to_string));
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

/// Whether `word` reads as a path inside the repository (not a host path, a URL, a
/// placeholder or a pattern).
fn repo_path(word: &str, top: &BTreeSet<String>) -> bool {
    let word = word.trim_end_matches(['.', ',', ';', ':']);
    let bad = |c: char| "*<>{}$=:|?~[]()'\"%@!#\\".contains(c) || c.is_whitespace();
    if word.is_empty() || word.starts_with('/') || word.chars().any(bad) || word.contains("NAME") {
        return false;
    }
    let word = word.strip_prefix("./").unwrap_or(word);
    let first = word.split('/').next().unwrap_or("");
    let rel = word.starts_with("./") || word.starts_with("../");
    let sourcey = [".rs", ".md", ".toml", ".sh", ".service", ".schema.json"]
        .iter()
        .any(|e| word.ends_with(e));
    let generated = NOT_SOURCES.contains(&first);
    word.contains('/') && !generated && (top.contains(first) || rel || (sourcey && first == "src"))
}

/// `host-launch WORD ...` in a mention: the command and its flags.
fn command(mention: &str) -> Option<(String, Vec<String>)> {
    let rest = mention.trim().strip_prefix("host-launch ")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let first = words.first()?;
    let flags = words
        .iter()
        .map(|w| w.trim_start_matches(['[', '(']))
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .map(|w| w.trim_end_matches([']', ')', ',', '.', ':']))
        .map(|w| w.split('=').next().unwrap_or(w).to_string())
        .collect();
    Some((first.to_string(), flags))
}

fn help(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .arg("--help")
        .output()
        .expect("host-launch --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The commands the top-level `--help` lists (names and aliases) and `help`.
fn commands() -> BTreeSet<String> {
    let text = help(&[]);
    let mut set: BTreeSet<String> = ["help".to_string()].into();
    let listed = text.split("Commands:").nth(1).unwrap_or("");
    for line in listed.lines().skip(1).take_while(|l| l.starts_with("  ")) {
        if let Some(w) = line.split_whitespace().next() {
            set.insert(w.to_string());
        }
        if let Some(a) = line
            .split("[alias: ")
            .chain(line.split("[aliases: "))
            .nth(1)
        {
            set.extend(a.trim_end_matches(']').split(", ").map(str::to_string));
        }
    }
    set
}

#[test]
fn every_path_command_and_flag_the_documents_name_exists() {
    let root = root();
    let mut files = Vec::new();
    walk(&root, &mut files);
    let top: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let names: BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let commands = commands();
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    let docs: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
        .collect();
    assert!(
        docs.len() > 5,
        "found only {} documents under {}",
        docs.len(),
        root.display()
    );
    for doc in docs {
        let text = std::fs::read_to_string(doc).unwrap();
        let shown = doc.strip_prefix(&root).unwrap().display().to_string();
        let here = doc.parent().unwrap();
        for m in mentions(&text) {
            for word in m.split_whitespace() {
                let word = word.trim_end_matches(['.', ',', ';', ':']);
                let word = word.split('#').next().unwrap_or(word);
                // A layout table names a crate's files from the crate (`tests/boot.rs`).
                let found = [root.as_path(), here]
                    .into_iter()
                    .chain(top.iter().map(|t| Path::new(t.as_str())))
                    .any(|d| root.join(d).join(word).exists());
                if repo_path(word, &top) && !found {
                    problems.push(format!("{shown}: `{word}` does not exist"));
                }
                let bare = !word.contains('/')
                    && (word.ends_with(".rs") || word.ends_with(".schema.json"))
                    && word
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if bare && !names.contains(word) {
                    problems.push(format!("{shown}: no file `{word}` in the tree"));
                }
            }
            let Some((cmd, flags)) = command(&m) else {
                continue;
            };
            let placeholder = cmd.chars().all(|c| c.is_ascii_uppercase());
            if placeholder || cmd.ends_with(".json") || cmd.contains('/') || cmd.starts_with('-') {
                continue;
            }
            if !commands.contains(&cmd) {
                problems.push(format!("{shown}: `host-launch {cmd}` is no command: {m}"));
                continue;
            }
            let h = helps.entry(cmd.clone()).or_insert_with(|| help(&[&cmd]));
            for f in flags {
                let listed = [" ", ",", "\n", "]"]
                    .iter()
                    .any(|end| h.contains(&format!("{f}{end}")));
                if !listed {
                    problems.push(format!("{shown}: `host-launch {cmd}` has no {f}: {m}"));
                }
            }
        }
    }
    problems.dedup();
    assert!(
        problems.is_empty(),
        "the documents drifted:\n{}",
        problems.join("\n")
    );
}
