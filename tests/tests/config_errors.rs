//! A broken configuration stops `castmesh` at once with one clear line and exit code 2.

use std::process::Command;

use castmesh_tests::node::binary;

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run castmesh");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn broken_config_files_exit_2_with_one_line() {
    let dir = castmesh_tests::artifacts_dir();
    let cases = [
        ("syntax.toml", "[hls\nsegment_target = \"2s\"\n", "line 1"),
        ("type.toml", "[hls]\nwindow_segments = \"six\"\n", "line 2"),
        ("unknown.toml", "[rtmp]\nport = 1935\n", "unknown field"),
        (
            "limit.toml",
            "[hls]\npart_target = \"5s\"\n",
            "hls.part_target",
        ),
    ];
    for (name, text, expected) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let (code, stderr) = run(&["--config", path.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: {stderr}");
        assert!(
            stderr.contains(name) && stderr.contains(expected),
            "{name}: {stderr}"
        );
    }
    let (code, stderr) = run(&["--config", "/nonexistent/castmesh.toml"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("cannot read config"), "{stderr}");
    let (code, stderr) = run(&["--hls-window-segments", "1"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("window_segments"), "{stderr}");
    let (code, _) = run(&["--rtmp-listen", "not-an-address"]);
    assert_eq!(code, Some(2));
}
