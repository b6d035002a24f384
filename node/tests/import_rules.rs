//! The node's modules depend one way (docs/architecture.md, "Invariants"):
//!
//! ```text
//! node, fuzz, lib, main     wiring: may import anything
//! rtmp | http | control     listeners (http with the web app) and the control plane
//!                           (cluster/, admin/)
//! stream | platform          per-stream actors, the directory, the publish path;
//!                           accounts, chat and the platform around the media
//! mesh                      QUIC transport between nodes
//! live                      one stream's shared window
//! foundation                config, metrics, seams, admission, client_addr, ...
//! castmesh-media            pure media core (its own crate: no runtime at all)
//! ```
//!
//! A module may import its own group and groups below it, never above or beside.
//! This is a source scan: `crate::x` paths in code (comments skipped), including
//! `use crate::{a, b}` lists. The last test shows it catching a forbidden import.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Groups from the bottom up; a module may import groups of lower rank and its own.
const GROUPS: &[(&str, u8, &[&str])] = &[
    (
        "foundation",
        0,
        &[
            "admission",
            "client_addr",
            "config",
            "deadline_io",
            "metrics",
            "private_file",
            "seams",
            "supervision",
        ],
    ),
    ("live", 1, &["live"]),
    ("mesh", 2, &["mesh"]),
    ("stream", 3, &["stream"]),
    ("platform", 3, &["platform", "chat"]),
    ("rtmp", 4, &["rtmp"]),
    ("http", 4, &["http", "web"]),
    ("control", 4, &["admin", "cluster"]),
    ("wiring", 5, &["node", "fuzz", "lib", "main"]),
];

/// External crates a group must not use (the media crate's own Cargo.toml keeps it
/// free of runtimes; this keeps the cluster's state out of the media path).
const FORBIDDEN_CRATES: &[(&str, &[&str])] = &[
    ("live", &["castmesh_cluster", "ractor", "quinn", "tonic"]),
    ("mesh", &["castmesh_cluster", "ractor"]),
];

fn group(module: &str) -> Option<(&'static str, u8)> {
    GROUPS
        .iter()
        .find(|(_, _, members)| members.contains(&module))
        .map(|(name, rank, _)| (*name, *rank))
}

/// Source without comments: `//` lines, and `//` after code when preceded by a space
/// (so `"rtmp://"` in a string stays).
fn code(source: &str) -> String {
    let mut out = String::new();
    for line in source.lines() {
        let line = line.trim_start();
        if line.starts_with("//") {
            continue;
        }
        let line = match line.find(" //") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Top-level modules named after `crate::` in `source`.
fn crate_imports(source: &str) -> BTreeSet<String> {
    let code = code(source);
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(i) = rest.find("crate::") {
        // `castmesh_crate::` or `my_crate::` are not this crate.
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(list) = rest.strip_prefix('{') {
            let end = list.find('}').unwrap_or(list.len());
            for item in list[..end].split(',') {
                let name = first_segment(item.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            found.insert(first_segment(rest));
        }
    }
    found
}

fn first_segment(path: &str) -> String {
    path.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every rule broken by `files` (module name, source text), in words.
fn violations(files: &[(String, String, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for (path, module, source) in files {
        let Some((from_group, from_rank)) = group(module) else {
            found.push(format!(
                "{path}: module `{module}` is in no group of the import rules"
            ));
            continue;
        };
        for target in crate_imports(source) {
            if target == *module {
                continue;
            }
            let Some((to_group, to_rank)) = group(&target) else {
                continue;
            };
            if to_group != from_group && to_rank >= from_rank {
                found.push(format!(
                    "{path}: `{from_group}` may not import `{target}` (group `{to_group}`)"
                ));
            }
        }
        for (group_name, crates) in FORBIDDEN_CRATES {
            if *group_name != from_group {
                continue;
            }
            let code = code(source);
            for krate in *crates {
                if code.contains(&format!("{krate}::")) {
                    found.push(format!("{path}: `{from_group}` may not use `{krate}`"));
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// (path, top-level module, source) of every file of the node crate.
fn node_sources() -> Vec<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel.components().next().unwrap().as_os_str();
            let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
            let source = std::fs::read_to_string(&path).unwrap();
            (rel.display().to_string(), module, source)
        })
        .collect()
}

#[test]
fn modules_import_one_way() {
    let files = node_sources();
    assert!(files.len() > 50, "found only {} files", files.len());
    let broken = violations(&files);
    assert!(
        broken.is_empty(),
        "import rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_media_crate_has_no_runtime_network_or_cluster_dependency() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("media/Cargo.toml"))
            .unwrap();
    let deps = manifest
        .split("[dependencies]")
        .nth(1)
        .expect("a [dependencies] table");
    let deps = deps.split("\n[").next().unwrap_or(deps);
    for forbidden in [
        "tokio",
        "ractor",
        "quinn",
        "tonic",
        "openraft",
        "castmesh-cluster",
    ] {
        assert!(
            !deps
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("{forbidden} "))
                    || l.trim_start().starts_with(&format!("{forbidden}."))),
            "castmesh-media depends on {forbidden}"
        );
    }
}

/// The scan finds what the rules forbid: the mesh importing the stream layer (through
/// a `use` list spread over lines), the live window using the cluster crate, and a
/// module nobody placed; comments and other crates' `crate::` are not imports.
#[test]
fn a_forbidden_import_is_caught() {
    let file = |path: &str, module: &str, source: &str| {
        (path.to_string(), module.to_string(), source.to_string())
    };
    let files = [
        file(
            "mesh/bad.rs",
            "mesh",
            "use crate::metrics::Metrics;\nuse crate::{\n    live,\n    stream::directory::StreamHandle,\n};\n",
        ),
        file(
            "live.rs",
            "live",
            "// crate::stream is only mentioned\nfn f() { castmesh_cluster::sabotage::active(); }\n",
        ),
        file(
            "stream/ok.rs",
            "stream",
            "use crate::mesh::Mesh; // crate::http in a comment\nuse castmesh_crate::http;\nlet url = \"rtmp://x\";\n",
        ),
        file("newthing.rs", "newthing", ""),
    ];
    assert_eq!(
        violations(&files),
        [
            "mesh/bad.rs: `mesh` may not import `stream` (group `stream`)",
            "live.rs: `live` may not use `castmesh_cluster`",
            "newthing.rs: module `newthing` is in no group of the import rules",
        ]
    );
}
