//! The pages' static files, compiled into the binary: our stylesheet and scripts
//! (node/web/assets) and hls.js with its licence (from npm, see node/build.rs).

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/assets/app.css"),
    },
    Asset {
        name: "common.js",
        content_type: JS,
        body: include_bytes!("../../web/assets/common.js"),
    },
    Asset {
        name: "directory.js",
        content_type: JS,
        body: include_bytes!("../../web/assets/directory.js"),
    },
    Asset {
        name: "watch.js",
        content_type: JS,
        body: include_bytes!("../../web/assets/watch.js"),
    },
    Asset {
        name: "studio.js",
        content_type: JS,
        body: include_bytes!("../../web/assets/studio.js"),
    },
    Asset {
        name: "auth.js",
        content_type: JS,
        body: include_bytes!("../../web/assets/auth.js"),
    },
    Asset {
        name: "hls.min.js",
        content_type: JS,
        body: include_bytes!(env!("CASTMESH_HLS_JS")),
    },
    Asset {
        name: "hls.js-LICENSE.txt",
        content_type: "text/plain; charset=utf-8",
        body: include_bytes!(env!("CASTMESH_HLS_JS_LICENSE")),
    },
];

/// The hls.js version embedded; pages name it in the script URL so that browsers
/// never run a cached older copy.
pub const HLS_JS_VERSION: &str = env!("CASTMESH_HLS_JS_VERSION");

pub async fn serve(Path(file): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == file) else {
        return crate::http::error(StatusCode::NOT_FOUND, format!("no asset {file}"));
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            // Short: a node upgraded in place serves new scripts within minutes.
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hls_js_and_its_licence_are_embedded() {
        let find = |name| ASSETS.iter().find(|a| a.name == name).unwrap().body;
        let hls = String::from_utf8_lossy(find("hls.min.js"));
        assert!(hls.len() > 100_000, "hls.min.js is {} bytes", hls.len());
        assert!(
            hls.contains(HLS_JS_VERSION),
            "the embedded file is hls.js {HLS_JS_VERSION}"
        );
        assert!(String::from_utf8_lossy(find("hls.js-LICENSE.txt")).contains("Apache License"));
    }
}
