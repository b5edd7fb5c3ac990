//! The reader on hostile input: random bytes, mutated valid files, and mutated bodies (decoded
//! directly, as if their signature had passed). No panic, and no allocation larger than a small
//! multiple of the input, however large the length fields claim to be.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use crate::common::watchlist::*;
use lanewatch::watchlist::format::{Body, decode_unverified};
use proptest::prelude::*;

/// Records the largest single allocation made by the current thread while armed.
struct Watch;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: the allocator can run while thread-locals are being torn down.
    let _ = ARMED.try_with(|armed| {
        if armed.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Watch = Watch;

/// Runs `f` and returns the largest single allocation it made.
fn largest_allocation(f: impl FnOnce()) -> usize {
    LARGEST.with(|l| l.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    LARGEST.with(|l| l.get())
}

/// The decoder may build `Vec<Entry>`/`Vec<Vec<f32>>` from what it actually decoded: each element
/// costs at least one input byte, and a vector at most doubles past its contents.
fn allowed(input_len: usize) -> usize {
    64 * 1024 + 256 * input_len
}

fn valid_file() -> Vec<u8> {
    sign(&body(7, 4), &signer())
}

fn valid_body() -> Vec<u8> {
    body(7, 4).encode().unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..32).prop_map(|(i, n)| Mutation::Remove(i, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len().max(1);
    match m {
        Mutation::Flip(i, b) => {
            if let Some(x) = bytes.get_mut(i % n) {
                *x ^= b
            }
        }
        Mutation::Set(i, b) => {
            if let Some(x) = bytes.get_mut(i % n) {
                *x = *b
            }
        }
        Mutation::Truncate(i) => bytes.truncate(i % n),
        Mutation::Insert(i, v) => {
            let at = i % (bytes.len() + 1);
            bytes.splice(at..at, v.iter().copied());
        }
        Mutation::Remove(i, k) => {
            let at = i % n;
            let end = (at + k).min(bytes.len());
            if at < end {
                bytes.drain(at..end);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let v = verifier();
        let mut result = None;
        let big = largest_allocation(|| result = Some(v.verify_at(&bytes, NOW)));
        prop_assert!(result.unwrap().is_err());
        prop_assert!(big <= allowed(bytes.len()), "{big} bytes for {} input", bytes.len());
    }

    #[test]
    fn mutated_files_never_verify(muts in proptest::collection::vec(mutation(), 1..4)) {
        let original = valid_file();
        let mut bytes = original.clone();
        for m in &muts {
            apply(&mut bytes, m);
        }
        let v = verifier();
        let mut result = None;
        let big = largest_allocation(|| {
            result = Some(v.verify_at(&bytes, NOW));
            let _ = decode_unverified(&bytes);
        });
        // Only a mutation that undid itself can pass.
        prop_assert_eq!(result.unwrap().is_ok(), bytes == original);
        prop_assert!(big <= allowed(bytes.len()), "{big} bytes for {} input", bytes.len());
    }

    #[test]
    fn mutated_bodies_decode_or_fail_cleanly(muts in proptest::collection::vec(mutation(), 1..4)) {
        let mut bytes = valid_body();
        for m in &muts {
            apply(&mut bytes, m);
        }
        for version in [1, 2] {
            let mut result = None;
            let big = largest_allocation(|| result = Some(Body::decode(&bytes, version)));
            if let Some(Ok(b)) = result {
                // Whatever decodes also passed validation: it is a usable list.
                prop_assert!(b.validate().is_ok());
            }
            prop_assert!(big <= allowed(bytes.len()), "{big} bytes for {} input", bytes.len());
        }
    }

    #[test]
    fn random_bodies_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let big = largest_allocation(|| {
            let _ = Body::decode(&bytes, 1);
            let _ = Body::decode(&bytes, 2);
        });
        prop_assert!(big <= allowed(bytes.len()), "{big} bytes for {} input", bytes.len());
    }
}

#[test]
fn maximal_length_fields_allocate_nothing_large() {
    // Every varint that postcard reads as a length set to u64::MAX in turn.
    let base = valid_body();
    for at in 0..base.len() {
        let mut bytes = base[..at].to_vec();
        bytes.extend([0xff; 9]);
        bytes.push(0x01);
        bytes.extend_from_slice(&base[at..]);
        let big = largest_allocation(|| {
            let _ = Body::decode(&bytes, 1);
            let _ = Body::decode(&bytes, 2);
        });
        assert!(big <= allowed(bytes.len()), "offset {at}: {big} bytes");
    }
}
