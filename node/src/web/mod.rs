//! The web app every node serves on its HTTP listener: the directory of streams, the
//! watch page (hls.js player, live status, chat), the studio and the sign-in pages.
//! Pages are templates checked when the node is compiled (node/web/templates) with
//! small plain scripts (node/web/assets) that use the REST API and the watch socket.
//! Everything is embedded in the binary; hls.js comes from npm at build time
//! (node/build.rs) and the running node fetches nothing.

pub mod assets;
pub mod pages;
pub mod watch_socket;

use axum::Router;
use axum::routing::get;

use crate::http::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::directory))
        .route("/watch/{id}", get(pages::watch))
        .route("/studio", get(pages::studio))
        .route("/login", get(pages::login))
        .route("/signup", get(pages::signup))
        .route("/assets/{file}", get(assets::serve))
}
