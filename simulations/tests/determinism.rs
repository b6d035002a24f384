//! The same seed gives the same run: two separate processes (different hash seeds,
//! allocation addresses, thread ids) must produce the same trace hash. Checked for a
//! safety-mode and a liveness-mode seed, without and with the media workload.

use std::process::Command;

fn trace_hash(seed: u64, media: bool) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_castmesh-sim"))
        .args(["--seed", &seed.to_string(), "--hash"])
        .args(media.then_some("--media"))
        .output()
        .expect("run castmesh-sim");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        stdout.starts_with(&format!("seed {seed} trace ")),
        "unexpected output: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_seed_replays_identically_in_another_process() {
    for media in [false, true] {
        for seed in [4, 7] {
            let first = trace_hash(seed, media);
            let second = trace_hash(seed, media);
            assert_eq!(
                first, second,
                "seed {seed} (media: {media}) is not deterministic"
            );
        }
    }
}

#[test]
fn different_seeds_give_different_runs() {
    assert_ne!(trace_hash(4, false), trace_hash(6, false));
    assert_ne!(trace_hash(4, false), trace_hash(4, true));
}
