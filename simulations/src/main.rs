//! `castmesh-sim`: runs seeds of the cluster simulation and reports.
//!
//!   castmesh-sim --seeds 0..300          a sweep, with progress and a summary
//!   castmesh-sim --seed 17 --trace       one seed again, with the nodes' logs
//!   castmesh-sim --seed 17 --hash        one seed's trace hash (determinism check)
//!   castmesh-sim --seeds 0..200 --media  with RTMP encoders and LL-HLS viewers

use std::io::Write as _;
use std::ops::Range;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use castmesh_cluster::sabotage::Bug;
use clap::Parser;
use simulations::{Options, Report};

#[derive(Parser)]
#[command(about = "Deterministic simulation of a castmesh cluster")]
struct Cli {
    /// Seeds to run, as START..END (END excluded).
    #[arg(long, value_parser = parse_range, default_value = "0..100")]
    seeds: Range<u64>,
    /// One seed (overrides --seeds).
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Seeds run side by side (each run is single-threaded).
    #[arg(long, default_value_t = default_jobs())]
    jobs: usize,
    /// Print the nodes' logs (RUST_LOG filters; default info).
    #[arg(long)]
    trace: bool,
    /// Add the media workload: encoders over RTMP, LL-HLS viewers, media invariants.
    #[arg(long)]
    media: bool,
    /// Print only each seed's trace hash.
    #[arg(long)]
    hash: bool,
    /// Run with a deliberate bug: ack-before-durable, forget-vote, stale-reads,
    /// skip-epoch-check.
    #[arg(long, value_parser = parse_bug)]
    sabotage: Option<Bug>,
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s.split_once("..").ok_or("expected START..END")?;
    let a = a.parse().map_err(|e| format!("{e}"))?;
    let b = b.parse().map_err(|e| format!("{e}"))?;
    Ok(a..b)
}

fn parse_bug(s: &str) -> Result<Bug, String> {
    Bug::ALL
        .into_iter()
        .find(|b| bug_name(*b) == s)
        .ok_or_else(|| format!("unknown bug {s:?}"))
}

fn bug_name(bug: Bug) -> &'static str {
    match bug {
        Bug::AckBeforeDurable => "ack-before-durable",
        Bug::ForgetVote => "forget-vote",
        Bug::StaleReads => "stale-reads",
        Bug::SkipEpochCheck => "skip-epoch-check",
    }
}

fn replay_command(cli: &Cli, seed: u64) -> String {
    let mut c = format!("cargo run --release -p simulations -- --seed {seed} --trace");
    if cli.nodes != 3 {
        c += &format!(" --nodes {}", cli.nodes);
    }
    if let Some(bug) = cli.sabotage {
        c += &format!(" --sabotage {}", bug_name(bug));
    }
    if cli.media {
        c += " --media";
    }
    c
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let seeds = match cli.seed {
        Some(s) => s..s + 1,
        None => cli.seeds.clone(),
    };
    let total = seeds.end.saturating_sub(seeds.start);
    let next = AtomicU64::new(seeds.start);
    let reports: Mutex<Vec<Report>> = Mutex::new(Vec::new());
    let started = Instant::now();
    let single = total == 1;
    std::thread::scope(|scope| {
        for _ in 0..cli.jobs.clamp(1, total.max(1) as usize) {
            scope.spawn(|| {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        return;
                    }
                    let report = simulations::run(&Options {
                        seed,
                        nodes: cli.nodes,
                        sabotage: cli.sabotage,
                        log: cli.trace,
                        media: cli.media,
                    });
                    let mut reports = reports.lock().unwrap_or_else(|e| e.into_inner());
                    if cli.hash {
                        println!("seed {seed} trace {:016x}", report.hash);
                    } else if single || !report.passed() {
                        eprint!("\r\x1b[K");
                        print!("{report}");
                        if !report.passed() || cli.trace {
                            print_details(&cli, &report);
                        }
                    }
                    reports.push(report);
                    if !cli.hash && !single {
                        let failed = reports.iter().filter(|r| !r.passed()).count();
                        eprint!(
                            "\r\x1b[K[{}/{total}] {failed} failed · {:.0} s",
                            reports.len(),
                            started.elapsed().as_secs_f64()
                        );
                        let _ = std::io::stderr().flush();
                    }
                }
            });
        }
    });
    let reports = reports.into_inner().unwrap_or_else(|e| e.into_inner());
    let failed: Vec<u64> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.seed)
        .collect();
    if !cli.hash {
        summary(&reports, &failed, started.elapsed(), cli.nodes);
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_details(cli: &Cli, report: &Report) {
    println!("  fault schedule:");
    for f in &report.faults {
        println!("    {f}");
    }
    // With --trace, every recorded event (up to the recorder's tail); else the last 40.
    let shown = if cli.trace { report.tail.len() } else { 40 };
    println!("  last events:");
    for line in report.tail.iter().rev().take(shown).rev() {
        println!("    {line}");
    }
    println!("  replay: {}", replay_command(cli, report.seed));
}

fn summary(reports: &[Report], failed: &[u64], wall: Duration, nodes: u32) {
    let simulated: f64 = reports.iter().map(|r| r.simulated.as_secs_f64()).sum();
    let busy: f64 = reports.iter().map(|r| r.real.as_secs_f64()).sum();
    let nodes_seconds = simulated * f64::from(nodes);
    let converge: Vec<f64> = reports
        .iter()
        .filter_map(|r| r.converged_after.map(|d| d.as_secs_f64()))
        .collect();
    let max_converge = converge.iter().copied().fold(0.0, f64::max);
    eprintln!();
    println!(
        "{} seeds, {} failed{} · {:.0} s simulated in {:.1} s ({:.1} simulated s per busy s, {:.1} node-s per busy s, {:.1} seeds/min) · slowest convergence after heal {:.1} s",
        reports.len(),
        failed.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!(" ({failed:?})")
        },
        simulated,
        wall.as_secs_f64(),
        simulated / busy.max(1e-9),
        nodes_seconds / busy.max(1e-9),
        reports.len() as f64 / wall.as_secs_f64().max(1e-9) * 60.0,
        max_converge,
    );
}
