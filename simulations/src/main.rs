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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Stop starting seeds once one has failed.
    #[arg(long)]
    stop_on_failure: bool,
    /// Print a machine-readable outcome line last (how a sweep runs each seed).
    #[arg(long, hide = true)]
    outcome: bool,
    /// Run with a deliberate bug: ack-before-durable, forget-vote, stale-reads,
    /// skip-epoch-check, continue-any-copy, restart-numbering, no-discontinuity,
    /// clock-bound-follow, local-session-check.
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
        Bug::ContinueAnyCopy => "continue-any-copy",
        Bug::RestartNumbering => "restart-numbering",
        Bug::NoDiscontinuity => "no-discontinuity",
        Bug::ClockBoundFollow => "clock-bound-follow",
        Bug::LocalSessionCheck => "local-session-check",
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
    let outcome = match cli.seed {
        Some(seed) => run_here(&cli, seed),
        None => return sweep(&cli),
    };
    if outcome.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// What a sweep needs from one seed's run. A child process prints it as its last line
/// (`--outcome`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Outcome {
    seed: u64,
    passed: bool,
    simulated_s: f64,
    real_s: f64,
    converged_after_s: Option<f64>,
}

const OUTCOME: &str = "outcome ";

/// Runs one seed in this process and prints its report.
fn run_here(cli: &Cli, seed: u64) -> Outcome {
    let report = simulations::run(&Options {
        seed,
        nodes: cli.nodes,
        sabotage: cli.sabotage,
        log: cli.trace,
        media: cli.media,
    });
    if cli.hash {
        println!("seed {seed} trace {:016x}", report.hash);
    } else {
        print!("{report}");
        if !report.passed() || cli.trace {
            print_details(cli, &report);
        }
    }
    let outcome = Outcome {
        seed,
        passed: report.passed(),
        simulated_s: report.simulated.as_secs_f64(),
        real_s: report.real.as_secs_f64(),
        converged_after_s: report.converged_after.map(|d| d.as_secs_f64()),
    };
    if cli.outcome {
        let line = serde_json::to_string(&outcome).expect("an outcome serializes");
        println!("{OUTCOME}{line}");
    } else if !cli.hash {
        summary(std::slice::from_ref(&outcome), report.real, cli.nodes);
    }
    outcome
}

/// Runs every seed in a process of its own, `--jobs` at a time. A process per seed is
/// what makes a sweep's run of a seed the same as its replay: some state lives per
/// process, not per run (tokio numbers tasks process-wide, and the order in which a
/// crashed node's tasks are dropped follows those numbers).
fn sweep(cli: &Cli) -> ExitCode {
    let seeds = cli.seeds.clone();
    let total = seeds.end.saturating_sub(seeds.start);
    let next = AtomicU64::new(seeds.start);
    let stop = AtomicBool::new(false);
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..cli.jobs.clamp(1, total.max(1) as usize) {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= seeds.end {
                        return;
                    }
                    let (outcome, printed) = run_child(cli, seed);
                    let mut outcomes = outcomes.lock().unwrap_or_else(|e| e.into_inner());
                    if cli.hash || !outcome.passed || cli.trace {
                        eprint!("\r\x1b[K");
                        print!("{printed}");
                    }
                    if !outcome.passed && cli.stop_on_failure {
                        stop.store(true, Ordering::Relaxed);
                    }
                    outcomes.push(outcome);
                    if !cli.hash {
                        let failed = outcomes.iter().filter(|o| !o.passed).count();
                        eprint!(
                            "\r\x1b[K[{}/{total}] {failed} failed · {:.0} s",
                            outcomes.len(),
                            started.elapsed().as_secs_f64()
                        );
                        let _ = std::io::stderr().flush();
                    }
                }
            });
        }
    });
    let outcomes = outcomes.into_inner().unwrap_or_else(|e| e.into_inner());
    if !cli.hash {
        eprintln!();
        summary(&outcomes, started.elapsed(), cli.nodes);
    }
    if outcomes.iter().all(|o| o.passed) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs one seed in a child process; returns its outcome and what it printed.
fn run_child(cli: &Cli, seed: u64) -> (Outcome, String) {
    let exe = std::env::current_exe().expect("the path of castmesh-sim");
    let mut command = std::process::Command::new(exe);
    command.args(["--seed", &seed.to_string(), "--outcome"]);
    command.args(["--nodes", &cli.nodes.to_string()]);
    if let Some(bug) = cli.sabotage {
        command.args(["--sabotage", bug_name(bug)]);
    }
    command.args(cli.media.then_some("--media"));
    command.args(cli.trace.then_some("--trace"));
    command.args(cli.hash.then_some("--hash"));
    // The nodes' logs (with --trace) go straight to this process's stderr.
    command.stderr(std::process::Stdio::inherit());
    let output = command.output().expect("start castmesh-sim for one seed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let (printed, last) = stdout
        .trim_end()
        .rsplit_once('\n')
        .unwrap_or(("", stdout.trim_end()));
    match last
        .strip_prefix(OUTCOME)
        .map(serde_json::from_str::<Outcome>)
    {
        Some(Ok(outcome)) => (outcome, format!("{printed}\n")),
        // The child died before reporting (a panic in the node code, say): a failure,
        // with whatever it printed.
        _ => (
            Outcome {
                seed,
                passed: false,
                simulated_s: 0.0,
                real_s: 0.0,
                converged_after_s: None,
            },
            format!(
                "seed {seed}: FAILED · the run ended without a report ({})\n{stdout}  replay: {}\n",
                output.status,
                replay_command(cli, seed)
            ),
        ),
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

fn summary(outcomes: &[Outcome], wall: Duration, nodes: u32) {
    let simulated: f64 = outcomes.iter().map(|o| o.simulated_s).sum();
    let busy: f64 = outcomes.iter().map(|o| o.real_s).sum();
    let nodes_seconds = simulated * f64::from(nodes);
    let max_converge = outcomes
        .iter()
        .filter_map(|o| o.converged_after_s)
        .fold(0.0, f64::max);
    let failed: Vec<u64> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.seed)
        .collect();
    println!(
        "{} seeds, {} failed{} · {:.0} s simulated in {:.1} s ({:.1} simulated s per busy s, {:.1} node-s per busy s, {:.1} seeds/min) · slowest convergence after heal {:.1} s",
        outcomes.len(),
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
        outcomes.len() as f64 / wall.as_secs_f64().max(1e-9) * 60.0,
        max_converge,
    );
}
