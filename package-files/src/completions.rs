//! Shell completions from a program's clap definition, where each shell's Debian package
//! looks for a package's own: bash-completion loads them on the first TAB.

use crate::File;
use clap::Command;
use clap_complete::Shell;

/// The completion file of `name` for `shell`, relative to the package's root.
pub fn path(shell: Shell, name: &str) -> String {
    match shell {
        Shell::Bash => format!("usr/share/bash-completion/completions/{name}"),
        Shell::Zsh => format!("usr/share/zsh/vendor-completions/_{name}"),
        Shell::Fish => format!("usr/share/fish/vendor_completions.d/{name}.fish"),
        other => format!("usr/share/{other}/completions/{name}"),
    }
}

/// bash, zsh and fish completions of one program.
pub fn scripts(program: Command) -> Vec<File> {
    let name = program.get_name().to_string();
    [Shell::Bash, Shell::Zsh, Shell::Fish]
        .into_iter()
        .map(|shell| {
            let mut bytes = Vec::new();
            clap_complete::generate(shell, &mut program.clone(), &name, &mut bytes);
            File {
                path: path(shell, &name),
                bytes,
                mode: 0o644,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn bash_completes_the_subcommands() {
        let all = scripts(host_launch::cli::Cli::command());
        assert_eq!(
            all.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            [
                "usr/share/bash-completion/completions/host-launch",
                "usr/share/zsh/vendor-completions/_host-launch",
                "usr/share/fish/vendor_completions.d/host-launch.fish",
            ]
        );
        let bash = String::from_utf8_lossy(&all[0].bytes);
        assert!(bash.contains("complete -F _host__launch"), "{bash}");
        assert!(bash.contains("install-systemd"), "{bash}");
    }
}
