//! The commands a newcomer pastes, run as the documents give them, so that the README cannot
//! drift from the product (root; about 1 min warm): every command of the `sh` and `console`
//! blocks of README.md and docs/classes/*.md, read from the files, and every command that
//! `scripts/demo` prints under "try", read from its output. A command that fails, or a
//! console block's output that differs (white space aside), fails the test.
//!
//! Everything runs in a private mount and network namespace (`unshare`) with its own tmpfs on
//! /run/netns and /run/host-launch, so the documents' `appliances` namespace, `br-app` bridge
//! and `dns1` appliance are this test's own, never those of anyone else on the machine. Two
//! phases: `scripts/demo` alone (it makes and removes its namespace); then, in a second
//! namespace, the other `sh` commands in document order, the `console` commands (they query
//! the running appliance), and the demo's "try" commands (which end with its stop and
//! `scripts/netns down`). One command is not run: `scripts/test`, which is what CI runs and
//! runs this test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Commands of the documents this test does not run, with the reason.
const NOT_RUN: &[(&str, &str)] = &[(
    "scripts/test",
    "CI runs it (.ci/run), and it runs this test",
)];

/// Sections of README.md whose commands this test does not run, with the reason and the test
/// that runs them instead.
const SECTIONS_NOT_RUN: &[(&str, &str)] = &[(
    "## Install",
    "it installs a package on the machine: package-files/tests/install.rs runs the same story \
     (scripts/deb, apt install, a spec in /etc/host-launch, systemctl enable --now, man) \
     inside a systemd-nspawn container",
)];

/// The documents whose command blocks a newcomer pastes.
fn documents() -> Vec<PathBuf> {
    let root = e2e::workspace_root();
    let mut docs = vec![root.join("README.md")];
    let mut classes: Vec<PathBuf> = std::fs::read_dir(root.join("docs/classes"))
        .expect("docs/classes")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    classes.sort();
    docs.extend(classes);
    docs
}

/// One command of a document; for a `console` block, the output it shows.
#[derive(Debug, Clone)]
struct Cmd {
    text: String,
    console: Option<Vec<String>>,
    from: String,
}

/// The commands of the fenced `sh`, `bash`, `shell` and `console` blocks of `doc`, in order.
fn commands(doc: &Path) -> Vec<Cmd> {
    let text = std::fs::read_to_string(doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
    let name = doc
        .strip_prefix(e2e::workspace_root())
        .unwrap_or(doc)
        .display()
        .to_string();
    let mut out: Vec<Cmd> = Vec::new();
    let mut lang: Option<String> = None;
    let mut skipped_section = false;
    for (n, line) in text.lines().enumerate() {
        let from = format!("{name}:{}", n + 1);
        // A listed section runs to the next heading of its level or above.
        if lang.is_none() && (line.starts_with("# ") || line.starts_with("## ")) {
            skipped_section = SECTIONS_NOT_RUN.iter().any(|(h, _)| line.trim() == *h);
        }
        if skipped_section {
            continue;
        }
        if let Some(fence) = line.trim_start().strip_prefix("```") {
            lang = match lang {
                None => Some(fence.trim().to_string()),
                Some(_) => None,
            };
            continue;
        }
        match lang.as_deref() {
            Some("sh" | "bash" | "shell") if !line.trim().is_empty() => out.push(Cmd {
                text: line.to_string(),
                console: None,
                from,
            }),
            Some("console") => match line.strip_prefix("$ ").or(line.strip_prefix("# ")) {
                Some(cmd) => out.push(Cmd {
                    text: cmd.to_string(),
                    console: Some(Vec::new()),
                    from,
                }),
                None => {
                    if let Some(Cmd {
                        console: Some(lines),
                        ..
                    }) = out.last_mut()
                    {
                        lines.push(line.to_string());
                    }
                }
            },
            _ => {}
        }
    }
    out
}

/// The program a command line runs (its first word).
fn program(cmd: &str) -> &str {
    cmd.split_whitespace().next().unwrap_or("")
}

fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// What `script` printed and whether it succeeded, run by bash in a private mount and network
/// namespace from the workspace root; its output is echoed for the test's log.
fn in_private_namespace(label: &str, script: &str) -> (bool, String) {
    let dir = e2e::TempDir::new(&format!("readme-{label}")).expect("temp dir");
    let path = dir.join("script.sh");
    let setup = "set -u\n\
        mount -t tmpfs readme-netns /run/netns\n\
        mount -t tmpfs readme-host-launch /run/host-launch\n\
        ip link set lo up\n";
    std::fs::write(&path, format!("{setup}{script}")).expect("write the script");
    for d in ["/run/netns", "/run/host-launch"] {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{d}: {e}"));
    }
    let out = Command::new("timeout")
        .args([
            "900",
            "unshare",
            "--mount",
            "--net",
            "--propagation",
            "private",
            "bash",
        ])
        .arg(&path)
        .current_dir(e2e::workspace_root())
        .output()
        .expect("running unshare (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("===== {label}:\n{text}");
    (out.status.success(), text)
}

/// The shell line that runs command `i` between markers and stops the script at its failure.
fn step(i: usize, cmd: &str) -> String {
    format!(
        "printf '\\n@@@ {i} %s\\n' {quoted}\n{cmd}\nrc=$?\nprintf '\\n@@@ end {i} %s\\n' \"$rc\"\n\
         [ \"$rc\" = 0 ] || exit \"$rc\"\n",
        quoted = shell_quote(cmd)
    )
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The output of command `i` of a run's text.
fn output_of(text: &str, i: usize) -> Vec<String> {
    let start = format!("@@@ {i} ");
    let end = format!("@@@ end {i} ");
    text.lines()
        .skip_while(|l| !l.starts_with(&start))
        .skip(1)
        .take_while(|l| !l.starts_with(&end))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The command lines the demo printed under "== try" (two spaces in, until the first line
/// that is not).
fn try_block(demo: &str) -> Vec<String> {
    demo.lines()
        .skip_while(|l| l.trim() != "== try")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.starts_with('#'))
        .collect()
}

#[test]
fn every_command_of_the_readme_and_the_demo_works() {
    assert!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() } == 0,
        "this test needs root (mount and network namespaces, the appliances' TAP devices)"
    );
    let all: Vec<Cmd> = documents().iter().flat_map(|d| commands(d)).collect();
    let run: Vec<&Cmd> = all
        .iter()
        .filter(|c| !NOT_RUN.iter().any(|(n, _)| program(&c.text) == *n))
        .collect();
    let readme =
        std::fs::read_to_string(e2e::workspace_root().join("README.md")).expect("README.md");
    for (h, why) in SECTIONS_NOT_RUN {
        assert!(
            readme.lines().any(|l| l.trim() == *h),
            "README.md's section {h:?} is listed as not run ({why}) but is gone"
        );
    }
    for (n, why) in NOT_RUN {
        assert!(
            all.iter().any(|c| program(&c.text) == *n),
            "{n} is listed as not run ({why}) but no document has it any more"
        );
    }
    let (demo, rest): (Vec<&Cmd>, Vec<&Cmd>) =
        run.iter().partition(|c| program(&c.text) == "scripts/demo");
    assert!(
        !demo.is_empty(),
        "README.md no longer says to run scripts/demo"
    );

    // Phase 1: the demo, as the README gives it.
    let mut script = String::new();
    for (i, c) in demo.iter().enumerate() {
        script.push_str(&step(i, &c.text));
    }
    let (ok, text) = in_private_namespace("demo", &script);
    assert!(ok, "scripts/demo failed:\n{text}");
    assert!(
        text.contains("(the project's,"),
        "the demo's `host-launch status` does not show the project's kernel:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("first answer (192.0.2.80) ")
                && l.ends_with(" ms after host-launch start")),
        "the demo reports no first answer:\n{text}"
    );
    let tries = try_block(&text);
    assert!(
        tries.iter().any(|t| t.contains(" upgrade ")),
        "no upgrade among the demo's commands to try: {tries:?}"
    );

    // Phase 2: the other blocks' commands (sh, then console), then the demo's "try" lines.
    let (console, sh): (Vec<&Cmd>, Vec<&Cmd>) = rest.iter().partition(|c| c.console.is_some());
    let mut order: Vec<(String, Option<&Cmd>)> = Vec::new();
    order.extend(sh.iter().map(|c| (c.text.clone(), Some(*c))));
    order.extend(console.iter().map(|c| (c.text.clone(), Some(*c))));
    order.extend(tries.iter().map(|t| (t.clone(), None)));
    let mut script = String::from(
        "trap 'for a in $(ls /run/host-launch 2>/dev/null); do \
         target/debug/host-launch stop \"$a\" >/dev/null 2>&1; done' EXIT\n",
    );
    for (i, (cmd, _)) in order.iter().enumerate() {
        script.push_str(&step(i, cmd));
    }
    let (ok, text) = in_private_namespace("blocks", &script);
    let failed = order
        .iter()
        .enumerate()
        .find(|(i, _)| !text.contains(&format!("@@@ end {i} 0")))
        .map(|(_, (cmd, c))| {
            format!(
                "{cmd:?} ({}) failed",
                c.map(|c| c.from.as_str()).unwrap_or("scripts/demo, try")
            )
        });
    assert!(
        ok && failed.is_none(),
        "{}:\n{text}",
        failed.unwrap_or_default()
    );
    for (i, (cmd, c)) in order.iter().enumerate() {
        let Some(Cmd {
            console: Some(want),
            from,
            ..
        }) = c
        else {
            continue;
        };
        let got: Vec<String> = output_of(&text, i).iter().map(|l| words(l)).collect();
        let want: Vec<String> = want.iter().map(|l| words(l)).collect();
        assert_eq!(got, want, "{from}: `{cmd}` printed something else");
    }
}

#[test]
fn blocks_are_found_with_their_output() {
    let dir = e2e::TempDir::new("readme-parse").unwrap();
    let doc = dir.join("x.md");
    std::fs::write(
        &doc,
        "text\n```sh\na --x   # note\n\nb\n```\n```console\n$ c\nout 1\nout 2\n```\n```rust\nd\n```\n",
    )
    .unwrap();
    let cmds = commands(&doc);
    let texts: Vec<&str> = cmds.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, ["a --x   # note", "b", "c"]);
    assert_eq!(
        cmds[2].console.as_deref(),
        Some(&["out 1".to_string(), "out 2".into()][..])
    );
    let demo = "x\n== try\n  ip a\n  # comment\n  hl stop dns1\nThe web...\n  not this\n";
    assert_eq!(try_block(demo), ["ip a", "hl stop dns1"]);
    let run = "@@@ 0 'a'\nline\n\n@@@ end 0 0\n@@@ 1 'b'\n";
    assert_eq!(output_of(run, 0), ["line"]);
}
