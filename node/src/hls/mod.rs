//! LL-HLS: the segmenter (frames → CMAF parts), the bounded live window, the
//! playlist renderer and the blocking-reload rules. All pure except [`live`],
//! which shares one stream's window with the HTTP handlers.

pub mod blocking;
pub mod live;
pub mod names;
pub mod playlist;
pub mod replica;
pub mod segmenter;
pub mod window;
