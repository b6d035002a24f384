//! The checks catch real mistakes: with each deliberate bug switched on (see
//! `castmesh_cluster::sabotage`), a sweep within the CI seed budget fails, and on the
//! invariant that bug breaks. Each test stops at its first failing seed.

use std::process::Command;

/// Seeds tried before giving up: the budget `make sim` sweeps.
const BUDGET: u64 = 400;

/// Sweeps the budget with `bug` switched on (`castmesh-sim --sabotage`, a process per
/// seed as in `make sim`) until a seed fails; that seed must break one of `invariants`
/// (a bug may show as any of the rules it breaks, depending on the schedule). A seed
/// whose run aborts (openraft's own assertions can trip over a store the bug corrupted)
/// is not judged by our checks: the sweep goes on after it.
fn first_failure(bug: &str, media: bool, invariants: &[&str]) {
    let mut from = 0;
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_castmesh-sim"))
            .args(["--seeds", &format!("{from}..{BUDGET}"), "--sabotage", bug])
            .args(["--stop-on-failure", "--jobs", "1"])
            .args(media.then_some("--media"))
            .output()
            .expect("run castmesh-sim");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !out.status.success(),
            "{bug} went unnoticed for seeds {from}..{BUDGET} (expected a violation of {invariants:?}):\n{stdout}"
        );
        let caught = stdout
            .lines()
            .find(|l| l.contains("FAILED"))
            .unwrap_or_default();
        if caught.contains("ended without a report") {
            let seed: u64 = caught
                .trim_start_matches(|c: char| !c.is_ascii_digit())
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no seed in {caught:?}"));
            from = seed + 1;
            continue;
        }
        assert!(
            invariants.iter().any(|i| stdout.contains(i)),
            "{bug} made a run fail, but not on {invariants:?}:\n{stdout}"
        );
        println!("{bug} caught: {caught}");
        return;
    }
}

#[test]
fn acknowledging_an_append_before_it_is_durable_loses_writes() {
    first_failure("ack-before-durable", false, &["lost acknowledged"]);
}

#[test]
fn reading_without_asking_the_leader_is_not_linearizable() {
    first_failure("stale-reads", false, &["no linearization"]);
}

#[test]
fn forgetting_the_vote_elects_two_leaders_in_a_term() {
    first_failure("forget-vote", false, &["leaders"]);
}

#[test]
fn skipping_the_lease_epoch_check_makes_two_origins_in_an_epoch() {
    first_failure("skip-epoch-check", true, &["origin: stream"]);
}

#[test]
fn continuing_a_copy_without_a_hand_over_serves_one_name_with_two_contents() {
    // Serving a stale copy's names with new bytes, or listing the new run's parts
    // after the copy's without a discontinuity: both are this bug.
    first_failure("continue-any-copy", true, &["bytes:", "discontinuity:"]);
}

#[test]
fn restarting_the_numbering_of_a_new_run_takes_the_media_sequence_back() {
    first_failure("restart-numbering", true, &["media sequence:"]);
}

#[test]
fn dropping_discontinuity_tags_hides_a_change_of_origin() {
    first_failure("no-discontinuity", true, &["discontinuity:"]);
}

#[test]
fn following_the_lease_by_the_local_clock_leaves_an_edge_frozen() {
    first_failure("clock-bound-follow", true, &["did not play the stream"]);
}

/// A session check from the local copy answers `GET /api/v1/me` from a stale state
/// (the account's name register) and can accept a signed-out session (`sessions:`);
/// the register usually shows it first.
#[test]
fn checking_sessions_without_the_commit_index_reads_stale_accounts() {
    first_failure(
        "local-session-check",
        false,
        &["name of shared@sim.example"],
    );
}
