//! The watchlist file, byte for byte (see `docs/watchlist-format.md`).
//!
//! ```text
//! offset  size  field
//! 0       8     magic  b"LWLIST\r\n"
//! 8       2     format version, u16 little-endian (1; 2 when the body says how its
//!               embeddings were made, see `Views`; 3 when it also names its decision mode,
//!               see `DecisionMode`)
//! 10      8     key id: first 8 bytes of sha256(ed25519 public key)
//! 18      4     body length N, u32 little-endian
//! 22      N     body: postcard encoding of `Body`
//! 22+N    64    ed25519 signature over bytes 0..22+N
//! ```
//! The envelope sits outside postcard because postcard is not self-describing: the version and
//! length must be readable before any body is decoded, and the signature must be checked first.
//! Every count and length in the body is capped while decoding, and the decoded entries' memory is
//! counted against a budget of [`MEMORY_PER_BODY_BYTE`] bytes per body byte (plus
//! [`MEMORY_SLACK`]), so a hostile file cannot make the reader allocate more than a small multiple
//! of its own size.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::error::Rejection;
use super::keys::KeyId;
use crate::vision::contract::Metric;
use crate::vision::faces::Augmentation;
use crate::vision::model::Fingerprint;

pub const MAGIC: [u8; 8] = *b"LWLIST\r\n";
/// The newest version this build reads and writes; it reads every version from 1 up.
pub const FORMAT_VERSION: u16 = 3;
pub const HEADER_LEN: usize = 22;
pub const SIGNATURE_LEN: usize = 64;

/// Caps, also in the format document. Generous for a national list, small for a box's memory.
pub const MAX_BODY_LEN: u32 = 256 * 1024 * 1024;
pub const MAX_FILE_LEN: u64 = HEADER_LEN as u64 + MAX_BODY_LEN as u64 + SIGNATURE_LEN as u64;
pub const MAX_ENTRIES: usize = 1_000_000;
pub const MAX_EMBEDDINGS_PER_ENTRY: usize = 32;
pub const MAX_PHOTOS_PER_ENTRY: usize = 32;
pub const MAX_DIM: usize = 4096;
pub const MAX_TEXT_LEN: usize = 256;
/// Largest sequence number: 2^53, exact in a double (JSON), far beyond any real count of issues,
/// and far enough below `u64::MAX` that one list cannot lock every later one out as a rollback.
pub const MAX_SEQUENCE: u64 = 1 << 53;
/// Decoded entries may use this many bytes of memory per byte of body, plus [`MEMORY_SLACK`]:
/// a real list (128 floats per embedding) needs about 1.5; a million tiny entries would need 20.
pub const MEMORY_PER_BODY_BYTE: usize = 8;
pub const MEMORY_SLACK: usize = 4 << 20;

/// The fixed-size part before the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub key_id: KeyId,
    pub body_len: u32,
}

/// A structurally complete file, signature not yet checked.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub header: Header,
    /// Bytes 0..22+N: what the signature covers.
    pub signed: &'a [u8],
    pub body: &'a [u8],
    pub signature: [u8; SIGNATURE_LEN],
}

impl<'a> Envelope<'a> {
    /// Checks magic, version and exact length. Reads no body byte.
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>, Rejection> {
        let have = bytes.len() as u64;
        if bytes.len() < MAGIC.len() {
            // Too short to hold a magic: say "not ours" only if what is there disagrees.
            return Err(if MAGIC.starts_with(bytes) {
                Rejection::Truncated {
                    need: HEADER_LEN as u64,
                    have,
                }
            } else {
                Rejection::BadMagic
            });
        }
        if bytes[..8] != MAGIC {
            return Err(Rejection::BadMagic);
        }
        if bytes.len() < HEADER_LEN {
            return Err(Rejection::Truncated {
                need: HEADER_LEN as u64,
                have,
            });
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(Rejection::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bytes[10..18]);
        let body_len = u32::from_le_bytes([bytes[18], bytes[19], bytes[20], bytes[21]]);
        if body_len > MAX_BODY_LEN {
            return Err(Rejection::TooLarge {
                size: HEADER_LEN as u64 + body_len as u64 + SIGNATURE_LEN as u64,
                max: MAX_FILE_LEN,
            });
        }
        let need = HEADER_LEN as u64 + body_len as u64 + SIGNATURE_LEN as u64;
        if have < need {
            return Err(Rejection::Truncated { need, have });
        }
        if have > need {
            return Err(Rejection::TrailingBytes { extra: have - need });
        }
        let body_end = HEADER_LEN + body_len as usize;
        let mut signature = [0u8; SIGNATURE_LEN];
        signature.copy_from_slice(&bytes[body_end..]);
        Ok(Envelope {
            header: Header {
                version,
                key_id: KeyId(key_id),
                body_len,
            },
            signed: &bytes[..body_end],
            body: &bytes[HEADER_LEN..body_end],
            signature,
        })
    }
}

/// Envelope and body of a file whose signature is NOT checked: for `inspect` and `diff` on a
/// technician's machine, and for reading the sequence of the box's own installed file.
pub fn decode_unverified(bytes: &[u8]) -> Result<(Header, Body), Rejection> {
    let envelope = Envelope::parse(bytes)?;
    let body = Body::decode(envelope.body, envelope.header.version)?;
    Ok((envelope.header, body))
}

/// Writes the header for a body of format `version` and `body_len` bytes signed by `key_id`.
pub fn encode_header(key_id: KeyId, version: u16, body_len: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..10].copy_from_slice(&version.to_le_bytes());
    h[10..18].copy_from_slice(&key_id.0);
    h[18..22].copy_from_slice(&body_len.to_le_bytes());
    h
}

/// How alarming a match is; the alert sinks route on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision rule the issuer chose: a match needs `distance <= max_distance` and the
/// second-best identity at least `min_margin` further away.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thresholds {
    pub max_distance: f32,
    pub min_margin: f32,
}

impl Thresholds {
    /// The issuer's rule applied to a search result: close enough, and clearly closer than anyone
    /// else on the list.
    pub fn accepts(&self, m: &crate::matcher::Match) -> bool {
        self.accepts_distance(m.distance, m.margin)
    }

    /// The same rule on a track's recorded scores.
    pub fn accepts_scores(&self, s: &crate::passage::episode::Scores) -> bool {
        self.accepts_distance(s.distance, s.margin)
    }

    fn accepts_distance(&self, distance: f32, margin: f32) -> bool {
        distance <= self.max_distance && margin >= self.min_margin
    }
}

/// What the list's threshold was calibrated for, and so how a lane must decide with it: a
/// threshold that keeps 1% of strangers' *searches* below it alerts on several percent of strangers
/// when each passer is searched once per frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")] // names in JSON (threshold tables); postcard writes the index
pub enum DecisionMode {
    /// Every face decided on its own (format versions 1 and 2 imply it); still one alert per
    /// passage on lanes that track.
    #[default]
    Frame,
    /// One decision per tracked passer on the quality-weighted mean of their faces' descriptors
    /// (src/passage); the threshold keeps the false-alert rate per passer.
    Passage,
}

impl DecisionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionMode::Frame => "frame",
            DecisionMode::Passage => "passage",
        }
    }

    /// What the mode means, for `watchlist inspect` and a lane's log.
    pub fn meaning(self) -> &'static str {
        match self {
            DecisionMode::Frame => "every face decided on its own; threshold calibrated per search",
            DecisionMode::Passage => {
                "one decision per passer on the fused descriptor of their tracked faces; threshold calibrated per passer"
            }
        }
    }
}

/// How every embedding in a list was made from a face chip. A box describes live faces the same
/// way, because a descriptor made one way drifts from one made another (models/README.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")] // names in JSON (threshold tables); postcard writes the index
pub enum Views {
    /// The chip, embedded once: format version 1 implies it.
    #[default]
    Chip,
    /// The mean of the chip's and its left-right mirror image's descriptors: finds more listed
    /// people at the same false-alert rate, for twice the embedding work per face.
    ChipAndMirror,
}

impl Views {
    /// `ChipAndMirror` when `mirror` (a command's `--mirror`), else `Chip`.
    pub fn with_mirror(mirror: bool) -> Views {
        if mirror {
            Views::ChipAndMirror
        } else {
            Views::Chip
        }
    }

    /// What the views mean, for people reading `watchlist inspect` or a lane's log.
    pub fn meaning(self) -> &'static str {
        match self {
            Views::Chip => "each face embedded once",
            Views::ChipAndMirror => {
                "each face described by the mean of its chip and its mirror image, on the lanes too (2 embeddings per face)"
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Views::Chip => "chip",
            Views::ChipAndMirror => "chip-and-mirror",
        }
    }

    /// The analyser setting that makes descriptors this way.
    pub fn augmentation(self) -> Augmentation {
        Augmentation {
            jitter: 0,
            mirror: self == Views::ChipAndMirror,
        }
    }
}

/// One watchlisted person.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Stable across issues of the list (diffs and alerts refer to it).
    #[serde(deserialize_with = "bounded_id")]
    pub id: String,
    #[serde(deserialize_with = "bounded_name")]
    pub display_name: String,
    #[serde(deserialize_with = "bounded_list")]
    pub list: String,
    pub severity: Severity,
    #[serde(deserialize_with = "bounded_embeddings")]
    pub embeddings: Vec<Vec<f32>>,
    /// sha256 of each source photo, so an audit can tie an entry to its evidence.
    #[serde(deserialize_with = "bounded_photos")]
    pub photo_sha256: Vec<[u8; 32]>,
}

/// The signed content. Field order is the wire order: never reorder, only add in a new version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    /// Strictly increasing per issuer: a box refuses a sequence not above its installed one.
    pub sequence: u64,
    /// Unix seconds, UTC.
    pub created_at: u64,
    pub expires_at: u64,
    /// sha256 of the embedder ONNX file that produced every embedding below.
    pub embedder: Fingerprint,
    pub dim: u32,
    pub metric: Metric,
    pub thresholds: Thresholds,
    #[serde(deserialize_with = "bounded_entries")]
    pub entries: Vec<Entry>,
    /// Version 2 and later, after the entries; version 1 bodies are [`Views::Chip`].
    #[serde(skip)]
    pub views: Views,
    /// Version 3 and later, after the views; older bodies are [`DecisionMode::Frame`].
    #[serde(skip)]
    pub decision: DecisionMode,
}

impl Body {
    /// The format version this body is written in: the oldest that can say what it holds, so
    /// boxes that read only version 1 keep taking plain lists.
    pub fn version(&self) -> u16 {
        match (self.decision, self.views) {
            (DecisionMode::Passage, _) => 3,
            (DecisionMode::Frame, Views::ChipAndMirror) => 2,
            (DecisionMode::Frame, Views::Chip) => 1,
        }
    }

    /// Decodes a body of format `version`, rejecting bytes left over after it (postcard would
    /// silently ignore them).
    pub fn decode(bytes: &[u8], version: u16) -> Result<Body, Rejection> {
        let budget = bytes
            .len()
            .saturating_mul(MEMORY_PER_BODY_BYTE)
            .saturating_add(MEMORY_SLACK);
        let _decoding = Decoding::start(budget);
        // A cap's own message (which count, over which cap) instead of postcard's generic one.
        let malformed = |e: postcard::Error| {
            Rejection::Malformed(Decoding::why().unwrap_or_else(|| format!("postcard: {e}")))
        };
        let (mut body, mut rest) = postcard::take_from_bytes::<Body>(bytes).map_err(malformed)?;
        if version >= 2 {
            let (views, after) = postcard::take_from_bytes::<Views>(rest).map_err(malformed)?;
            body.views = views;
            rest = after;
        }
        if version >= 3 {
            let (decision, after) =
                postcard::take_from_bytes::<DecisionMode>(rest).map_err(malformed)?;
            body.decision = decision;
            rest = after;
        }
        if !rest.is_empty() {
            return Err(Rejection::Malformed(format!(
                "{} bytes left over after the body",
                rest.len()
            )));
        }
        body.validate()?;
        Ok(body)
    }

    /// Encodes the body in format [`Self::version`].
    pub fn encode(&self) -> Result<Vec<u8>, Rejection> {
        self.validate()?;
        let malformed = |e: postcard::Error| Rejection::Malformed(format!("postcard: {e}"));
        let mut bytes = postcard::to_stdvec(self).map_err(malformed)?;
        if self.version() >= 2 {
            bytes.extend(postcard::to_stdvec(&self.views).map_err(malformed)?);
        }
        if self.version() >= 3 {
            bytes.extend(postcard::to_stdvec(&self.decision).map_err(malformed)?);
        }
        if bytes.len() > MAX_BODY_LEN as usize {
            return Err(Rejection::TooLarge {
                size: bytes.len() as u64,
                max: MAX_BODY_LEN as u64,
            });
        }
        Ok(bytes)
    }

    /// Rules the types cannot express. Writer and reader both apply them.
    pub fn validate(&self) -> Result<(), Rejection> {
        let bad = |why: String| Err(Rejection::Malformed(why));
        if self.sequence > MAX_SEQUENCE {
            return bad(format!(
                "sequence {} is over the limit of {MAX_SEQUENCE} (2^53)",
                self.sequence
            ));
        }
        let dim = self.dim as usize;
        if !(1..=MAX_DIM).contains(&dim) {
            return bad(format!("embedding dimension {dim} is not in 1..={MAX_DIM}"));
        }
        if self.expires_at <= self.created_at {
            return bad(format!(
                "it expires ({}) no later than it was created ({})",
                self.expires_at, self.created_at
            ));
        }
        let t = self.thresholds;
        if !(t.max_distance.is_finite() && t.max_distance > 0.0) {
            return bad(format!(
                "match distance threshold {} is not a finite positive number",
                t.max_distance
            ));
        }
        if !(t.min_margin.is_finite() && t.min_margin >= 0.0) {
            return bad(format!(
                "margin {} is not a finite non-negative number",
                t.min_margin
            ));
        }
        if self.entries.len() > MAX_ENTRIES {
            return bad(format!("more than {MAX_ENTRIES} entries"));
        }
        let mut ids: Vec<&str> = Vec::with_capacity(self.entries.len());
        for (i, e) in self.entries.iter().enumerate() {
            let at = |what: String| format!("entry {i} ({:?}): {what}", e.id);
            for (name, text) in [
                ("id", &e.id),
                ("display name", &e.display_name),
                ("list", &e.list),
            ] {
                if text.len() > MAX_TEXT_LEN {
                    return bad(at(format!("{name} is longer than {MAX_TEXT_LEN} bytes")));
                }
            }
            if e.id.is_empty() {
                return bad(at("empty id".into()));
            }
            if e.embeddings.is_empty() || e.embeddings.len() > MAX_EMBEDDINGS_PER_ENTRY {
                return bad(at(format!(
                    "{} embeddings, expected 1..={MAX_EMBEDDINGS_PER_ENTRY}",
                    e.embeddings.len()
                )));
            }
            if e.photo_sha256.len() > MAX_PHOTOS_PER_ENTRY {
                return bad(at(format!("more than {MAX_PHOTOS_PER_ENTRY} photo hashes")));
            }
            for (j, v) in e.embeddings.iter().enumerate() {
                if v.len() != dim {
                    return bad(at(format!(
                        "embedding {j} has {} values, the list's dimension is {dim}",
                        v.len()
                    )));
                }
                if !v.iter().all(|x| x.is_finite()) {
                    return bad(at(format!("embedding {j} holds a NaN or infinity")));
                }
                if self.metric == Metric::Cosine && v.iter().all(|x| *x == 0.0) {
                    return bad(at(format!(
                        "embedding {j} is all zeros, which has no cosine distance"
                    )));
                }
            }
            ids.push(&e.id);
        }
        ids.sort_unstable();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return bad(format!("the id {:?} is used by more than one entry", w[0]));
        }
        Ok(())
    }
}

/// Never preallocate more than this many elements on the word of a length field: vectors grow
/// with the elements actually decoded, each of which consumed input bytes.
const PREALLOC: usize = 64;

/// What the decoder on this thread may still allocate for entries, and why it last stopped.
struct Decoding {
    budget: usize,
    why: Option<String>,
}

thread_local! {
    static DECODING: RefCell<Option<Decoding>> = const { RefCell::new(None) };
}

/// Set while [`Body::decode`] runs; restores "no budget" when dropped.
struct DecodingGuard;

impl Decoding {
    fn start(budget: usize) -> DecodingGuard {
        DECODING.with(|d| *d.borrow_mut() = Some(Decoding { budget, why: None }));
        DecodingGuard
    }

    /// Records why decoding stopped (postcard keeps only "Serde Deserialization Error").
    fn fail<E: de::Error>(why: String) -> E {
        let e = E::custom(&why);
        DECODING.with(|d| {
            if let Some(d) = d.borrow_mut().as_mut() {
                d.why = Some(why);
            }
        });
        e
    }

    fn why() -> Option<String> {
        DECODING.with(|d| d.borrow().as_ref().and_then(|d| d.why.clone()))
    }

    fn budget() -> usize {
        DECODING.with(|d| d.borrow().as_ref().map_or(usize::MAX, |d| d.budget))
    }
}

impl Drop for DecodingGuard {
    fn drop(&mut self) {
        DECODING.with(|d| *d.borrow_mut() = None);
    }
}

/// Heap bytes an entry holds, allocator overhead (16 bytes per allocation) included.
fn entry_heap_bytes(e: &Entry) -> usize {
    const ALLOC: usize = 16;
    3 * ALLOC
        + e.id.capacity()
        + e.display_name.capacity()
        + e.list.capacity()
        + ALLOC
        + e.embeddings.capacity() * std::mem::size_of::<Vec<f32>>()
        + e.embeddings
            .iter()
            .map(|v| ALLOC + v.capacity() * 4)
            .sum::<usize>()
        + ALLOC
        + e.photo_sha256.capacity() * 32
}

struct BoundedSeq<T, const MAX: usize> {
    what: &'static str,
    _t: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for BoundedSeq<T, MAX> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "at most {MAX} {}", self.what)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let over = |n: usize| Decoding::fail(format!("{n} {}, over the cap of {MAX}", self.what));
        let hint = seq.size_hint().unwrap_or(0);
        if hint > MAX {
            return Err(over(hint));
        }
        let mut out = Vec::with_capacity(hint.min(PREALLOC));
        while let Some(item) = seq.next_element()? {
            if out.len() == MAX {
                return Err(over(MAX + 1));
            }
            out.push(item);
        }
        Ok(out)
    }
}

fn bounded_seq<'de, D: Deserializer<'de>, T: Deserialize<'de>, const MAX: usize>(
    d: D,
    what: &'static str,
) -> Result<Vec<T>, D::Error> {
    d.deserialize_seq(BoundedSeq::<T, MAX> {
        what,
        _t: PhantomData,
    })
}

fn bounded_photos<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
    bounded_seq::<D, [u8; 32], MAX_PHOTOS_PER_ENTRY>(d, "photo hashes in one entry")
}

/// The entries, at most [`MAX_ENTRIES`] and within the decoding memory budget.
struct Entries;

impl<'de> Visitor<'de> for Entries {
    type Value = Vec<Entry>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "at most {MAX_ENTRIES} entries")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<Entry>, A::Error> {
        let over = |n: usize| Decoding::fail(format!("{n} entries, over the cap of {MAX_ENTRIES}"));
        let hint = seq.size_hint().unwrap_or(0);
        if hint > MAX_ENTRIES {
            return Err(over(hint));
        }
        let budget = Decoding::budget();
        let mut out: Vec<Entry> = Vec::with_capacity(hint.min(PREALLOC));
        let mut heap = 0usize;
        while let Some(item) = seq.next_element::<Entry>()? {
            if out.len() == MAX_ENTRIES {
                return Err(over(MAX_ENTRIES + 1));
            }
            heap = heap.saturating_add(entry_heap_bytes(&item));
            out.push(item);
            let used = heap.saturating_add(out.capacity() * std::mem::size_of::<Entry>());
            if used > budget {
                return Err(Decoding::fail(format!(
                    "its first {} entries already need {used} bytes of memory, over the limit of {MEMORY_PER_BODY_BYTE} bytes per body byte plus {MEMORY_SLACK} ({budget} bytes); too many tiny entries",
                    out.len()
                )));
            }
        }
        Ok(out)
    }
}

fn bounded_entries<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Entry>, D::Error> {
    d.deserialize_seq(Entries)
}

/// A `Vec<f32>` of at most `MAX_DIM` values.
struct Embedding(Vec<f32>);

impl<'de> Deserialize<'de> for Embedding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Embedding, D::Error> {
        bounded_seq::<D, f32, MAX_DIM>(d, "values in one embedding").map(Embedding)
    }
}

fn bounded_embeddings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<f32>>, D::Error> {
    let v = bounded_seq::<D, Embedding, MAX_EMBEDDINGS_PER_ENTRY>(d, "embeddings in one entry")?;
    Ok(v.into_iter().map(|e| e.0).collect())
}

struct BoundedStr(&'static str);

impl Visitor<'_> for BoundedStr {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a UTF-8 {} of at most {MAX_TEXT_LEN} bytes", self.0)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<String, E> {
        if s.len() > MAX_TEXT_LEN {
            return Err(Decoding::fail(format!(
                "an entry's {} is {} bytes, over the cap of {MAX_TEXT_LEN}",
                self.0,
                s.len()
            )));
        }
        Ok(s.to_string())
    }
}

fn bounded_id<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(BoundedStr("id"))
}

fn bounded_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(BoundedStr("display name"))
}

fn bounded_list<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    d.deserialize_str(BoundedStr("list name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> Body {
        Body {
            sequence: 3,
            created_at: 100,
            expires_at: 200,
            embedder: Fingerprint([9; 32]),
            dim: 2,
            metric: Metric::Euclidean,
            thresholds: Thresholds {
                max_distance: 0.6,
                min_margin: 0.05,
            },
            entries: vec![Entry {
                id: "p-1".into(),
                display_name: "A".into(),
                list: "l".into(),
                severity: Severity::High,
                embeddings: vec![vec![0.5, -0.25]],
                photo_sha256: vec![[1; 32]],
            }],
            views: Views::Chip,
            decision: DecisionMode::Frame,
        }
    }

    #[test]
    fn body_round_trips_and_rejects_leftovers() {
        let b = body();
        assert_eq!(b.version(), 1);
        let mut bytes = b.encode().unwrap();
        assert_eq!(Body::decode(&bytes, 1).unwrap(), b);
        bytes.push(0);
        assert!(
            matches!(Body::decode(&bytes, 1), Err(Rejection::Malformed(m)) if m.contains("left over"))
        );
    }

    #[test]
    fn a_passage_list_is_version_3_with_the_mode_after_the_views() {
        let passage = Body {
            views: Views::ChipAndMirror,
            decision: DecisionMode::Passage,
            ..body()
        };
        assert_eq!(passage.version(), 3);
        let plain_passage = Body {
            decision: DecisionMode::Passage,
            ..body()
        };
        assert_eq!(plain_passage.version(), 3);
        let v1 = body().encode().unwrap();
        let v3 = passage.encode().unwrap();
        assert_eq!(&v3[..v1.len()], &v1[..]);
        assert_eq!(&v3[v1.len()..], &[1, 1]);
        assert_eq!(Body::decode(&v3, 3).unwrap(), passage);
        // A version 3 body must carry the mode, and read as version 2 the mode is left over.
        assert!(matches!(Body::decode(&v3, 2), Err(Rejection::Malformed(_))));
        assert!(matches!(
            Body::decode(&plain_passage.encode().unwrap()[..v1.len() + 1], 3),
            Err(Rejection::Malformed(_))
        ));
        let mut unknown = v1;
        unknown.extend([0, 2]);
        assert!(matches!(
            Body::decode(&unknown, 3),
            Err(Rejection::Malformed(_))
        ));
    }

    #[test]
    fn views_need_version_2_and_only_it_carries_them() {
        let plain = body();
        let mirrored = Body {
            views: Views::ChipAndMirror,
            ..body()
        };
        assert_eq!(mirrored.version(), 2);
        let v1 = plain.encode().unwrap();
        let v2 = mirrored.encode().unwrap();
        // Version 2 is version 1 with the views after the entries.
        assert_eq!(&v2[..v1.len()], &v1[..]);
        assert_eq!(&v2[v1.len()..], &[1]);
        assert_eq!(Body::decode(&v2, 2).unwrap(), mirrored);
        // Read as version 1 the views byte is left over; a version 2 body must carry them.
        assert!(matches!(Body::decode(&v2, 1), Err(Rejection::Malformed(_))));
        assert!(matches!(Body::decode(&v1, 2), Err(Rejection::Malformed(_))));
        // A version 2 body may say Chip; an unknown variant is refused.
        let mut chip_v2 = v1.clone();
        chip_v2.push(0);
        assert_eq!(Body::decode(&chip_v2, 2).unwrap(), plain);
        let mut unknown = v1;
        unknown.push(2);
        assert!(matches!(
            Body::decode(&unknown, 2),
            Err(Rejection::Malformed(_))
        ));
    }

    #[test]
    fn thresholds_need_distance_and_margin() {
        let t = Thresholds {
            max_distance: 0.6,
            min_margin: 0.05,
        };
        let m = |distance: f32, margin: f32| crate::matcher::Match {
            identity: 0,
            distance,
            similarity: 0.9,
            second: None,
            margin,
        };
        assert!(t.accepts(&m(0.5, 0.1)));
        assert!(t.accepts(&m(0.6, f32::INFINITY)));
        assert!(!t.accepts(&m(0.61, 0.1)));
        assert!(!t.accepts(&m(0.5, 0.04)));
    }

    /// The layout documented in docs/watchlist-format.md, byte for byte.
    #[test]
    fn body_layout_matches_the_format_document() {
        let mut b = body();
        b.sequence = 300;
        b.created_at = 1;
        b.expires_at = 2;
        b.dim = 128;
        b.entries[0].embeddings[0] = vec![0.25; 128];
        let bytes = b.encode().unwrap();
        let mut want = vec![0xac, 0x02, 0x01, 0x02];
        want.extend([9u8; 32]);
        want.extend([
            0x80, 0x01, 0x00, 0x9a, 0x99, 0x19, 0x3f, 0xcd, 0xcc, 0x4c, 0x3d,
        ]);
        // One entry: id "p-1", name "A", list "l", severity high (2), one embedding of 128 values.
        want.extend([
            0x01, 0x03, b'p', b'-', b'1', 0x01, b'A', 0x01, b'l', 0x02, 0x01, 0x80, 0x01,
        ]);
        want.extend(std::iter::repeat_n(0.25f32.to_le_bytes(), 128).flatten());
        // One photo hash.
        want.push(0x01);
        want.extend([1u8; 32]);
        assert_eq!(bytes, want);
        // Version 2: the same, then the views (1 = chip-and-mirror).
        b.views = Views::ChipAndMirror;
        want.push(0x01);
        assert_eq!(b.encode().unwrap(), want);
    }

    #[test]
    fn huge_length_fields_fail_without_allocating() {
        // sequence..thresholds of a valid body, then an entry count of u64::MAX as a varint.
        let mut b = body();
        b.entries.clear();
        let mut bytes = postcard::to_stdvec(&b).unwrap();
        bytes.pop();
        bytes.extend([0xff; 9]);
        bytes.push(0x01);
        for version in [1, 2] {
            assert!(matches!(
                Body::decode(&bytes, version),
                Err(Rejection::Malformed(_))
            ));
        }
    }

    #[test]
    fn validation_catches_each_rule() {
        type Mutate = Box<dyn Fn(&mut Body)>;
        let cases: Vec<(&str, Mutate)> = vec![
            ("dimension", Box::new(|b| b.dim = 0)),
            ("expires", Box::new(|b| b.expires_at = b.created_at)),
            (
                "threshold",
                Box::new(|b| b.thresholds.max_distance = f32::NAN),
            ),
            ("margin", Box::new(|b| b.thresholds.min_margin = -1.0)),
            ("empty id", Box::new(|b| b.entries[0].id.clear())),
            ("values", Box::new(|b| b.entries[0].embeddings[0].push(1.0))),
            (
                "NaN",
                Box::new(|b| b.entries[0].embeddings[0][0] = f32::INFINITY),
            ),
            ("embeddings", Box::new(|b| b.entries[0].embeddings.clear())),
            (
                "more than one",
                Box::new(|b| {
                    let e = b.entries[0].clone();
                    b.entries.push(e)
                }),
            ),
            (
                "longer",
                Box::new(|b| b.entries[0].display_name = "x".repeat(MAX_TEXT_LEN + 1)),
            ),
        ];
        for (needle, mutate) in cases {
            let mut b = body();
            mutate(&mut b);
            match b.validate() {
                Err(Rejection::Malformed(m)) => assert!(m.contains(needle), "{needle}: {m}"),
                other => panic!("{needle}: {other:?}"),
            }
        }
    }

    #[test]
    fn envelope_checks_magic_version_and_length() {
        let body = [1u8, 2, 3];
        let mut file = encode_header(KeyId([4; 8]), 1, 3).to_vec();
        file.extend(body);
        file.extend([0u8; SIGNATURE_LEN]);
        let env = Envelope::parse(&file).unwrap();
        assert_eq!(env.body, &body);
        assert_eq!(env.header.key_id, KeyId([4; 8]));

        assert!(matches!(
            Envelope::parse(&file[..file.len() - 1]),
            Err(Rejection::Truncated { .. })
        ));
        assert!(matches!(
            Envelope::parse(&file[..5]),
            Err(Rejection::Truncated { .. })
        ));
        let mut longer = file.clone();
        longer.push(0);
        assert!(matches!(
            Envelope::parse(&longer),
            Err(Rejection::TrailingBytes { extra: 1 })
        ));
        let mut magic = file.clone();
        magic[0] ^= 1;
        assert!(matches!(Envelope::parse(&magic), Err(Rejection::BadMagic)));
        let mut version = file.clone();
        version[8] = 2;
        assert_eq!(Envelope::parse(&version).unwrap().header.version, 2);
        for unsupported in [0, FORMAT_VERSION + 1] {
            version[8..10].copy_from_slice(&unsupported.to_le_bytes());
            assert!(matches!(
                Envelope::parse(&version),
                Err(Rejection::UnsupportedVersion { found, .. }) if found == unsupported
            ));
        }
        let mut huge = file;
        huge[18..22].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Envelope::parse(&huge),
            Err(Rejection::TooLarge { .. })
        ));
    }
}
