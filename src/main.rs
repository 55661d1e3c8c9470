//! The `switchyard` binary: the only place that knows every protocol. It loads the config,
//! sets up logging, builds the bus, binds every enabled listener, and shuts down gracefully on
//! SIGINT/SIGTERM.

mod cluster;
mod ctl;
mod delayed_store;
mod gateways;
mod logfile;
mod pidfile;
mod psk;
mod rules;
mod sdnotify;
mod settings;
mod startup;
mod trace;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Multi-protocol IoT gateway and MQTT broker.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
struct Cli {
    /// Config file (default: config/switchyard.toml when it exists, else built-in defaults).
    #[arg(long, short = 'c', global = true)]
    config: Option<PathBuf>,
    /// Write the bound listener addresses as JSON to this file once all are listening.
    #[arg(long)]
    ready_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Print the effective configuration (defaults < file < environment) as TOML.
    PrintConfig,
    /// Check the configuration (the file with environment overrides): exit 0 when it is
    /// valid, else non-zero with the key at fault.
    CheckConfig,
    /// Query or operate a running node through its admin API (status, clients, gateways).
    Ctl(ctl::CtlArgs),
}

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchyard: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The error says "invalid configuration: …" itself, once.
    let config = switchyard_config::load(cli.config.as_deref())?;
    match cli.command.unwrap_or(Command::Run) {
        Command::PrintConfig => {
            print!("{}", switchyard_config::to_toml(&config));
            Ok(())
        }
        Command::CheckConfig => {
            let from = cli.config.as_deref().map_or_else(
                || "the built-in defaults or config/switchyard.toml".to_owned(),
                |p| p.display().to_string(),
            );
            println!("configuration OK ({from}, with environment overrides)");
            Ok(())
        }
        Command::Ctl(args) => ctl::run(&config, args),
        Command::Run => {
            let traces = startup::init_tracing(&config.log)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("switchyard")
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(startup::run(config, cli.ready_file, traces))
        }
    }
}
