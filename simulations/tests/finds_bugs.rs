//! The checks catch real mistakes: with each deliberate bug switched on (see
//! `castmesh_cluster::sabotage`), a sweep within the CI seed budget fails, and on the
//! invariant that bug breaks. Each test stops at its first failing seed.

use castmesh_cluster::sabotage::Bug;
use simulations::{Options, run};

/// Seeds tried before giving up: the budget `make sim` sweeps.
const BUDGET: u64 = 400;

fn first_failure(bug: Bug, invariant: &str) {
    for seed in 0..BUDGET {
        let report = run(&Options {
            seed,
            nodes: 3,
            sabotage: Some(bug),
            log: false,
            media: bug == Bug::SkipEpochCheck,
        });
        if report.violations.iter().any(|v| v.contains(invariant)) {
            println!("{bug:?} caught by seed {seed}:\n{report}");
            return;
        }
    }
    panic!("{bug:?} went unnoticed for {BUDGET} seeds (expected a violation of {invariant:?})");
}

#[test]
fn acknowledging_an_append_before_it_is_durable_loses_writes() {
    first_failure(Bug::AckBeforeDurable, "lost acknowledged");
}

#[test]
fn reading_without_asking_the_leader_is_not_linearizable() {
    first_failure(Bug::StaleReads, "no linearization");
}

#[test]
fn forgetting_the_vote_elects_two_leaders_in_a_term() {
    first_failure(Bug::ForgetVote, "leaders");
}

#[test]
fn skipping_the_lease_epoch_check_makes_two_origins_in_an_epoch() {
    first_failure(Bug::SkipEpochCheck, "origin: stream");
}
