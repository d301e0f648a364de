//! `ferry service install | start | stop | status`: `ferry serve` as a per-user service, so a
//! device serves and syncs whenever its user is logged in.
//!
//! The service must open the vault without a terminal: the OS keychain (kept at `init`/`join`)
//! or the `--passphrase-command` given to `install`, which is written into the definition.

use crate::cli::{GlobalArgs, ServiceAction};
use crate::exit::CliError;
use anyhow::{Context, Result};
use ferry_engine::ErrorClass;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = "ferry.service";
const AGENT: &str = "dev.ferry.serve";

/// What the definition runs.
struct Launch {
    exe: PathBuf,
    home: PathBuf,
    listen: String,
    passphrase_command: Option<String>,
}

impl Launch {
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--home".to_owned(), self.home.display().to_string()];
        if let Some(command) = &self.passphrase_command {
            args.extend(["--passphrase-command".to_owned(), command.clone()]);
        }
        args.extend(["serve".to_owned(), "--listen".to_owned(), self.listen.clone()]);
        args
    }
}

/// Quotes an argument for a systemd `ExecStart=` line.
fn systemd_quote(arg: &str) -> String {
    if arg.chars().all(|c| c.is_ascii_alphanumeric() || "/._-:=@".contains(c)) {
        arg.to_owned()
    } else {
        format!("\"{}\"", arg.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%"))
    }
}

/// The systemd user unit.
fn systemd_unit(launch: &Launch) -> String {
    let exec: Vec<String> =
        std::iter::once(launch.exe.display().to_string()).chain(launch.args()).map(|a| systemd_quote(&a)).collect();
    format!(
        "[Unit]\nDescription=ferry: serve and sync this device's vault ({home})\nAfter=network-online.target\n\n\
         [Service]\nExecStart={exec}\nRestart=on-failure\nRestartSec=10\n\n[Install]\nWantedBy=default.target\n",
        home = launch.home.display(),
        exec = exec.join(" ")
    )
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The macOS LaunchAgent.
fn launch_agent(launch: &Launch) -> String {
    let args: String = std::iter::once(launch.exe.display().to_string())
        .chain(launch.args())
        .map(|a| format!("    <string>{}</string>\n", xml_escape(&a)))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \
         \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\">\n<dict>\n  <key>Label</key>\n  \
         <string>{AGENT}</string>\n  <key>ProgramArguments</key>\n  <array>\n{args}  </array>\n  <key>RunAtLoad</key>\n  \
         <true/>\n  <key>KeepAlive</key>\n  <true/>\n</dict>\n</plist>\n"
    )
}

/// Where the definition goes.
fn definition_path() -> Result<PathBuf> {
    let base = directories::BaseDirs::new().ok_or_else(|| anyhow::anyhow!("cannot find the home directory"))?;
    Ok(if cfg!(target_os = "macos") {
        base.home_dir().join("Library/LaunchAgents").join(format!("{AGENT}.plist"))
    } else {
        std::env::var_os("XDG_CONFIG_HOME")
            .map_or_else(|| base.home_dir().join(".config"), PathBuf::from)
            .join("systemd/user")
            .join(UNIT)
    })
}

/// Runs the service manager; a missing one is reported, not fatal for `install`.
fn manage(args: &[&str]) -> Result<std::process::ExitStatus> {
    let (program, args): (&str, Vec<String>) = if cfg!(target_os = "macos") {
        ("launchctl", args.iter().map(|a| (*a).to_owned()).collect())
    } else {
        ("systemctl", std::iter::once("--user".to_owned()).chain(args.iter().map(|a| (*a).to_owned())).collect())
    };
    Command::new(program).args(&args).status().with_context(|| format!("cannot run {program}"))
}

pub fn service(global: &GlobalArgs, action: &ServiceAction) -> Result<()> {
    let path = definition_path()?;
    let mut out = std::io::stdout().lock();
    match action {
        ServiceAction::Install { listen, no_enable } => {
            let home = super::home(global)?;
            if !home.has_vault() {
                return Err(ferry_engine::Error::NoVault { home: home.root().to_owned() }.into());
            }
            let launch = Launch {
                exe: std::env::current_exe().context("cannot find the ferry executable")?,
                home: home.root().canonicalize().unwrap_or_else(|_| home.root().to_owned()),
                listen: listen.clone(),
                passphrase_command: global.passphrase_command.clone(),
            };
            if launch.passphrase_command.is_none() && global.no_keychain {
                return Err(CliError::new(
                    ErrorClass::Setup,
                    "the service cannot ask for a passphrase: give --passphrase-command CMD, or keep the key in the OS keychain (`ferry key keychain on`)",
                )
                .into());
            }
            let text = if cfg!(target_os = "macos") { launch_agent(&launch) } else { systemd_unit(&launch) };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            }
            std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(out, "wrote {}", path.display())?;
            if !no_enable {
                enable(&path)?;
                writeln!(out, "enabled and started: `ferry service status` shows it")?;
            }
            Ok(())
        }
        ServiceAction::Start => run(&path, if cfg!(target_os = "macos") { &["load", "-w"] } else { &["start", UNIT] }),
        ServiceAction::Stop => run(&path, if cfg!(target_os = "macos") { &["unload"] } else { &["stop", UNIT] }),
        ServiceAction::Status => {
            if !path.exists() {
                writeln!(out, "not installed ({} does not exist): `ferry service install`", path.display())?;
                return Ok(());
            }
            run(&path, if cfg!(target_os = "macos") { &["list", AGENT] } else { &["status", UNIT] })
        }
    }
}

fn enable(path: &Path) -> Result<()> {
    if cfg!(target_os = "macos") {
        return run(path, &["load", "-w"]);
    }
    manage(&["daemon-reload"])?;
    run(path, &["enable", "--now", UNIT])
}

fn run(path: &Path, args: &[&str]) -> Result<()> {
    let mut args = args.to_vec();
    let path_text = path.display().to_string();
    if cfg!(target_os = "macos") && args.first().is_some_and(|a| *a != "list") {
        args.push(&path_text);
    }
    let status = manage(&args)?;
    if !status.success() {
        return Err(CliError::new(ErrorClass::Other, format!("the service manager failed ({status})")).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launch() -> Launch {
        Launch {
            exe: PathBuf::from("/usr/local/bin/ferry"),
            home: PathBuf::from("/home/ann/.local/share/ferry"),
            listen: "0.0.0.0:7420".into(),
            passphrase_command: Some("pass show \"ferry vault\"".into()),
        }
    }

    #[test]
    fn the_systemd_unit_runs_serve_for_this_home() {
        let unit = systemd_unit(&launch());
        assert!(unit.contains(
            "ExecStart=/usr/local/bin/ferry --home /home/ann/.local/share/ferry --passphrase-command \"pass show \\\"ferry vault\\\"\" serve --listen 0.0.0.0:7420\n"
        ), "{unit}");
        assert!(unit.contains("Restart=on-failure") && unit.contains("WantedBy=default.target"));
        let no_command = Launch { passphrase_command: None, home: PathBuf::from("/home/a b/100%"), ..launch() };
        assert!(
            systemd_unit(&no_command).contains("--home \"/home/a b/100%%\" serve"),
            "{}",
            systemd_unit(&no_command)
        );
    }

    #[test]
    fn the_launch_agent_lists_every_argument() {
        let plist = launch_agent(&launch());
        assert!(plist.contains("<string>dev.ferry.serve</string>"));
        assert!(plist.contains("<string>pass show &quot;ferry vault&quot;</string>"), "{plist}");
        assert!(
            plist.contains("<string>serve</string>\n    <string>--listen</string>\n    <string>0.0.0.0:7420</string>")
        );
    }
}
