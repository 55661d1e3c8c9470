//! `switchyard ctl ...`: the command line of the admin API client in `switchyard_admin::ctl`.
//! The address defaults to the config's `dashboard.listeners.http.bind` (an unspecified
//! address becomes loopback).

use clap::{Args, Subcommand};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use switchyard_admin::ctl::{self, Action, Target};
use switchyard_config::Config;

/// `switchyard ctl` options.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Dashboard address, host:port (default: from dashboard.listeners.http.bind).
    #[arg(long)]
    addr: Option<String>,
    /// API key (HTTP Basic); use with --api-secret.
    #[arg(long, requires = "api_secret")]
    api_key: Option<String>,
    /// API secret.
    #[arg(long)]
    api_secret: Option<String>,
    /// Dashboard username (when no API key is given).
    #[arg(long, short = 'u', default_value = "admin")]
    username: String,
    /// Dashboard password (when no API key is given).
    #[arg(long, short = 'p')]
    password: Option<String>,
    #[command(subcommand)]
    command: CtlCommand,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Node status (GET /status; needs no credentials).
    Status,
    /// Clients of every protocol.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// Gateways and their status.
    #[command(subcommand)]
    Gateways(GatewaysCommand),
    /// Stop the node that runs on this config's node.data_dir (SIGTERM to the pid in
    /// <data_dir>/switchyard.pid: a graceful shutdown) and wait for it to exit.
    Stop {
        /// How long to wait for the exit, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// List clients (optionally of one protocol, by its proto_name as `GET /api/v5/protocols`
    /// lists them, e.g. MQTT-SN).
    List {
        #[arg(long)]
        proto: Option<String>,
    },
    /// Show one client as JSON.
    Show { clientid: String },
    /// Disconnect a client.
    Kick { clientid: String },
}

#[derive(Debug, Subcommand)]
enum GatewaysCommand {
    /// List gateways.
    List,
}

/// Runs the command and prints its output.
pub fn run(config: &Config, args: CtlArgs) -> anyhow::Result<()> {
    let addr = args.addr.clone().unwrap_or_else(|| {
        let mut a = config.dashboard.listeners.http.bind;
        if a.ip().is_unspecified() {
            a.set_ip(match a.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            });
        }
        a.to_string()
    });
    let mut target = Target { addr, auth: None };
    let action = match args.command {
        CtlCommand::Status => Action::Status,
        CtlCommand::Clients(ClientsCommand::List { proto }) => Action::ClientsList { proto },
        CtlCommand::Clients(ClientsCommand::Show { clientid }) => Action::ClientsShow(clientid),
        CtlCommand::Clients(ClientsCommand::Kick { clientid }) => Action::ClientsKick(clientid),
        CtlCommand::Gateways(GatewaysCommand::List) => Action::GatewaysList,
        // Local: a signal through the pid file, not the admin API.
        CtlCommand::Stop { timeout } => return stop(config, timeout),
    };
    if !matches!(action, Action::Status) {
        target.auth = Some(match (&args.api_key, &args.api_secret, &args.password) {
            (Some(k), Some(s), _) => ctl::basic(k, s),
            (_, _, Some(p)) => {
                ctl::login(&target, &args.username, p).map_err(anyhow::Error::msg)?
            }
            _ => anyhow::bail!("give --api-key/--api-secret or --password"),
        });
    }
    let out = ctl::run(&target, &action).map_err(anyhow::Error::msg)?;
    print!("{out}");
    Ok(())
}

/// `switchyard ctl stop`: the node of this config's data directory, through its pid file.
fn stop(config: &Config, timeout: u64) -> anyhow::Result<()> {
    use crate::pidfile::Stopped;
    let dir = &config.node.data_dir;
    match crate::pidfile::stop(dir, std::time::Duration::from_secs(timeout))? {
        Stopped::Exited(pid) => println!("switchyard (pid {pid}) stopped"),
        Stopped::NotRunning => anyhow::bail!(
            "not running: no {} (is node.data_dir the running node's?)",
            crate::pidfile::path(dir).display()
        ),
        Stopped::Stale(pid) => {
            anyhow::bail!("not running: pid {pid} had exited (stale pid file removed)")
        }
    }
    Ok(())
}
