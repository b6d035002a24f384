//! `castmesh`: parse configuration, set up logging, run the node.

use std::process::ExitCode;

use castmesh_node::config::{self, CertCommand, Cli, CliCommand};
use castmesh_node::mesh::certs;
use tracing_subscriber::EnvFilter;

/// `castmesh cert …`: prints the files written.
fn cert(command: &CertCommand) -> ExitCode {
    let written = match command {
        CertCommand::Init { dir } => certs::init(dir),
        CertCommand::Issue {
            dir,
            node_id,
            host,
            days,
        } => certs::issue(dir, *node_id, host, days.unwrap_or(certs::NODE_DAYS)),
        CertCommand::Renew { dir, node_id, days } => {
            certs::renew(dir, *node_id, days.unwrap_or(certs::NODE_DAYS))
        }
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

/// Every RTMP, HTTP and gRPC connection holds a descriptor, and the usual soft
/// limit (1024) is far below the connection limits: raise it to the hard limit.
fn raise_open_file_limit(config: &castmesh_node::config::Config) {
    let before = rlimit::Resource::NOFILE.get();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) => {
            let hard = rlimit::Resource::NOFILE.get().map_or(soft, |(_, h)| h);
            let was = before.map_or(soft, |(s, _)| s);
            tracing::info!(soft, hard, was, "open-file limit");
            let wanted = config.rtmp.max_connections
                + config.http.max_connections
                + config.grpc.max_connections;
            if soft < wanted as u64 {
                tracing::warn!(
                    soft,
                    wanted,
                    "the open-file limit is below the configured connection limits: connections beyond it fail to be accepted; raise the hard limit (ulimit -Hn, LimitNOFILE=) or lower the limits"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not raise the open-file limit"),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    match &cli.command {
        Some(CliCommand::Cert(command)) => return cert(command),
        Some(CliCommand::Defaults) => {
            print!("{}", config::reference_toml());
            return ExitCode::SUCCESS;
        }
        None => {}
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
    raise_open_file_limit(&config);
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
