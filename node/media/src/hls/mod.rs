//! LL-HLS: the packager (frames → CMAF parts and segments), the bounded live
//! window and its replica on other nodes, the playlist renderer (with the names of
//! segments and parts), and the blocking-reload rules.

pub mod blocking;
pub mod packager;
pub mod playlist;
pub mod replica;
pub mod window;
