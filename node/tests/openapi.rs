//! `docs/openapi.json` documents every route the HTTP router serves, with its methods,
//! and nothing else: the router's `.route(…)` calls (`src/http/mod.rs`) are read from
//! the source, as `import_rules.rs` reads imports, and compared with the file's paths.

use std::collections::BTreeSet;
use std::path::Path;

/// The `(path, method)` pairs of the `.route(…)` calls in `source`; routes of the
/// router bound to `let api` are nested under `/api/v1`.
fn routes(source: &str) -> BTreeSet<(String, String)> {
    let api_start = source
        .find("let api = Router::new()")
        .expect("the API router");
    let api_end = api_start + source[api_start..].find(';').expect("its end");
    let mut found = BTreeSet::new();
    let mut at = 0;
    while let Some(i) = source[at..].find(".route(") {
        let start = at + i + ".route(".len();
        let mut depth = 1;
        let mut end = start;
        for (j, c) in source[start..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = start + j;
                break;
            }
        }
        let call = &source[start..end];
        let path = call.split('"').nth(1).expect("a route path literal");
        let prefix = if (api_start..api_end).contains(&start) {
            "/api/v1"
        } else {
            ""
        };
        for method in ["get", "post", "patch", "delete", "put"] {
            let called = call.match_indices(&format!("{method}(")).any(|(k, _)| {
                call[..k]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
            });
            if called {
                found.insert((format!("{prefix}{path}"), method.to_string()));
            }
        }
        at = end;
    }
    found
}

/// HLS is served before the router (`hls::serve`): its paths are the `pub const`
/// route patterns of `src/http/hls.rs`, all GET.
fn hls_routes(source: &str) -> BTreeSet<(String, String)> {
    let found: BTreeSet<(String, String)> = source
        .lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter_map(|l| l.split('"').nth(1))
        .filter(|path| path.starts_with("/hls/"))
        .map(|path| (path.to_string(), "get".to_string()))
        .collect();
    assert_eq!(found.len(), 3, "{found:?}");
    found
}

fn documented(spec: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if ["get", "post", "patch", "delete", "put"].contains(&method.as_str()) {
                found.insert((path.clone(), method.clone()));
            }
        }
    }
    found
}

#[test]
fn the_openapi_file_documents_exactly_the_routes_the_router_serves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let router = std::fs::read_to_string(root.join("src/http/mod.rs")).unwrap();
    let hls = std::fs::read_to_string(root.join("src/http/hls.rs")).unwrap();
    let spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("../docs/openapi.json")).unwrap())
            .expect("docs/openapi.json is JSON");
    assert_eq!(spec["openapi"], "3.1.0");
    let mut served = routes(&router);
    served.extend(hls_routes(&hls));
    assert!(
        served.contains(&("/api/v1/streams".into(), "post".into())),
        "{served:?}"
    );
    assert!(
        served.contains(&("/healthz".into(), "get".into())),
        "{served:?}"
    );
    let documented = documented(&spec);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "served but not in docs/openapi.json: {undocumented:?}; documented but not served: {not_served:?}"
    );
}

#[test]
fn every_reference_in_the_openapi_file_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("../docs/openapi.json")).unwrap();
    let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut missing = Vec::new();
    for part in text.split("\"$ref\": \"#/").skip(1) {
        let target = part.split('"').next().unwrap();
        let pointer = format!("/{target}");
        if spec.pointer(&pointer).is_none() {
            missing.push(target.to_string());
        }
    }
    assert!(missing.is_empty(), "unresolved $ref: {missing:?}");
}
