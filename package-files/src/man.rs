//! Man pages (section 1) from a program's clap definition: the program's own page and one per
//! subcommand, named as git's are (`host-launch-run(1)`), with the synopsis as typed
//! (`host-launch run`). A hidden subcommand (`host-launch systemd-generator`, run by systemd)
//! gets one too: an administrator meets it in the generator's script.

use crate::File;
use clap::Command;

/// Where section 1 pages go in the package.
pub const MAN1_DIR: &str = "usr/share/man/man1";

/// The pages of one program (not compressed: dh_compress does that).
pub fn pages(program: Command) -> Result<Vec<File>, std::io::Error> {
    let mut program = program;
    // Gives every subcommand its bin name ("host-launch run") and display name
    // ("host-launch-run") and the global arguments.
    program.build();
    let mut out = Vec::new();
    collect(&program, &mut out)?;
    Ok(out)
}

fn collect(cmd: &Command, out: &mut Vec<File>) -> Result<(), std::io::Error> {
    out.push(page(cmd)?);
    for sub in cmd.get_subcommands() {
        if sub.get_name() != "help" {
            collect(sub, out)?;
        }
    }
    Ok(())
}

fn page(cmd: &Command) -> Result<File, std::io::Error> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut bytes = Vec::new();
    man.render(&mut bytes)?;
    Ok(File {
        path: format!("{MAN1_DIR}/{}", man.get_filename()),
        bytes,
        mode: 0o644,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(program: Command) -> Vec<String> {
        pages(program)
            .unwrap()
            .into_iter()
            .map(|f| f.path.trim_start_matches("usr/share/man/man1/").to_string())
            .collect()
    }

    #[test]
    fn every_visible_subcommand_has_a_page() {
        let hl = names(host_launch::cli::Cli::command());
        for want in [
            "host-launch.1",
            "host-launch-run.1",
            "host-launch-start.1",
            "host-launch-stop.1",
            "host-launch-upgrade.1",
            "host-launch-install-systemd.1",
            "host-launch-schema.1",
        ] {
            assert!(hl.iter().any(|n| n == want), "{want} in {hl:?}");
        }
        assert!(
            hl.iter().any(|n| n == "host-launch-systemd-generator.1"),
            "{hl:?}"
        );
        assert!(!hl.iter().any(|n| n.contains("help")), "{hl:?}");
        let runc = names(uml_runc::cli::Cli::command());
        assert!(runc.iter().any(|n| n == "uml-runc-create.1"), "{runc:?}");
        assert_eq!(names(build_image::cli::Args::command()), ["build-image.1"]);
        assert_eq!(names(conformance::cli::Args::command()), ["conformance.1"]);
    }

    #[test]
    fn a_subcommand_page_shows_the_command_as_typed() {
        let all = pages(host_launch::cli::Cli::command()).unwrap();
        let run = all
            .iter()
            .find(|f| f.path.ends_with("/host-launch-run.1"))
            .unwrap();
        let text = String::from_utf8_lossy(&run.bytes);
        assert!(text.contains(".TH host-launch-run 1"), "{text}");
        assert!(text.contains("\\fBhost\\-launch run\\fR"), "{text}");
        assert!(text.contains("kernel\\-log"), "the options: {text}");
    }

    use clap::CommandFactory;
}
