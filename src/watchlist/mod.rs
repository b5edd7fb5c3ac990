//! Signed, model-bound, rollback-proof watchlists: the file format, keys, verification, the
//! on-box store with atomic install and hot reload, and sync from a web server.

pub mod active;
pub mod builder;
pub mod error;
pub mod format;
pub mod keys;
pub mod store;
pub mod sync;
pub mod text;
pub mod threshold_table;
pub mod verify;

pub use active::{ActiveWatchlist, Reload};
pub use builder::WatchlistBuilder;
pub use error::{Rejection, WatchlistError};
pub use format::{Body, Entry, Severity, Thresholds};
pub use keys::{KeyId, TrustedKeys};
pub use store::{LoadedWatchlist, Store, StoreError};
pub use verify::{EmbedderId, Verified, Verifier};
