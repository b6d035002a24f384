//! Deterministic simulation of a castmesh cluster on turmoil: real nodes on a
//! simulated network and clock, faults drawn from a seed, invariants checked on
//! what happened. The same seed gives the same run, event for event (see
//! docs/simulation.md).

pub mod checks;
pub mod clock;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod http;
pub mod linearizable;
pub mod media;
pub mod net;
pub mod observe;
pub mod profiles;
pub mod record;
pub mod sessions;
pub mod workload;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use castmesh_cluster::raft::memory::MemoryStore;
use castmesh_cluster::sabotage::{self, Bug};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use clock::SimClock;
use cluster::{NodeSpec, host_name};
use faults::{Fault, Scheduled};
use media::Media;
use record::Recorder;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use workload::Workload;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Faults all through the workload; only safety is required.
    Safety,
    /// Milder faults that heal; the cluster must then serve from every node.
    Liveness,
}

impl Mode {
    /// Seeds alternate between the two modes.
    pub fn for_seed(seed: u64) -> Mode {
        if seed.is_multiple_of(2) {
            Mode::Safety
        } else {
            Mode::Liveness
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    pub nodes: u32,
    /// A deliberate bug to run with (tests prove the checks catch it).
    pub sabotage: Option<Bug>,
    /// Print the nodes' logs (`RUST_LOG` filters; default info) to stderr.
    pub log: bool,
    /// Run the media workload too: encoders, viewers, and the media invariants.
    pub media: bool,
}

/// Timeline of a run (simulated time).
const WORK: Duration = Duration::from_secs(20);
/// After the heal, the cluster must answer through every node within this.
const CONVERGE: Duration = Duration::from_secs(15);

pub struct Report {
    pub seed: u64,
    pub mode: Mode,
    pub hash: u64,
    pub violations: Vec<String>,
    pub faults: Vec<Scheduled>,
    pub simulated: Duration,
    pub real: Duration,
    pub operations: usize,
    pub events: u64,
    /// How long after the heal (and the workers' last calls) the verifier took to see
    /// every node serve writes and reads.
    pub converged_after: Option<Duration>,
    /// How long after the verifier's start every node served fresh media.
    pub playable_after: Option<Duration>,
    /// Parts the viewers downloaded.
    pub parts: usize,
    /// The trace's last lines, for a failure report.
    pub tail: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {} ({:?}): {} · trace {:016x} · {} events · {} operations · {} parts · {:.1} s simulated in {:.2} s",
            self.seed,
            self.mode,
            if self.passed() { "ok" } else { "FAILED" },
            self.hash,
            self.events,
            self.operations,
            self.parts,
            self.simulated.as_secs_f64(),
            self.real.as_secs_f64()
        )?;
        for v in &self.violations {
            writeln!(f, "  violation: {v}")?;
        }
        Ok(())
    }
}

/// Runs one seed to the end and checks it.
pub fn run(options: &Options) -> Report {
    let started = Instant::now();
    let seed = options.seed;
    let mode = Mode::for_seed(seed);
    let nodes = options.nodes;
    sabotage::set(options.sabotage);
    castmesh_cluster::raft::runtime::seed_thread_rng(seed);
    let recorder = Recorder::default();
    let logs = options.log.then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_timer(observe::SimTime)
            .with_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "info".into()),
            )
    });
    let origins = observe::OriginLayer(recorder.clone()).with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target("castmesh::origin", tracing::Level::INFO),
    );
    // This thread's subscriber: hosts run on it, so it sees every node's events.
    let _subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(origins).with(logs));
    let schedule = faults::schedule(seed, mode, nodes, WORK);
    let healed_at = schedule.last().map_or(WORK, |s| s.at).max(WORK);
    let verify_from = healed_at.max(WORK + workload::CALL_TIMEOUT);
    let verify_until = verify_from + CONVERGE;

    let mut sim = turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(verify_until + Duration::from_secs(15))
        .tick_duration(Duration::from_millis(1))
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(Duration::from_millis(3))
        .tcp_capacity(4096)
        .udp_capacity(4096)
        .build();

    let mut rng = StdRng::seed_from_u64(seed ^ 0xc10c);
    let mut disks = Vec::new();
    let mut boots = Vec::new();
    for id in 1..=nodes {
        let spec = NodeSpec {
            id,
            nodes,
            seed,
            disk: Arc::new(MemoryStore::default()),
            clock: SimClock {
                offset_ms: rng.random_range(-3000..=3000),
                drift_ppm: rng.random_range(-20_000..=20_000),
            },
            boots: Default::default(),
        };
        recorder.event_at(Duration::ZERO, format!("node{id} clock {:?}", spec.clock));
        disks.push(spec.disk.clone());
        boots.push(spec.boots.clone());
        let r = recorder.clone();
        sim.host(host_name(id), move || {
            cluster::run_node(spec.clone(), r.clone())
        });
    }
    let workload = Workload {
        seed,
        nodes,
        recorder: recorder.clone(),
        work_until: WORK,
        verify_from,
        verify_until,
        ready: Arc::new(AtomicBool::new(false)),
        converged: Arc::new(Mutex::new(None)),
    };
    for worker in 1..=3 {
        sim.client(
            format!("client{worker}"),
            workload::worker(workload.clone(), worker),
        );
    }
    sim.client("verifier", workload::verifier(workload.clone()));
    sim.client("people", sessions::client(workload.clone()));
    for person in 1..=2 {
        sim.client(
            format!("profile{person}"),
            profiles::client(workload.clone(), person),
        );
    }
    let media = Media {
        seed,
        nodes,
        recorder: recorder.clone(),
        boots,
        publisher_at: Arc::new(AtomicU32::new(rng.random_range(1..=nodes))),
        duplicate_at: Arc::new(AtomicU32::new(0)),
        sessions: Arc::new(AtomicU32::new(1)),
        viewer_delay_ms: Default::default(),
        verify_from,
        verify_until,
        playable: Arc::new(Mutex::new(None)),
    };
    if options.media {
        sim.client("encoder", media::publisher::main_encoder(media.clone()));
        sim.client(
            "encoder2",
            media::publisher::duplicate_encoder(media.clone()),
        );
        for viewer in 1..=2 {
            sim.client(
                format!("viewer{viewer}"),
                media::viewer::viewer(media.clone(), viewer),
            );
        }
        sim.client("media-verifier", media::viewer::verifier(media.clone()));
    }

    let mut violations = Vec::new();
    let mut pending = schedule.iter().peekable();
    loop {
        while let Some(s) = pending.next_if(|s| s.at <= sim.elapsed()) {
            recorder.event_at(sim.elapsed(), format!("fault {:?}", s.fault));
            apply(&mut sim, &s.fault, nodes, &disks, &media);
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                violations.push(format!("the simulation stopped: {e}"));
                break;
            }
        }
    }
    let simulated = sim.elapsed();
    drop(sim);
    sabotage::set(None);

    let hash = recorder.hash();
    let record = recorder.take();
    violations.extend(checks::one_leader_per_term(&record));
    violations.extend(checks::linearizable_registers(&record.ops));
    let durable = checks::no_acknowledged_write_lost(&record.ops, healed_at);
    let converged = *workload.converged.lock().unwrap_or_else(|e| e.into_inner());
    // No list after the heal: nothing to compare (safety mode may end without a
    // quorum; in liveness mode the convergence check below fails instead).
    violations.extend(durable.unwrap_or_default());
    violations.extend(media::checks::one_origin_per_epoch(&record.origins));
    violations.extend(media::checks::media_sequence_never_decreases(
        &record.playlists,
    ));
    violations.extend(media::checks::same_bytes_everywhere(&record.parts));
    violations.extend(media::checks::discontinuity_at_each_origin_change(
        &record.playlists,
        &record.parts,
    ));
    violations.extend(record.malformed.iter().map(|m| format!("playlist: {m}")));
    violations.extend(
        record
            .revoked_accepted
            .iter()
            .map(|m| format!("sessions: {m}")),
    );
    let playable = *media.playable.lock().unwrap_or_else(|e| e.into_inner());
    if options.media && mode == Mode::Liveness && playable.is_none() {
        violations.push(format!(
            "liveness: {CONVERGE:?} after the heal, some node still did not play the stream"
        ));
    }
    if mode == Mode::Liveness && converged.is_none() {
        violations.push(format!(
            "liveness: {CONVERGE:?} after the heal, some node still did not serve writes and linearizable reads"
        ));
    }
    Report {
        seed,
        mode,
        hash,
        violations,
        faults: schedule,
        simulated,
        real: started.elapsed(),
        operations: record.ops.len(),
        events: record.events,
        converged_after: converged,
        playable_after: playable,
        parts: record.parts.len(),
        tail: record.tail.into_iter().collect(),
    }
}

fn apply(
    sim: &mut turmoil::Sim,
    fault: &Fault,
    nodes: u32,
    disks: &[Arc<MemoryStore>],
    media: &Media,
) {
    let all: Vec<String> = (1..=nodes).map(host_name).collect();
    match fault {
        Fault::Partition { side } => {
            for a in side {
                for b in (1..=nodes).filter(|b| !side.contains(b)) {
                    sim.partition(host_name(*a), host_name(b));
                }
            }
        }
        Fault::OneWay { from, to } => sim.partition_oneway(host_name(*from), host_name(*to)),
        Fault::Crash(n) => crash(sim, *n, disks),
        Fault::CrashMany(ns) => {
            for n in ns {
                crash(sim, *n, disks);
            }
        }
        Fault::Restart(n) => sim.bounce(host_name(*n)),
        Fault::Slow { max_latency_ms } => {
            sim.set_max_message_latency(Duration::from_millis(*max_latency_ms))
        }
        Fault::Lossy { rate } => sim.set_fail_rate(*rate),
        Fault::PublisherMoves { to, duplicate } => {
            media.publisher_at.store(*to, Ordering::Relaxed);
            media
                .duplicate_at
                .store(duplicate.unwrap_or(0), Ordering::Relaxed);
        }
        Fault::SlowViewers { delay_ms } => {
            media.viewer_delay_ms.store(*delay_ms, Ordering::Relaxed)
        }
        Fault::Heal => {
            for a in &all {
                for b in &all {
                    if a != b {
                        sim.repair(a.as_str(), b.as_str());
                    }
                }
            }
            sim.set_max_message_latency(Duration::from_millis(3));
            sim.set_fail_rate(0.0);
            media.viewer_delay_ms.store(0, Ordering::Relaxed);
        }
    }
}

fn crash(sim: &mut turmoil::Sim, node: u32, disks: &[Arc<MemoryStore>]) {
    sim.crash(host_name(node));
    disks[node as usize - 1].crash();
}
