//! The documents cannot drift from the tree and the programs: every Markdown file of the
//! repository (found by walking it, so renamed folders need no change here) is read, and
//! - every repository path it names in `code` or a link (`host-launch/src/cli.rs`,
//!   `../vmm/`, `src/tail.rs` beside the document or in a crate a layout table names) exists,
//!   and every bare Rust file name or JSON schema file name it gives is somewhere in the tree;
//! - every `PROGRAM [COMMAND] --flag` it gives (in `code` or a command block) of the four
//!   installed programs (host-launch, uml-runc, build-image, conformance) names a command of
//!   the program and flags that command takes: read from the clap definitions the binaries
//!   parse with and print as `--help`, and the man pages are made of (`package_files::programs`).
//!
//! No VM, no root: under a second.

use clap::Command;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// Directories that are not the repository's sources.
const NOT_SOURCES: &[&str] = &[
    "target",
    "build",
    ".git",
    "corpus",
    "artifacts",
    "node_modules",
];

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

/// `PROGRAM WORDS...` in a mention, for one of `programs`: which program, and its words.
fn invocation<'a>(mention: &'a str, programs: &[Command]) -> Option<(usize, Vec<&'a str>)> {
    let mut words = mention.split_whitespace();
    let first = words.next()?;
    let i = programs.iter().position(|p| p.get_name() == first)?;
    Some((i, words.collect()))
}

/// Whether `cmd` takes the long flag `--name` (or has it as an alias).
fn has_flag(cmd: &Command, name: &str) -> bool {
    name == "help"
        || name == "version"
        || cmd.get_arguments().any(|a| {
            a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
        })
}

/// The command `words` run: a subcommand named first, else the program itself; an unknown
/// lowercase word where a program has subcommands is a problem.
fn command_of<'a>(program: &'a Command, words: &[&str]) -> Result<&'a Command, String> {
    let Some(w) = words.first().filter(|_| program.has_subcommands()) else {
        return Ok(program);
    };
    if let Some(sub) = program.find_subcommand(w) {
        return Ok(sub);
    }
    let word_like = w.chars().all(|c| c.is_ascii_lowercase() || c == '-');
    if word_like && *w != "help" && !w.starts_with('-') {
        return Err(format!("`{} {w}` is no command", program.get_name()));
    }
    Ok(program)
}

/// What is wrong with `PROGRAM WORDS...`: an unknown command, or flags it does not take.
fn check_invocation(program: &Command, words: &[&str]) -> Vec<String> {
    let cmd = match command_of(program, words) {
        Ok(c) => c,
        Err(e) => return vec![e],
    };
    words
        .iter()
        .filter_map(|w| w.trim_start_matches(['[', '(']).strip_prefix("--"))
        .map(|f| f.split('=').next().unwrap_or(f))
        .map(|f| f.trim_end_matches([']', ')', ',', '.', ':']))
        .filter(|f| !f.is_empty() && !has_flag(cmd, f))
        .map(|f| format!("`{}` has no --{f}", cmd.get_name()))
        .collect()
}

/// What is wrong with one word of a document: a repository path that does not exist.
fn check_word(word: &str, tree: &Tree, here: &Path) -> Option<String> {
    let word = word.trim_end_matches(['.', ',', ';', ':']);
    let word = word.split('#').next().unwrap_or(word);
    // A layout table names a crate's files from the crate (`tests/boot.rs`).
    let found = [tree.root.as_path(), here]
        .into_iter()
        .chain(tree.top.iter().map(|t| Path::new(t.as_str())))
        .filter_map(|d| inside(&tree.root, &tree.root.join(d).join(word)))
        .any(|p| p.exists());
    // A relative path that leaves the repository (`../../etc` in a text about path
    // traversal) names no file of it, wherever the clone happens to be.
    let escapes = inside(&tree.root, &here.join(word)).is_none();
    if repo_path(word, &tree.top) && !escapes && !found {
        return Some(format!("`{word}` does not exist"));
    }
    let bare = !word.contains('/')
        && (word.ends_with(".rs") || word.ends_with(".schema.json"))
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    (bare && !tree.names.contains(word)).then(|| format!("no file `{word}` in the tree"))
}

/// `path` with `.` and `..` resolved without the file system, if it stays under `root`.
fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out.starts_with(root).then_some(out)
}

/// The repository as the check sees it.
struct Tree {
    root: PathBuf,
    /// Its top-level entries.
    top: BTreeSet<String>,
    /// Every file name in it.
    names: BTreeSet<String>,
    docs: Vec<PathBuf>,
}

fn tree() -> Tree {
    let root = root();
    let mut files = Vec::new();
    walk(&root, &mut files);
    let top = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let names = files
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let docs = files
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
        .collect();
    Tree {
        root,
        top,
        names,
        docs,
    }
}

#[test]
fn every_path_command_and_flag_the_documents_name_exists() {
    let tree = tree();
    assert!(
        tree.docs.len() > 5,
        "found only {} documents under {}",
        tree.docs.len(),
        tree.root.display()
    );
    let programs: Vec<Command> = package_files::programs()
        .into_iter()
        .map(|mut p| {
            p.build();
            p
        })
        .collect();
    let mut problems = Vec::new();
    for doc in &tree.docs {
        let text = std::fs::read_to_string(doc).unwrap();
        let shown = doc.strip_prefix(&tree.root).unwrap().display().to_string();
        let here = doc.parent().unwrap();
        for m in mentions(&text) {
            for word in m.split_whitespace() {
                problems.extend(check_word(word, &tree, here).map(|p| format!("{shown}: {p}")));
            }
            if let Some((i, words)) = invocation(&m, &programs) {
                for p in check_invocation(&programs[i], &words) {
                    problems.push(format!("{shown}: {p}: {m}"));
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

#[test]
fn the_check_finds_what_it_is_for() {
    let programs: Vec<Command> = package_files::programs();
    let hl = &programs[0];
    assert_eq!(
        check_invocation(hl, &["stop", "NAME", "--timeout", "5"]),
        Vec::<String>::new()
    );
    assert_eq!(
        check_invocation(hl, &["logs", "NAME", "[--json]"]),
        ["`logs` has no --json"]
    );
    assert_eq!(
        check_invocation(hl, &["frob"]),
        ["`host-launch frob` is no command"]
    );
    let tree = tree();
    assert!(check_word("host-launch/src/cli.rs", &tree, &tree.root).is_none());
    assert!(check_word("host-launch/src/upgrade.rs", &tree, &tree.root).is_some());
    assert!(check_word("v1.rs", &tree, &tree.root).is_some());
}
