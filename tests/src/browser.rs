//! The Node.js scripts of tests/browser (real headless Chromium through
//! playwright-core): each prints one JSON line saying what happened.

use std::process::Command;

/// Runs `tests/browser/{script}` with `args` and returns the JSON line it printed
/// (also printed here: `--nocapture` shows the figures).
pub fn run(script: &str, args: &[&str]) -> serde_json::Value {
    let path = format!("{}/browser/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("node")
        .arg(path)
        .args(args)
        .output()
        .expect("run node (make test installs Node.js packages and Chromium)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "{script} {}: {}",
        args.first().unwrap_or(&""),
        stdout.trim()
    );
    serde_json::from_str(stdout.trim()).expect("one JSON report")
}
