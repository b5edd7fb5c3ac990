//! lanewatch: spots watchlisted people at checkpoint lanes.
//!
//! One straight pipeline: frames → detect → align → embed → match → alert. Each concern lives in
//! its own module; `main.rs` only parses arguments and calls into [`commands`].

pub mod alerts;
pub mod camera;
pub mod commands;
pub mod config;
pub mod enrollment;
pub mod fsio;
pub mod http;
pub mod matcher;
pub mod pipeline;
pub mod queue;
pub mod rng;
pub mod samples;
pub mod track;
pub mod vision;
pub mod watchlist;
