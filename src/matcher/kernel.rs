//! The matcher's integer kernel: `Σ a[i]·b[i]` for int8 stored rows and an int16 query, summed in
//! i32. Explicit SIMD on x86-64 (SSE2, part of the base ISA; AVX2 when the CPU has it) and aarch64
//! (NEON, part of the base ISA); a scalar loop elsewhere (armv7 without NEON), which gives the
//! same integer result. Lengths must be equal multiples of 32 (rows are zero-padded).

pub(crate) type Kernel = fn(&[i8], &[i16]) -> i32;

/// The fastest kernel for this CPU; chosen once per search, not per row.
pub(crate) fn select() -> Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            return x86::dot_avx2;
        }
        x86::dot_sse2
    }
    #[cfg(target_arch = "aarch64")]
    {
        neon::dot
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        scalar
    }
}

/// Every kernel this CPU can run, by name: tests check each against [`scalar`].
#[cfg(test)]
pub(crate) fn available() -> Vec<(&'static str, Kernel)> {
    let mut out: Vec<(&'static str, Kernel)> = vec![("scalar", scalar)];
    #[cfg(target_arch = "x86_64")]
    {
        out.push(("sse2", x86::dot_sse2));
        if std::arch::is_x86_feature_detected!("avx2") {
            out.push(("avx2", x86::dot_avx2));
        }
    }
    #[cfg(target_arch = "aarch64")]
    out.push(("neon", neon::dot));
    out
}

/// The portable fallback; on x86-64 and aarch64 only the tests call it.
#[cfg_attr(any(target_arch = "x86_64", target_arch = "aarch64"), allow(dead_code))]
pub(crate) fn scalar(a: &[i8], b: &[i16]) -> i32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(&x, &y)| x as i32 * y as i32).sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    pub fn dot_sse2(a: &[i8], b: &[i16]) -> i32 {
        assert!(a.len() == b.len() && a.len().is_multiple_of(16));
        // SAFETY: SSE2 is part of the x86-64 base ISA; loads are unaligned and stay inside the
        // slices (checked above: equal lengths, whole 16-element chunks).
        unsafe {
            let mut acc = _mm_setzero_si128();
            for i in (0..a.len()).step_by(16) {
                let v = _mm_loadu_si128(a.as_ptr().add(i) as *const __m128i);
                // Sign-extend int8 to int16: interleave each byte into the high half, shift down.
                let lo = _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
                let hi = _mm_srai_epi16(_mm_unpackhi_epi8(v, v), 8);
                let q0 = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                let q1 = _mm_loadu_si128(b.as_ptr().add(i + 8) as *const __m128i);
                acc = _mm_add_epi32(acc, _mm_madd_epi16(lo, q0));
                acc = _mm_add_epi32(acc, _mm_madd_epi16(hi, q1));
            }
            let s = _mm_add_epi32(acc, _mm_shuffle_epi32(acc, 0b01_00_11_10));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
            _mm_cvtsi128_si32(s)
        }
    }

    pub fn dot_avx2(a: &[i8], b: &[i16]) -> i32 {
        assert!(a.len() == b.len() && a.len().is_multiple_of(16));
        // SAFETY: only selected after `is_x86_feature_detected!("avx2")`; bounds as above.
        unsafe { avx2(a, b) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn avx2(a: &[i8], b: &[i16]) -> i32 {
        unsafe {
            let mut acc = _mm256_setzero_si256();
            for i in (0..a.len()).step_by(16) {
                let v = _mm_loadu_si128(a.as_ptr().add(i) as *const __m128i);
                let wide = _mm256_cvtepi8_epi16(v);
                let q = _mm256_loadu_si256(b.as_ptr().add(i) as *const __m256i);
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(wide, q));
            }
            let s = _mm_add_epi32(
                _mm256_castsi256_si128(acc),
                _mm256_extracti128_si256(acc, 1),
            );
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
            let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
            _mm_cvtsi128_si32(s)
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod neon {
    use std::arch::aarch64::*;

    pub fn dot(a: &[i8], b: &[i16]) -> i32 {
        assert!(a.len() == b.len() && a.len().is_multiple_of(16));
        // SAFETY: NEON is part of the aarch64 base ISA; loads stay inside the slices (checked above).
        unsafe {
            let mut acc0 = vdupq_n_s32(0);
            let mut acc1 = vdupq_n_s32(0);
            for i in (0..a.len()).step_by(16) {
                let v = vld1q_s8(a.as_ptr().add(i));
                let lo = vmovl_s8(vget_low_s8(v));
                let hi = vmovl_high_s8(v);
                let q0 = vld1q_s16(b.as_ptr().add(i));
                let q1 = vld1q_s16(b.as_ptr().add(i + 8));
                acc0 = vmlal_s16(acc0, vget_low_s16(lo), vget_low_s16(q0));
                acc1 = vmlal_high_s16(acc1, lo, q0);
                acc0 = vmlal_s16(acc0, vget_low_s16(hi), vget_low_s16(q1));
                acc1 = vmlal_high_s16(acc1, hi, q1);
            }
            vaddvq_s32(vaddq_s32(acc0, acc1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_matches_exact_integer_arithmetic() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as u32
        };
        for len in [16usize, 32, 128, 512] {
            for round in 0..200 {
                // Extremes included: the accumulator bound must hold at -127 x -32768 too.
                let a: Vec<i8> = (0..len)
                    .map(|i| {
                        if round == 0 {
                            if i % 2 == 0 { -127 } else { 127 }
                        } else {
                            (next() % 255) as i32 as i8
                        }
                    })
                    .map(|x| x.max(-127))
                    .collect();
                let b: Vec<i16> = (0..len)
                    .map(|_| {
                        if round == 0 {
                            i16::MIN + 1
                        } else {
                            (next() % 65536) as u16 as i16
                        }
                    })
                    .collect();
                let want: i64 = a.iter().zip(&b).map(|(x, y)| *x as i64 * *y as i64).sum();
                for (name, kernel) in available() {
                    assert_eq!(
                        kernel(&a, &b) as i64,
                        want,
                        "{name}, len {len}, round {round}"
                    );
                }
            }
        }
    }
}
