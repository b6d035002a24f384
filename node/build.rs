//! Embeds hls.js into the node (the watch page's player), from the copy `make deps`
//! installs with `npm ci` into node/web/node_modules: the version pinned and
//! integrity-checked by node/web/package-lock.json. It is not in the repository and
//! the running node never fetches it.

use std::path::Path;

fn main() {
    let web = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo")).join("web");
    let package = web.join("node_modules/hls.js");
    println!("cargo:rerun-if-changed=web/package-lock.json");
    println!("cargo:rerun-if-changed=web/node_modules/hls.js/package.json");
    let pinned = version(
        &web.join("package-lock.json"),
        &["packages", "node_modules/hls.js"],
    );
    let installed = version_opt(&package.join("package.json"), &[]);
    match installed {
        Some(v) if v == pinned => {}
        Some(v) => panic!(
            "node/web/node_modules has hls.js {v}, the lock file pins {pinned}: run `make deps` (npm ci in node/web)"
        ),
        None => panic!(
            "hls.js is not installed in node/web/node_modules: run `make deps` (npm ci in node/web), which the README's commands do"
        ),
    }
    for (var, file) in [
        ("CASTMESH_HLS_JS", "dist/hls.min.js"),
        ("CASTMESH_HLS_JS_LICENSE", "LICENSE"),
    ] {
        let path = package.join(file);
        assert!(
            path.is_file(),
            "{} is missing: run `make deps`",
            path.display()
        );
        println!("cargo:rerun-if-changed={}", path.display());
        println!("cargo:rustc-env={var}={}", path.display());
    }
    println!("cargo:rustc-env=CASTMESH_HLS_JS_VERSION={pinned}");
}

fn version(file: &Path, at: &[&str]) -> String {
    version_opt(file, at).unwrap_or_else(|| panic!("no hls.js version in {}", file.display()))
}

/// The `version` field of the JSON object at path `at` in `file`.
fn version_opt(file: &Path, at: &[&str]) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let object = at.iter().try_fold(&json, |v, key| v.get(key))?;
    Some(object.get("version")?.as_str()?.to_string())
}
