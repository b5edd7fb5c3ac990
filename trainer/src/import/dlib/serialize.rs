//! A strict reader for dlib's serialisation primitives (dlib/serialize.h, dlib/float_details.h,
//! dlib/cuda/tensor.h), over a byte slice already in memory.
//!
//! Every read checks the bytes that remain before it looks at them, so a truncated or hostile file
//! gives a [`DecodeError`] with the byte offset and what was expected, never a panic, and no length
//! field can make us allocate more than the file could hold.
//!
//! Wire formats (as dlib writes them on LP64 Linux, where `long` is 64 bits):
//! - integers: one control byte (low nibble = number of magnitude bytes, 1..=8; bit 0x80 = negative
//!   for signed types; bits 0x70 always zero), then the magnitude, little-endian;
//! - `float`/`double`: `float_details`, i.e. a signed 64-bit mantissa then a signed 16-bit exponent,
//!   both as integers above; value = mantissa * 2^exponent, with exponents 32000/32001/32002 meaning
//!   +inf/-inf/NaN. (dlib's pre-2013 ASCII float format is recognised and refused.)
//! - `bool`: the ASCII byte '0' or '1';
//! - `std::string`, `std::vector<char>`: an unsigned length, then the bytes;
//! - `std::vector<T>`: an unsigned length, then each element;
//! - `matrix<T>`: rows and columns as signed integers (negated by current dlib, positive in the
//!   old format), then the elements row by row;
//! - `resizable_tensor`: int version 2, four signed dims (n, k, nr, nc), then n*k*nr*nc raw
//!   little-endian IEEE f32.

use std::fmt;

/// A decoding failure: where it happened, what was being read, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte offset {offset}: reading {expected}: {problem}")]
pub struct DecodeError {
    pub offset: usize,
    pub expected: String,
    pub problem: String,
}

pub type Result<T> = std::result::Result<T, DecodeError>;

/// Sentinel exponents of dlib's `float_details`.
const EXP_INF: i64 = 32000;
const EXP_NINF: i64 = 32001;
const EXP_NAN: i64 = 32002;

/// Smallest encoding of one integer (control byte + one byte): bounds element counts.
pub const MIN_INT_BYTES: usize = 2;
/// Smallest encoding of one `float_details` (two integers).
pub const MIN_FLOAT_BYTES: usize = 2 * MIN_INT_BYTES;

/// A matrix as dlib stores it: row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<T> {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<T>,
}

/// A `resizable_tensor`: `data.len() == n * k * nr * nc`, laid out n, k, row, column.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub n: usize,
    pub k: usize,
    pub nr: usize,
    pub nc: usize,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// A read position in a dlib-serialised byte buffer.
#[derive(Clone)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl fmt::Debug for Cursor<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cursor {{ offset: {}, len: {} }}",
            self.pos,
            self.buf.len()
        )
    }
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    /// Byte offset of the next read.
    pub fn offset(&self) -> usize {
        self.pos
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    /// An error at the current offset.
    pub fn error(&self, expected: &str, problem: impl Into<String>) -> DecodeError {
        self.error_at(self.pos, expected, problem)
    }

    fn error_at(&self, offset: usize, expected: &str, problem: impl Into<String>) -> DecodeError {
        DecodeError {
            offset,
            expected: expected.to_string(),
            problem: problem.into(),
        }
    }

    /// Fails unless every byte has been consumed.
    pub fn expect_end(&self, what: &str) -> Result<()> {
        if self.is_at_end() {
            Ok(())
        } else {
            Err(self.error(
                what,
                format!(
                    "{} unexpected trailing bytes after the end of the data",
                    self.remaining()
                ),
            ))
        }
    }

    /// Takes `n` raw bytes.
    pub fn bytes(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.error(
                what,
                format!(
                    "the data is truncated: {n} bytes needed, {} left",
                    self.remaining()
                ),
            ));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    pub fn byte(&mut self, what: &str) -> Result<u8> {
        Ok(self.bytes(1, what)?[0])
    }

    /// Control byte and magnitude of a dlib integer with at most `max_bytes` magnitude bytes.
    /// Returns (negative flag, magnitude, offset of the control byte).
    fn int_parts(&mut self, max_bytes: u8, signed: bool, what: &str) -> Result<(bool, u64)> {
        let start = self.pos;
        let control = self.byte(what)?;
        if control & 0x70 != 0 {
            return Err(self.error_at(
                start,
                what,
                format!(
                    "invalid integer control byte 0x{control:02x} (reserved bits 0x70 are set)"
                ),
            ));
        }
        let negative = control & 0x80 != 0;
        if negative && !signed {
            return Err(self.error_at(
                start,
                what,
                format!(
                    "invalid control byte 0x{control:02x}: an unsigned integer cannot be negative"
                ),
            ));
        }
        let size = control & 0x0f;
        if size == 0 || size > max_bytes {
            return Err(self.error_at(
                start,
                what,
                format!(
                    "invalid integer size {size} in control byte 0x{control:02x} (expected 1..={max_bytes})"
                ),
            ));
        }
        let mag = self
            .bytes(usize::from(size), what)?
            .iter()
            .rev()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        Ok((negative, mag))
    }

    /// A signed integer of a C++ type with `max_bytes` bytes, range-checked into `[min, max]`.
    fn signed(&mut self, max_bytes: u8, min: i64, max: i64, what: &str) -> Result<i64> {
        let start = self.pos;
        let (negative, mag) = self.int_parts(max_bytes, true, what)?;
        let value = if negative {
            // -(2^63) cannot be written by dlib (it negates the value first), so refuse it too.
            i64::try_from(mag).ok().map(|m| -m)
        } else {
            i64::try_from(mag).ok()
        };
        match value {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(self.error_at(
                start,
                what,
                format!(
                    "the value {}{mag} does not fit in [{min}, {max}]",
                    if negative { "-" } else { "" }
                ),
            )),
        }
    }

    fn unsigned(&mut self, max_bytes: u8, max: u64, what: &str) -> Result<u64> {
        let start = self.pos;
        let (_, mag) = self.int_parts(max_bytes, false, what)?;
        if mag > max {
            return Err(self.error_at(start, what, format!("the value {mag} exceeds {max}")));
        }
        Ok(mag)
    }

    /// C++ `int` (32 bits).
    pub fn i32(&mut self, what: &str) -> Result<i32> {
        let v = self.signed(4, i32::MIN.into(), i32::MAX.into(), what)?;
        Ok(v as i32)
    }

    /// C++ `unsigned int` (32 bits).
    pub fn u32(&mut self, what: &str) -> Result<u32> {
        let v = self.unsigned(4, u32::MAX.into(), what)?;
        Ok(v as u32)
    }

    /// C++ `long`, `long long`, `int64` (64 bits on the platforms dlib files come from).
    pub fn i64(&mut self, what: &str) -> Result<i64> {
        self.signed(8, i64::MIN + 1, i64::MAX, what)
    }

    /// C++ `unsigned long`, `uint64`, `size_t`.
    pub fn u64(&mut self, what: &str) -> Result<u64> {
        self.unsigned(8, u64::MAX, what)
    }

    /// C++ `int16` (`float_details::exponent`).
    pub fn i16(&mut self, what: &str) -> Result<i16> {
        let v = self.signed(2, i16::MIN.into(), i16::MAX.into(), what)?;
        Ok(v as i16)
    }

    /// A count (an `unsigned long`) of items that each take at least `min_item_bytes` bytes: refused
    /// when the rest of the buffer could not hold that many, before anything is allocated.
    pub fn count(&mut self, min_item_bytes: usize, what: &str) -> Result<usize> {
        let start = self.pos;
        let n = self.u64(what)?;
        let fits = usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_mul(min_item_bytes.max(1)).map(|b| (n, b)))
            .filter(|(_, bytes)| *bytes <= self.remaining());
        match fits {
            Some((n, _)) => Ok(n),
            None => Err(self.error_at(
                start,
                what,
                format!(
                    "a length of {n} items (at least {min_item_bytes} bytes each) is more than the {} bytes left",
                    self.remaining()
                ),
            )),
        }
    }

    /// `bool`: the ASCII byte '0' or '1'.
    pub fn bool(&mut self, what: &str) -> Result<bool> {
        let start = self.pos;
        match self.byte(what)? {
            b'1' => Ok(true),
            b'0' => Ok(false),
            other => Err(self.error_at(
                start,
                what,
                format!("a bool must be the byte '0' or '1', found 0x{other:02x}"),
            )),
        }
    }

    /// The (mantissa, exponent) pair of a `float_details`.
    fn float_details(&mut self, what: &str) -> Result<(i64, i16)> {
        let start = self.pos;
        match self.buf.get(self.pos) {
            None => return Err(self.error(what, "the data is truncated: no bytes left")),
            // An ASCII digit, sign or letter: dlib's pre-2013 text format, which no model we read uses.
            Some(b) if b & 0x70 != 0 => {
                return Err(self.error_at(
                    start,
                    what,
                    format!(
                        "byte 0x{b:02x} starts dlib's old ASCII float format, which is not supported (re-save the file with a current dlib)"
                    ),
                ));
            }
            Some(_) => {}
        }
        let mantissa = self.i64(what)?;
        let exponent = self.i16(what)?;
        Ok((mantissa, exponent))
    }

    /// `float`, as dlib converts `float_details` back: `ldexp((float)mantissa, exponent)`.
    pub fn f32(&mut self, what: &str) -> Result<f32> {
        let (m, e) = self.float_details(what)?;
        Ok(match i64::from(e) {
            EXP_INF => f32::INFINITY,
            EXP_NINF => f32::NEG_INFINITY,
            e if e >= EXP_NAN => f32::NAN,
            // (float)mantissa has at most 24 significant bits, so scaling it in f64 is exact and the
            // final cast is the only rounding, as in ldexpf.
            e => ldexp_f64(f64::from(m as f32), e) as f32,
        })
    }

    /// `double`, as dlib converts `float_details` back: `ldexp((double)mantissa, exponent)`.
    pub fn f64(&mut self, what: &str) -> Result<f64> {
        let (m, e) = self.float_details(what)?;
        Ok(match i64::from(e) {
            EXP_INF => f64::INFINITY,
            EXP_NINF => f64::NEG_INFINITY,
            e if e >= EXP_NAN => f64::NAN,
            e => ldexp_f64(m as f64, e),
        })
    }

    /// A `float` that must be finite (weights, scales).
    pub fn finite_f32(&mut self, what: &str) -> Result<f32> {
        let start = self.pos;
        let v = self.f32(what)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.error_at(start, what, format!("expected a finite number, found {v}")))
        }
    }

    /// A `double` that must be finite.
    pub fn finite_f64(&mut self, what: &str) -> Result<f64> {
        let start = self.pos;
        let v = self.f64(what)?;
        if v.is_finite() {
            Ok(v)
        } else {
            Err(self.error_at(start, what, format!("expected a finite number, found {v}")))
        }
    }

    /// `std::string` / `std::vector<char>` as raw bytes.
    pub fn byte_string(&mut self, what: &str) -> Result<&'a [u8]> {
        let n = self.count(1, what)?;
        self.bytes(n, what)
    }

    /// `std::string` that must be UTF-8 (dlib's layer and version tags are ASCII).
    pub fn string(&mut self, what: &str) -> Result<String> {
        let start = self.pos;
        let raw = self.byte_string(what)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| self.error_at(start, what, "the string is not valid UTF-8"))
    }

    /// A version tag such as `"con_4"`: a string that must equal `expected`.
    pub fn expect_tag(&mut self, expected: &str, what: &str) -> Result<()> {
        let start = self.pos;
        let raw = self.byte_string(what)?;
        if raw == expected.as_bytes() {
            Ok(())
        } else {
            Err(self.error_at(
                start,
                what,
                format!(
                    "expected the tag {expected:?}, found {:?}",
                    String::from_utf8_lossy(raw)
                ),
            ))
        }
    }

    /// `std::vector<T>`: a length, then each element read by `item`, which must consume at
    /// least `min_item_bytes` bytes (used to bound the length before allocating).
    pub fn vec<T>(
        &mut self,
        min_item_bytes: usize,
        what: &str,
        mut item: impl FnMut(&mut Cursor<'a>, usize) -> Result<T>,
    ) -> Result<Vec<T>> {
        let n = self.count(min_item_bytes, what)?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            out.push(item(self, i)?);
        }
        Ok(out)
    }

    /// The dimensions of a `matrix`: rows and columns, negated (current format) or not (old).
    fn matrix_dims(&mut self, min_item_bytes: usize, what: &str) -> Result<(usize, usize)> {
        let start = self.pos;
        let nr = self.i64(what)?;
        let nc = self.i64(what)?;
        let (nr, nc) = if nr <= 0 && nc <= 0 {
            (-nr, -nc)
        } else if nr >= 0 && nc >= 0 {
            (nr, nc)
        } else {
            return Err(self.error_at(
                start,
                what,
                format!("matrix dimensions {nr} x {nc} have mixed signs"),
            ));
        };
        let size = (nr as u64)
            .checked_mul(nc as u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| {
                n.checked_mul(min_item_bytes)
                    .is_some_and(|b| b <= self.remaining())
            });
        match size {
            Some(_) => Ok((nr as usize, nc as usize)),
            None => Err(self.error_at(
                start,
                what,
                format!(
                    "a {nr} x {nc} matrix cannot fit in the {} bytes left",
                    self.remaining()
                ),
            )),
        }
    }

    /// `matrix<float>` (including column vectors `matrix<float,0,1>`).
    pub fn matrix_f32(&mut self, what: &str) -> Result<Matrix<f32>> {
        let (rows, cols) = self.matrix_dims(MIN_FLOAT_BYTES, what)?;
        let mut data = Vec::with_capacity(rows * cols);
        for _ in 0..rows * cols {
            data.push(self.f32(what)?);
        }
        Ok(Matrix { rows, cols, data })
    }

    /// `matrix<double>`.
    pub fn matrix_f64(&mut self, what: &str) -> Result<Matrix<f64>> {
        let (rows, cols) = self.matrix_dims(MIN_FLOAT_BYTES, what)?;
        let mut data = Vec::with_capacity(rows * cols);
        for _ in 0..rows * cols {
            data.push(self.f64(what)?);
        }
        Ok(Matrix { rows, cols, data })
    }

    /// `resizable_tensor` (version 2: raw little-endian f32 data).
    pub fn tensor(&mut self, what: &str) -> Result<Tensor> {
        let start = self.pos;
        let version = self.i32(what)?;
        if version != 2 {
            return Err(self.error_at(
                start,
                what,
                format!("unsupported resizable_tensor version {version} (expected 2)"),
            ));
        }
        let dims_at = self.pos;
        let mut dims = [0usize; 4];
        for (d, name) in dims.iter_mut().zip(["num_samples", "k", "nr", "nc"]) {
            let at = self.pos;
            let v = self.i64(what)?;
            *d = usize::try_from(v).map_err(|_| {
                self.error_at(
                    at,
                    what,
                    format!("tensor dimension {name} is negative ({v})"),
                )
            })?;
        }
        let [n, k, nr, nc] = dims;
        let bytes = dims
            .iter()
            .try_fold(4usize, |acc, d| acc.checked_mul(*d))
            .filter(|b| *b <= self.remaining())
            .ok_or_else(|| {
                self.error_at(
                    dims_at,
                    what,
                    format!(
                        "a {n}x{k}x{nr}x{nc} tensor needs more than the {} bytes left",
                        self.remaining()
                    ),
                )
            })?;
        let data = self
            .bytes(bytes, what)?
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Tensor { n, k, nr, nc, data })
    }
}

impl Cursor<'_> {
    /// `alias_tensor` (version 1): only a shape (n, k, nr, nc), a view into a layer's parameters.
    /// The element count must fit in `usize` (it is compared with a real tensor afterwards).
    pub fn alias_tensor(&mut self, what: &str) -> Result<[usize; 4]> {
        let start = self.pos;
        let version = self.i32(what)?;
        if version != 1 {
            return Err(self.error_at(
                start,
                what,
                format!("unsupported alias_tensor version {version} (expected 1)"),
            ));
        }
        let mut dims = [0usize; 4];
        for (d, name) in dims.iter_mut().zip(["num_samples", "k", "nr", "nc"]) {
            let at = self.pos;
            let v = self.i64(what)?;
            *d = usize::try_from(v).map_err(|_| {
                self.error_at(
                    at,
                    what,
                    format!("alias_tensor dimension {name} is negative ({v})"),
                )
            })?;
        }
        if dims
            .iter()
            .try_fold(1usize, |acc, d| acc.checked_mul(*d))
            .is_none()
        {
            return Err(self.error_at(
                start,
                what,
                format!("alias_tensor shape {dims:?} overflows"),
            ));
        }
        Ok(dims)
    }
}

/// `x * 2^e` with a single rounding, for any `e` (C's `ldexp`).
fn ldexp_f64(x: f64, e: i64) -> f64 {
    // 2^e as an f64, for e in the normal range.
    let pow2 = |e: i64| f64::from_bits(((e + 1023) as u64) << 52);
    if x == 0.0 || !x.is_finite() {
        x
    } else if e > 1023 {
        // |x| >= 1 for every mantissa we pass (an integer), so this overflows.
        x * pow2(1023) * pow2((e - 1023).min(1023))
    } else if e >= -1022 {
        x * pow2(e)
    } else if e >= -1022 - 64 {
        // Scale down exactly first (|x| < 2^64 keeps x*2^-64 normal), then round once.
        x * pow2(-64) * pow2(e + 64)
    } else {
        // |x| < 2^64, so |x * 2^e| < 2^-1086: rounds to zero.
        0.0f64.copysign(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dlib's `pack_int` for signed values.
    fn pack_i64(v: i64) -> Vec<u8> {
        let neg = v < 0;
        let mut m = v.unsigned_abs();
        let mut bytes = vec![];
        loop {
            bytes.push((m & 0xff) as u8);
            m >>= 8;
            if m == 0 {
                break;
            }
        }
        let mut out = vec![bytes.len() as u8 | if neg { 0x80 } else { 0 }];
        out.extend(bytes);
        out
    }

    /// dlib's `float_details` conversion from a float, then serialisation.
    fn pack_f32(v: f32) -> Vec<u8> {
        let (m, e): (i64, i64) = if v == f32::INFINITY {
            (0, EXP_INF)
        } else if v == f32::NEG_INFINITY {
            (0, EXP_NINF)
        } else if v.is_nan() {
            (0, EXP_NAN)
        } else if v == 0.0 {
            (0, 0)
        } else {
            // frexp: v = f * 2^exp with 0.5 <= |f| < 1; mantissa = f * 2^24.
            let mut exp = 0i64;
            let mut f = f64::from(v);
            while f.abs() >= 1.0 {
                f /= 2.0;
                exp += 1;
            }
            while f.abs() < 0.5 {
                f *= 2.0;
                exp -= 1;
            }
            let mut m = (f * (1u64 << 24) as f64) as i64;
            let mut e = exp - 24;
            for _ in 0..8 {
                if m & 0xff != 0 {
                    break;
                }
                m >>= 8;
                e += 8;
            }
            (m, e)
        };
        let mut out = pack_i64(m);
        out.extend(pack_i64(e));
        out
    }

    fn pack_str(s: &[u8]) -> Vec<u8> {
        let mut out = pack_i64(s.len() as i64);
        out.extend_from_slice(s);
        out
    }

    #[test]
    fn integers_round_trip_dlib_encoding() {
        for v in [
            0i64,
            1,
            -1,
            127,
            128,
            255,
            256,
            -65535,
            1 << 40,
            i64::MAX,
            i64::MIN + 1,
        ] {
            let bytes = pack_i64(v);
            let mut c = Cursor::new(&bytes);
            assert_eq!(c.i64("v").unwrap(), v);
            assert!(c.is_at_end());
        }
        // Known bytes from the head of dlib_face_recognition_resnet_model_v1.dat: version 1.
        assert_eq!(Cursor::new(&[0x01, 0x01]).i32("version").unwrap(), 1);
        assert_eq!(Cursor::new(&[0x81, 0x05]).i32("v").unwrap(), -5);
        assert_eq!(Cursor::new(&[0x02, 0x34, 0x12]).u32("v").unwrap(), 0x1234);
    }

    #[test]
    fn integers_are_range_and_format_checked() {
        // 5 bytes into a 32-bit int.
        let e = Cursor::new(&[0x05, 1, 2, 3, 4, 5])
            .i32("num_filters")
            .unwrap_err();
        assert_eq!(e.offset, 0);
        assert!(e.problem.contains("size 5"), "{e}");
        assert!(e.to_string().contains("num_filters"), "{e}");
        // 2^31 does not fit an int.
        assert!(Cursor::new(&[0x04, 0, 0, 0, 0x80]).i32("v").is_err());
        // Size 0 and reserved bits.
        assert!(Cursor::new(&[0x00]).i64("v").is_err());
        assert!(Cursor::new(&[0x11, 0]).i64("v").is_err());
        // Negative unsigned.
        assert!(Cursor::new(&[0x81, 1]).u64("v").is_err());
        // -(2^63).
        assert!(
            Cursor::new(&[0x88, 0, 0, 0, 0, 0, 0, 0, 0x80])
                .i64("v")
                .is_err()
        );
    }

    #[test]
    fn truncation_names_the_offset() {
        let mut c = Cursor::new(&[0x01, 0x01, 0x04, 0xaa]);
        c.i64("a").unwrap();
        let e = c.i64("b").unwrap_err();
        assert!(e.problem.contains("truncated"), "{e}");
        assert_eq!(e.expected, "b");
        assert!(
            Cursor::new(&[])
                .f32("x")
                .unwrap_err()
                .problem
                .contains("truncated")
        );
    }

    #[test]
    fn floats_round_trip_dlib_encoding() {
        let values = [
            0.0f32,
            1.0,
            -1.0,
            0.5,
            122.782,
            -3.1e-7,
            1.0e30,
            f32::MIN_POSITIVE,
            f32::MIN_POSITIVE / 8.0, // subnormal
            f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
        ];
        for v in values {
            let bytes = pack_f32(v);
            assert_eq!(Cursor::new(&bytes).f32("v").unwrap(), v, "{v}");
            assert_eq!(Cursor::new(&bytes).f64("v").unwrap(), f64::from(v), "{v}");
        }
        assert!(Cursor::new(&pack_f32(f32::NAN)).f32("v").unwrap().is_nan());
        assert!(Cursor::new(&pack_f32(f32::NAN)).finite_f32("w").is_err());
        assert!(
            Cursor::new(&pack_f32(f32::INFINITY))
                .finite_f64("w")
                .is_err()
        );
        // Bytes seen in the .dat: 03 0a d7 a3 | 81 1c  = 0xa3d70a * 2^-28 = 0.04 (as f32).
        let v = Cursor::new(&[0x03, 0x0a, 0xd7, 0xa3, 0x81, 0x1c])
            .f32("margin")
            .unwrap();
        assert_eq!(v, 0xa3d70a as f32 / (1u64 << 28) as f32);
        assert!((v - 0.04).abs() < 1e-8);
    }

    #[test]
    fn extreme_exponents_do_not_panic() {
        for e in [
            i16::MIN,
            -1200,
            -1100,
            -1075,
            -1074,
            -150,
            0,
            127,
            128,
            1023,
            1024,
            31999,
        ] {
            let mut bytes = pack_i64(0x7fff_ffff_ffff);
            bytes.extend(pack_i64(e.into()));
            let a = Cursor::new(&bytes).f32("v").unwrap();
            let b = Cursor::new(&bytes).f64("v").unwrap();
            assert!(!a.is_nan() && !b.is_nan(), "{e}: {a} {b}");
            assert!(a >= 0.0 && b >= 0.0, "{e}: {a} {b}");
        }
        // Exactly representable halves of the smallest subnormal.
        let mut bytes = pack_i64(3);
        bytes.extend(pack_i64(-1075));
        assert_eq!(
            Cursor::new(&bytes).f64("v").unwrap(),
            2.0 * f64::from_bits(1)
        );
    }

    #[test]
    fn old_ascii_floats_are_refused() {
        let e = Cursor::new(b"1.5 ").f32("x").unwrap_err();
        assert!(e.problem.contains("ASCII"), "{e}");
    }

    #[test]
    fn strings_and_tags() {
        let bytes = pack_str(b"con_4");
        assert_eq!(Cursor::new(&bytes).string("tag").unwrap(), "con_4");
        Cursor::new(&bytes).expect_tag("con_4", "tag").unwrap();
        let e = Cursor::new(&bytes).expect_tag("fc_2", "tag").unwrap_err();
        assert!(
            e.problem.contains("\"fc_2\"") && e.problem.contains("\"con_4\""),
            "{e}"
        );
        // A huge length is refused before allocating.
        let mut huge = pack_i64(1 << 60);
        huge.extend_from_slice(b"abc");
        let e = Cursor::new(&huge).string("name").unwrap_err();
        assert!(e.problem.contains("bytes left"), "{e}");
        assert!(Cursor::new(&pack_str(&[0xff, 0xfe])).string("s").is_err());
    }

    #[test]
    fn bools() {
        assert!(Cursor::new(b"1").bool("b").unwrap());
        assert!(!Cursor::new(b"0").bool("b").unwrap());
        assert!(Cursor::new(&[1]).bool("b").is_err());
    }

    #[test]
    fn vectors_bound_their_length() {
        let mut bytes = pack_i64(3);
        for v in [1.5f32, -2.0, 0.25] {
            bytes.extend(pack_f32(v));
        }
        let v = Cursor::new(&bytes)
            .vec(MIN_FLOAT_BYTES, "v", |c, _| c.f32("item"))
            .unwrap();
        assert_eq!(v, [1.5, -2.0, 0.25]);
        // Claims 1000 floats but holds 3.
        let mut lying = pack_i64(1000);
        lying.extend_from_slice(&bytes[2..]);
        assert!(
            Cursor::new(&lying)
                .vec(MIN_FLOAT_BYTES, "v", |c, _| c.f32("item"))
                .is_err()
        );
    }

    #[test]
    fn matrices_both_formats() {
        for (nr, nc) in [(-2i64, -3i64), (2, 3)] {
            let mut bytes = pack_i64(nr);
            bytes.extend(pack_i64(nc));
            for i in 0..6 {
                bytes.extend(pack_f32(i as f32));
            }
            let m = Cursor::new(&bytes).matrix_f32("m").unwrap();
            assert_eq!((m.rows, m.cols), (2, 3));
            assert_eq!(m.data, [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
            let m = Cursor::new(&bytes).matrix_f64("m").unwrap();
            assert_eq!(m.data[5], 5.0);
        }
        let mut mixed = pack_i64(-2);
        mixed.extend(pack_i64(3));
        assert!(Cursor::new(&mixed).matrix_f32("m").is_err());
        let mut huge = pack_i64(-(1 << 40));
        huge.extend(pack_i64(-(1 << 40)));
        let e = Cursor::new(&huge).matrix_f32("m").unwrap_err();
        assert!(e.problem.contains("cannot fit"), "{e}");
    }

    #[test]
    fn tensors() {
        let mut bytes = pack_i64(2);
        for d in [1, 2, 1, 2] {
            bytes.extend(pack_i64(d));
        }
        for v in [1.0f32, -2.0, 3.5, 0.0] {
            bytes.extend(v.to_le_bytes());
        }
        let t = Cursor::new(&bytes).tensor("t").unwrap();
        assert_eq!((t.n, t.k, t.nr, t.nc), (1, 2, 1, 2));
        assert_eq!(t.data, [1.0, -2.0, 3.5, 0.0]);
        // Truncated data.
        assert!(Cursor::new(&bytes[..bytes.len() - 1]).tensor("t").is_err());
        // Wrong version.
        let mut v3 = bytes.clone();
        v3[1] = 3;
        assert!(
            Cursor::new(&v3)
                .tensor("t")
                .unwrap_err()
                .problem
                .contains("version 3")
        );
        // Negative and overflowing dims.
        let mut neg = pack_i64(2);
        for d in [1, -2, 1, 2] {
            neg.extend(pack_i64(d));
        }
        assert!(Cursor::new(&neg).tensor("t").is_err());
        let mut big = pack_i64(2);
        for d in [1 << 40, 1 << 40, 1 << 40, 1] {
            big.extend(pack_i64(d));
        }
        assert!(Cursor::new(&big).tensor("t").is_err());
    }

    #[test]
    fn alias_tensors() {
        let mut bytes = pack_i64(1);
        for d in [32, 3, 7, 7] {
            bytes.extend(pack_i64(d));
        }
        assert_eq!(
            Cursor::new(&bytes).alias_tensor("filters").unwrap(),
            [32, 3, 7, 7]
        );
        let mut bad = bytes.clone();
        bad[1] = 2;
        assert!(Cursor::new(&bad).alias_tensor("filters").is_err());
        let mut huge = pack_i64(1);
        for d in [1i64 << 40, 1 << 40, 1, 1] {
            huge.extend(pack_i64(d));
        }
        assert!(
            Cursor::new(&huge)
                .alias_tensor("w")
                .unwrap_err()
                .problem
                .contains("overflows")
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A cheap deterministic fuzz: every reader over many pseudo-random buffers.
        let mut state = 0x1234_5678_9abc_def0u64;
        for len in 0..400 {
            let buf: Vec<u8> = (0..len % 64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 24) as u8
                })
                .collect();
            let _ = Cursor::new(&buf).i32("x");
            let _ = Cursor::new(&buf).u64("x");
            let _ = Cursor::new(&buf).f32("x");
            let _ = Cursor::new(&buf).f64("x");
            let _ = Cursor::new(&buf).string("x");
            let _ = Cursor::new(&buf).matrix_f32("x");
            let _ = Cursor::new(&buf).tensor("x");
            let _ = Cursor::new(&buf).alias_tensor("x");
            let _ = Cursor::new(&buf).vec(1, "x", |c, _| c.byte("b"));
        }
    }
}
