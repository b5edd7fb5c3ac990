//! Frame sources: pixel formats, the bounded queue, reconnects, files and clips.
//!
//! One test binary per area (linking tract and the crate once); each module is one former
//! test file, `common` holds what they share.

#[allow(dead_code, unused_imports)]
#[path = "../common/mod.rs"]
mod common;

mod camera_pixel;
mod camera_queue;
mod camera_reconnect;
mod camera_sources;
