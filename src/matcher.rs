//! Exact 1:N search of one face embedding against every watchlisted embedding.
//!
//! Stored vectors are int8 with one scale per vector (`x ≈ code * scale`, `scale = max|x| / 127`);
//! the query is quantised to int16 the same way. Both metrics reduce to one integer dot product
//! per stored vector:
//!
//! * Euclidean (raw descriptors): `d² = |q|² + |b|² - 2 q·b`, with `|q|²` and `|b|²` exact in f32;
//! * Cosine: vectors are L2-normalised first, and `d = 1 - q·b`.
//!
//! The integer dot product is explicit SIMD where the base ISA guarantees it (x86-64 SSE2, AVX2
//! when present, aarch64 NEON) and a scalar loop elsewhere (armv7); all give the same integers
//! (see `kernel`).
//!
//! Error bound (stated for tests and the format doc): with per-component quantisation errors at most
//! `s_b/2` (stored) and `s_q/2` (query), the approximate dot `q̂·b̂` obeys
//! `|q̂·b̂ - q·b| <= B = s_b/2·|q|₁ + s_q/2·|b|₁ + dim·s_b·s_q/4`. Hence the cosine distance is off
//! by at most `B`, and the Euclidean distance `d` by at most `min(sqrt(2B), 2B/d̂)`. For dlib-like
//! 128-d descriptors `B` is about 0.01, so near the 0.6 threshold the bound is about 0.04; measured
//! errors are ten times smaller (`tests/watchlist/watchlist_matcher.rs` prints them).
//! [`Index::distance_error_bound`] evaluates it for a query.

use crate::vision::contract::Metric;

mod kernel;

/// Stored rows are padded with zeros to a multiple of this, so the inner loop has no remainder.
const LANES: usize = 32;

/// Largest int16 query code such that `dim * 127 * qmax` fits an i32 accumulator.
fn query_code_max(dim: usize) -> i32 {
    let limit = (i32::MAX as i64 / (127 * dim.max(1) as i64)).min(i16::MAX as i64);
    limit as i32
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MatchError {
    #[error("an embedding has {got} values, the index holds {want}-dimensional embeddings")]
    WrongDim { got: usize, want: usize },
    #[error("an embedding holds a NaN or infinity")]
    NotFinite,
    #[error("an embedding is all zeros, which has no cosine distance")]
    Zero,
    #[error("an identity needs at least one embedding")]
    NoEmbeddings,
    #[error("the index is full (at most {0} embeddings)")]
    Full(usize),
}

/// The best identity for a query, and how clearly it won.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    /// Index of the identity in insertion order (the watchlist's entry index).
    pub identity: usize,
    /// Distance to that identity's closest embedding (smaller is closer).
    pub distance: f32,
    /// Cosine similarity between the query and that embedding, in [-1, 1].
    pub similarity: f32,
    /// The best *other* identity and its distance; `None` with a single identity.
    pub second: Option<(usize, f32)>,
    /// `second`'s distance minus `distance`; infinite with a single identity.
    pub margin: f32,
}

fn check(v: &[f32], dim: usize, metric: Metric) -> Result<(), MatchError> {
    if v.len() != dim {
        return Err(MatchError::WrongDim {
            got: v.len(),
            want: dim,
        });
    }
    if !v.iter().all(|x| x.is_finite()) {
        return Err(MatchError::NotFinite);
    }
    if metric == Metric::Cosine && v.iter().all(|x| *x == 0.0) {
        return Err(MatchError::Zero);
    }
    Ok(())
}

fn sq_norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum()
}

/// The vector the metric compares: normalised for cosine, as given for Euclidean.
fn prepared(v: &[f32], metric: Metric) -> Vec<f32> {
    match metric {
        Metric::Euclidean => v.to_vec(),
        Metric::Cosine => {
            let n = sq_norm(v).sqrt();
            v.iter().map(|x| x / n).collect()
        }
    }
}

/// `max|x| / code_max`, or 0 for the zero vector (all codes 0).
fn scale_for(v: &[f32], code_max: i32) -> f32 {
    let m = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    m / code_max as f32
}

fn quantise<T: TryFrom<i32>>(v: &[f32], scale: f32, out: &mut [T]) {
    for (o, x) in out.iter_mut().zip(v) {
        let q = if scale > 0.0 {
            (x / scale).round() as i32
        } else {
            0
        };
        // |x / scale| <= code_max by construction, so the conversion cannot fail.
        if let Ok(q) = T::try_from(q) {
            *o = q;
        }
    }
}

/// A quantised query, prepared once and reused across the scan.
struct Query {
    codes: Vec<i16>,
    scale: f32,
    sq_norm: f32,
    l1: f32,
}

/// The quantised 1:N index.
#[derive(Clone)]
pub struct Index {
    dim: usize,
    stride: usize,
    metric: Metric,
    codes: Vec<i8>,
    scales: Vec<f32>,
    sq_norms: Vec<f32>,
    /// Per identity, the range of its rows (rows of one identity are contiguous).
    owners: Vec<std::ops::Range<usize>>,
}

impl Index {
    pub fn new(dim: usize, metric: Metric) -> Index {
        Index {
            dim,
            stride: dim.div_ceil(LANES) * LANES,
            metric,
            codes: Vec::new(),
            scales: Vec::new(),
            sq_norms: Vec::new(),
            owners: Vec::new(),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn identities(&self) -> usize {
        self.owners.len()
    }

    pub fn embeddings(&self) -> usize {
        self.scales.len()
    }

    /// Adds one identity with its embeddings; returns its identity index. All embeddings are
    /// checked before any is added, so a refused identity leaves the index unchanged.
    pub fn push_identity<'a>(
        &mut self,
        embeddings: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<usize, MatchError> {
        let rows: Vec<&[f32]> = embeddings.into_iter().collect();
        if rows.is_empty() {
            return Err(MatchError::NoEmbeddings);
        }
        for r in &rows {
            check(r, self.dim, self.metric)?;
        }
        if self.scales.len() + rows.len() > u32::MAX as usize {
            return Err(MatchError::Full(u32::MAX as usize));
        }
        let start = self.scales.len();
        for r in rows {
            let v = prepared(r, self.metric);
            let scale = scale_for(&v, 127);
            let at = self.codes.len();
            self.codes.resize(at + self.stride, 0);
            quantise(&v, scale, &mut self.codes[at..at + self.dim]);
            self.scales.push(scale);
            self.sq_norms.push(sq_norm(&v));
        }
        self.owners.push(start..self.scales.len());
        Ok(self.owners.len() - 1)
    }

    fn query(&self, q: &[f32]) -> Result<Query, MatchError> {
        check(q, self.dim, self.metric)?;
        let v = prepared(q, self.metric);
        let code_max = query_code_max(self.dim);
        let scale = scale_for(&v, code_max);
        let mut codes = vec![0i16; self.stride];
        quantise(&v, scale, &mut codes[..self.dim]);
        Ok(Query {
            codes,
            scale,
            sq_norm: sq_norm(&v),
            l1: v.iter().map(|x| x.abs()).sum(),
        })
    }

    /// Finds the closest identity. `Ok(None)` when the index is empty.
    pub fn search(&self, query: &[f32]) -> Result<Option<Match>, MatchError> {
        let q = self.query(query)?;
        // Per row, `|b|² - 2 q·b` orders rows like the distance for both metrics.
        let dot_i8_i16 = kernel::select();
        let mut best: Option<(usize, usize, f32)> = None; // (identity, row, key)
        let mut second: Option<(usize, usize, f32)> = None;
        for (identity, rows) in self.owners.iter().enumerate() {
            let mut row_best = (0usize, f32::INFINITY);
            for row in rows.clone() {
                let codes = &self.codes[row * self.stride..(row + 1) * self.stride];
                let dot = dot_i8_i16(codes, &q.codes) as f32 * (self.scales[row] * q.scale);
                let key = self.sq_norms[row] - 2.0 * dot;
                if key < row_best.1 {
                    row_best = (row, key);
                }
            }
            let (row, key) = row_best;
            match best {
                Some((_, _, b)) if key >= b => {
                    if second.is_none_or(|(_, _, s)| key < s) {
                        second = Some((identity, row, key));
                    }
                }
                _ => {
                    second = best;
                    best = Some((identity, row, key));
                }
            }
        }
        let Some((identity, row, key)) = best else {
            return Ok(None);
        };
        let distance = self.key_to_distance(row, key, q.sq_norm);
        let second = second.map(|(i, r, k)| (i, self.key_to_distance(r, k, q.sq_norm)));
        let dot = (self.sq_norms[row] - key) / 2.0;
        let norms = (self.sq_norms[row] * q.sq_norm).sqrt();
        let similarity = if norms > 0.0 {
            (dot / norms).clamp(-1.0, 1.0)
        } else {
            0.0
        };
        Ok(Some(Match {
            identity,
            distance,
            similarity,
            second,
            margin: second.map_or(f32::INFINITY, |(_, d)| d - distance),
        }))
    }

    /// Undoes the ordering key `|b|² - 2 q·b` of `row` into the metric's distance.
    fn key_to_distance(&self, row: usize, key: f32, q_sq_norm: f32) -> f32 {
        match self.metric {
            Metric::Euclidean => (key + q_sq_norm).max(0.0).sqrt(),
            Metric::Cosine => {
                let dot = (self.sq_norms[row] - key) / 2.0;
                (1.0 - dot).clamp(0.0, 2.0)
            }
        }
    }

    /// The largest possible difference between a distance `distance` reported by
    /// [`Index::search`] for this query and the exact f32 distance to the same stored embedding
    /// (see the module doc). For Euclidean, `|d̂² - d²| <= 2B` gives `|d̂ - d| <= 2B / d̂`, tighter
    /// than `sqrt(2B)` except near zero.
    pub fn distance_error_bound(&self, query: &[f32], distance: f32) -> Result<f32, MatchError> {
        let q = self.query(query)?;
        let dim = self.dim as f32;
        let dot_bound = self
            .scales
            .iter()
            .zip(&self.sq_norms)
            .map(|(&s, &n2)| {
                // |b|₁ <= sqrt(dim) |b|₂ avoids storing L1 norms.
                s / 2.0 * q.l1 + q.scale / 2.0 * dim.sqrt() * n2.sqrt() + dim * s * q.scale / 4.0
            })
            .fold(0.0f32, f32::max);
        Ok(match self.metric {
            Metric::Euclidean => {
                let near_zero = (2.0 * dot_bound).sqrt();
                if distance > 0.0 {
                    near_zero.min(2.0 * dot_bound / distance)
                } else {
                    near_zero
                }
            }
            Metric::Cosine => dot_bound,
        })
    }
}

/// The same search over plain f32 vectors: the reference the tests and the bench compare with.
#[derive(Clone)]
pub struct ExactIndex {
    dim: usize,
    metric: Metric,
    rows: Vec<f32>,
    owners: Vec<std::ops::Range<usize>>,
}

impl ExactIndex {
    pub fn new(dim: usize, metric: Metric) -> ExactIndex {
        ExactIndex {
            dim,
            metric,
            rows: Vec::new(),
            owners: Vec::new(),
        }
    }

    pub fn push_identity<'a>(
        &mut self,
        embeddings: impl IntoIterator<Item = &'a [f32]>,
    ) -> Result<usize, MatchError> {
        let rows: Vec<&[f32]> = embeddings.into_iter().collect();
        if rows.is_empty() {
            return Err(MatchError::NoEmbeddings);
        }
        for r in &rows {
            check(r, self.dim, self.metric)?;
        }
        let start = self.rows.len() / self.dim.max(1);
        for r in rows {
            self.rows.extend(prepared(r, self.metric));
        }
        self.owners.push(start..self.rows.len() / self.dim.max(1));
        Ok(self.owners.len() - 1)
    }

    fn distance(&self, q: &[f32], row: usize) -> f32 {
        let b = &self.rows[row * self.dim..(row + 1) * self.dim];
        match self.metric {
            Metric::Euclidean => q
                .iter()
                .zip(b)
                .map(|(x, y)| (x - y) * (x - y))
                .sum::<f32>()
                .sqrt(),
            Metric::Cosine => 1.0 - q.iter().zip(b).map(|(x, y)| x * y).sum::<f32>(),
        }
    }

    /// Exact distance from `query` to the closest embedding of one identity.
    pub fn distance_to_identity(
        &self,
        query: &[f32],
        identity: usize,
    ) -> Result<Option<f32>, MatchError> {
        check(query, self.dim, self.metric)?;
        let q = prepared(query, self.metric);
        Ok(self.owners.get(identity).map(|rows| {
            rows.clone()
                .map(|r| self.distance(&q, r))
                .fold(f32::INFINITY, f32::min)
        }))
    }

    pub fn search(&self, query: &[f32]) -> Result<Option<Match>, MatchError> {
        check(query, self.dim, self.metric)?;
        let q = prepared(query, self.metric);
        let mut per_identity: Vec<(usize, usize, f32)> = Vec::with_capacity(self.owners.len());
        for (identity, rows) in self.owners.iter().enumerate() {
            let (row, d) = rows
                .clone()
                .map(|r| (r, self.distance(&q, r)))
                .fold((0, f32::INFINITY), |a, b| if b.1 < a.1 { b } else { a });
            per_identity.push((identity, row, d));
        }
        let mut best: Option<(usize, usize, f32)> = None;
        let mut second: Option<(usize, f32)> = None;
        for (i, row, d) in per_identity {
            match best {
                Some((_, _, b)) if d >= b => {
                    if second.is_none_or(|(_, s)| d < s) {
                        second = Some((i, d));
                    }
                }
                _ => {
                    second = best.map(|(bi, _, bd)| (bi, bd));
                    best = Some((i, row, d));
                }
            }
        }
        let Some((identity, row, distance)) = best else {
            return Ok(None);
        };
        let b = &self.rows[row * self.dim..(row + 1) * self.dim];
        let dot: f32 = q.iter().zip(b).map(|(x, y)| x * y).sum();
        let norms = (sq_norm(&q) * sq_norm(b)).sqrt();
        Ok(Some(Match {
            identity,
            distance,
            similarity: if norms > 0.0 {
                (dot / norms).clamp(-1.0, 1.0)
            } else {
                0.0
            },
            second,
            margin: second.map_or(f32::INFINITY, |(_, d)| d - distance),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_kernel_is_exact() {
        let a: Vec<i8> = (0..64).map(|i| (i * 37 % 255 - 127) as i8).collect();
        let b: Vec<i16> = (0..64).map(|i| (i * 9001 % 65535 - 32767) as i16).collect();
        let want: i64 = a.iter().zip(&b).map(|(x, y)| *x as i64 * *y as i64).sum();
        assert_eq!(kernel::select()(&a, &b) as i64, want);
    }

    #[test]
    fn accumulator_cannot_overflow_at_max_dim() {
        let dim = crate::watchlist::format::MAX_DIM;
        assert!(dim as i64 * 127 * query_code_max(dim) as i64 <= i32::MAX as i64);
        assert_eq!(query_code_max(128), i16::MAX as i32);
    }

    #[test]
    fn margin_is_to_the_second_identity_not_the_same_persons_second_embedding() {
        let mut idx = Index::new(2, Metric::Euclidean);
        idx.push_identity([[0.0, 0.0].as_slice(), &[0.1, 0.0]])
            .unwrap();
        idx.push_identity([[1.0, 0.0].as_slice()]).unwrap();
        let m = idx.search(&[0.0, 0.0]).unwrap().unwrap();
        assert_eq!(m.identity, 0);
        assert_eq!(m.second.unwrap().0, 1);
        assert!((m.margin - 1.0).abs() < 0.02, "{m:?}");
    }

    #[test]
    fn refuses_bad_vectors_and_leaves_index_unchanged() {
        let mut idx = Index::new(2, Metric::Cosine);
        assert_eq!(
            idx.push_identity([[1.0, 0.0].as_slice(), &[0.0, 0.0]]),
            Err(MatchError::Zero)
        );
        assert_eq!(
            idx.push_identity([[1.0].as_slice()]),
            Err(MatchError::WrongDim { got: 1, want: 2 })
        );
        assert_eq!(
            idx.push_identity([[f32::NAN, 1.0].as_slice()]),
            Err(MatchError::NotFinite)
        );
        assert_eq!(idx.embeddings(), 0);
        assert_eq!(idx.search(&[1.0, 0.0]), Ok(None));
    }
}
