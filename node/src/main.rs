//! `castmesh`: parse configuration, set up logging, run the node.

use std::process::ExitCode;

use castmesh_node::config::{CertCommand, Cli, CliCommand};
use castmesh_node::mesh::certs;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// `castmesh cert …`: prints the files written.
fn cert(command: &CertCommand) -> ExitCode {
    let written = match command {
        CertCommand::Init { dir } => certs::init(dir),
        CertCommand::Issue { dir, node_id, host } => certs::issue(dir, *node_id, host),
    };
    match written {
        Ok(files) => {
            for f in files {
                println!("wrote {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("castmesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(CliCommand::Cert(command)) = &cli.command {
        return cert(command);
    }
    let config = match cli.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("castmesh: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = match EnvFilter::try_new(&cli.log) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("castmesh: invalid --log filter {:?}: {e}", cli.log);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("castmesh: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(castmesh_node::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("castmesh: {e:#}");
            ExitCode::FAILURE
        }
    }
}
