//! The alert journal, its repair reports and the webhook that drains it.
//!
//! One test binary per area (linking tract and the crate once); each module is one former
//! test file, `common` holds what they share.

#[allow(dead_code, unused_imports)]
#[path = "../common/mod.rs"]
mod common;

mod journal_repair_report;
mod journal_store;
mod journal_webhook;
