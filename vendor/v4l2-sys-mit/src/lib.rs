#![allow(clippy::all)]
#![allow(deref_nullptr)]
#![allow(non_camel_case_types)]
#![allow(non_snake_case)]
#![allow(non_upper_case_globals)]
// Upstream also allows `unaligned_references` (rust-bindgen#1651); that lint is gone from rustc (now a
// hard error, which the generated code never triggers), so this copy drops it.

include!(concat!(env!("OUT_DIR"), "/v4l2_bindings.rs"));
