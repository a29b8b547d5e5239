//! `2^x` in `f32`, sixteen at a time, with the bits of glibc's `exp2f`.
//!
//! Every softmax and cross-entropy of a step takes an `exp2` per logit (the paper MLP's 911 x 67
//! of them were the slowest kernel of its step, one scalar libm call each). This computes the
//! same function, a value at a time or in AVX-512 registers, with the same bits as the `exp2f`
//! of glibc 2.28 and later on a CPU with FMA, which computed every result recorded so far: in
//! `f64`, `x = k/32 + r` with `|r| <= 1/64`, `2^(k/32)` from a table of 32 doubles and an
//! exponent shift, `2^r` from a cubic whose coefficients glibc fitted, combined with fused
//! multiply-adds, then rounded to `f32` once. The constants are those glibc uses (facts of its
//! output, read from the library and checked below); no crate offers a vectorised `exp2` with
//! these bits, so it is written here. Every CPU now gives the same bits, whatever its libm.

// The vectorised loop is compiled for AVX-512 behind a run-time check of the CPU.
#![allow(unsafe_code)]

use luminal::op::{InputTensor, Operator};
use luminal::shape::ShapeTracker;
use luminal::tensor::Tensor;

use super::views::vec_of;

/// Adding this to `x` (in `f64`) rounds it to a multiple of 1/32 and leaves `32 x`, as an
/// integer, in the low bits of the sum: `0x1.8p+52 / 32`.
const SHIFT: f64 = f64::from_bits(0x42e8_0000_0000_0000);

/// The cubic `1 + C2 r + C1 r^2 + C0 r^3` for `2^r`, `|r| <= 1/64`.
const C0: f64 = f64::from_bits(0x3fac_6af8_4b91_2394);
const C1: f64 = f64::from_bits(0x3fce_bfce_50fa_c4f3);
const C2: f64 = f64::from_bits(0x3fe6_2e42_ff0c_52d6);

/// `bits(2^(i/32)) - (i << 47)`: adding `k << 47` (with `k = 32 e + i`) gives the bits of
/// `2^(k/32)`, exponent included.
const TABLE: [u64; 32] = {
    let bits: [u64; 32] = [
        0x3ff0000000000000,
        0x3ff059b0d3158574,
        0x3ff0b5586cf9890f,
        0x3ff11301d0125b51,
        0x3ff172b83c7d517b,
        0x3ff1d4873168b9aa,
        0x3ff2387a6e756238,
        0x3ff29e9df51fdee1,
        0x3ff306fe0a31b715,
        0x3ff371a7373aa9cb,
        0x3ff3dea64c123422,
        0x3ff44e086061892d,
        0x3ff4bfdad5362a27,
        0x3ff5342b569d4f82,
        0x3ff5ab07dd485429,
        0x3ff6247eb03a5585,
        0x3ff6a09e667f3bcd,
        0x3ff71f75e8ec5f74,
        0x3ff7a11473eb0187,
        0x3ff82589994cce13,
        0x3ff8ace5422aa0db,
        0x3ff93737b0cdc5e5,
        0x3ff9c49182a3f090,
        0x3ffa5503b23e255d,
        0x3ffae89f995ad3ad,
        0x3ffb7f76f2fb5e47,
        0x3ffc199bdd85529c,
        0x3ffcb720dcef9069,
        0x3ffd5818dcfba487,
        0x3ffdfc97337b9b5f,
        0x3ffea4afa2a490da,
        0x3fff50765b6e4540,
    ];
    let mut table = [0u64; 32];
    let mut i = 0;
    while i < 32 {
        table[i] = bits[i] - ((i as u64) << 47);
        i += 1;
    }
    table
};

/// `|x|`'s top 12 bits (sign dropped) from which the table path no longer applies: `|x| >= 128`,
/// infinities and NaN.
const SPECIAL_TOP: u32 = 0x430;

/// `2^x`, bit for bit glibc's `exp2f` on a CPU with FMA.
pub(crate) fn exp2(x: f32) -> f32 {
    if (x.to_bits() >> 20) & 0x7ff < SPECIAL_TOP {
        return by_table(x);
    }
    if x == f32::NEG_INFINITY {
        0.0
    } else if !x.is_finite() {
        x + x
    } else if x > 0.0 {
        f32::INFINITY
    } else if x <= -150.0 {
        0.0
    } else if x < -149.0 {
        // glibc rounds 1.5625 * 2^-150 to the smallest subnormal.
        f32::from_bits(1)
    } else {
        // -149 <= x <= -128: a subnormal, rounded once at the end.
        by_table(x)
    }
}

/// `2^x` from the table and the cubic, for `-149 <= x < 128`.
#[inline(always)]
fn by_table(x: f32) -> f32 {
    let xd = f64::from(x);
    let kd = xd + SHIFT;
    let ki = kd.to_bits();
    let r = xd - (kd - SHIFT);
    let s = f64::from_bits(TABLE[(ki % 32) as usize].wrapping_add(ki << 47));
    let z = C0.mul_add(r, C1);
    let y = C2.mul_add(r, 1.0);
    (z.mul_add(r * r, y) * s) as f32
}

/// `out[i] = 2^x[i]`, as [`exp2`] computes each.
pub(crate) fn exp2_slice(x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked above.
        return unsafe { exp2_avx512(x, out) };
    }
    out.iter_mut().zip(x).for_each(|(o, &x)| *o = exp2(x));
}

/// [`exp2`] sixteen lanes at a time, as two halves of eight doubles; a block holding an input
/// outside the table's range, and the last few elements, go through [`exp2`] one by one.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn exp2_avx512(x: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let shift = _mm512_set1_pd(SHIFT);
    let (c0, c1, c2, one) =
        (_mm512_set1_pd(C0), _mm512_set1_pd(C1), _mm512_set1_pd(C2), _mm512_set1_pd(1.0));
    let low5 = _mm512_set1_epi64(31);
    // [`by_table`] on eight doubles (each an `f32` widened exactly).
    let by_table = |xd: __m512d| -> __m256 {
        let kd = _mm512_add_pd(xd, shift);
        let ki = _mm512_castpd_si512(kd);
        let r = _mm512_sub_pd(xd, _mm512_sub_pd(kd, shift));
        // SAFETY: every index is `ki & 31`, inside the 32 entries of TABLE.
        let t = unsafe {
            _mm512_i64gather_epi64::<8>(_mm512_and_si512(ki, low5), TABLE.as_ptr().cast())
        };
        let s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64::<47>(ki)));
        let z = _mm512_fmadd_pd(c0, r, c1);
        let y = _mm512_fmadd_pd(c2, r, one);
        let y = _mm512_fmadd_pd(z, _mm512_mul_pd(r, r), y);
        _mm512_cvtpd_ps(_mm512_mul_pd(y, s))
    };
    let top = _mm512_set1_epi32(0x7ff);
    let special = _mm512_set1_epi32(SPECIAL_TOP as i32);
    let whole = x.len().min(out.len()) / 16 * 16;
    for (x, out) in x[..whole].chunks_exact(16).zip(out[..whole].chunks_exact_mut(16)) {
        // SAFETY: `x` holds 16 floats.
        let v = unsafe { _mm512_loadu_ps(x.as_ptr()) };
        let tops = _mm512_and_si512(_mm512_srli_epi32::<20>(_mm512_castps_si512(v)), top);
        if _mm512_cmpge_epi32_mask(tops, special) != 0 {
            out.iter_mut().zip(x).for_each(|(o, &x)| *o = exp2(x));
            continue;
        }
        let high = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
        let (lo, hi) =
            (by_table(_mm512_cvtps_pd(_mm512_castps512_ps256(v))), by_table(_mm512_cvtps_pd(high)));
        // SAFETY: `out` holds 16 floats.
        unsafe {
            _mm256_storeu_ps(out.as_mut_ptr(), lo);
            _mm256_storeu_ps(out.as_mut_ptr().add(8), hi);
        }
    }
    out[whole..].iter_mut().zip(&x[whole..]).for_each(|(o, &x)| *o = exp2(x));
}

/// luminal's `Exp2` op, unfused (its input is contiguous), with [`exp2_slice`]'s arithmetic:
/// fused and unfused graphs give the same bits on every CPU.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Exp2;

impl Operator for Exp2 {
    fn process(&mut self, inp: Vec<(InputTensor, ShapeTracker)>) -> Vec<Tensor> {
        let x = vec_of(&inp[0].0);
        let mut out = vec![0.0f32; x.len()];
        exp2_slice(x, &mut out);
        vec![Tensor::new(out)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The table holds `2^(i/32)`, each within an ulp of the `f64` power.
    #[test]
    fn the_table_holds_the_powers_of_two_to_a_32nd() {
        for (i, &entry) in TABLE.iter().enumerate() {
            let bits = entry + ((i as u64) << 47);
            let exact = (i as f64 / 32.0).exp2().to_bits();
            assert!(bits.abs_diff(exact) <= 1, "entry {i}: {bits:#x} against {exact:#x}");
        }
    }

    /// Inputs across the whole range, near its edges and at every special value.
    fn inputs() -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut x: Vec<f32> = (0..200_000).map(|_| f32::from_bits(rng.r#gen())).collect();
        x.extend((0..100_000).map(|_| rng.gen_range(-160.0f32..130.0)));
        x.extend((0..100_000).map(|_| rng.gen_range(-1.0f32..1.0)));
        for edge in [-150.0f32, -149.0, -128.0, 128.0, 127.99999, -0.0, 0.0, 1e-30, -1e-30] {
            x.extend([
                edge,
                f32::from_bits(edge.to_bits() + 1),
                f32::from_bits(edge.to_bits().max(1) - 1),
            ]);
        }
        x.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::MIN_POSITIVE,
            f32::MAX,
        ]);
        x
    }

    /// The vectorised loop gives [`exp2`]'s bits, whatever the blocks hold, and [`exp2`] is
    /// within an ulp of `2^x` computed in `f64` (a correctly rounded result would be within
    /// half of one).
    #[test]
    fn every_lane_gives_the_scalar_bits_within_an_ulp_of_the_power() {
        let x = inputs();
        let mut out = vec![0.0f32; x.len()];
        exp2_slice(&x, &mut out);
        for (&x, &y) in x.iter().zip(&out) {
            let one = exp2(x);
            assert!(
                y.to_bits() == one.to_bits() || (y.is_nan() && one.is_nan()),
                "2^{x}: {y} against {one}"
            );
            let wide = f64::from(x).exp2() as f32;
            if wide.is_nan() {
                assert!(one.is_nan(), "2^{x}");
            } else {
                assert!(one.to_bits().abs_diff(wide.to_bits()) <= 1, "2^{x}: {one} against {wide}");
            }
        }
    }

    /// On glibc (2.28 or later) with FMA, the system's `exp2f` (Rust's `f32::exp2`) gives the
    /// same bits for every one of the 2^32 inputs. Takes about a minute:
    /// `cargo test --release -p ticketlab-tensor exp2 -- --ignored`.
    #[test]
    #[ignore = "checks every f32 against this machine's libm; run on glibc with FMA"]
    fn every_f32_gives_the_bits_of_glibcs_exp2f() {
        let mut x = vec![0.0f32; 1 << 16];
        let mut out = vec![0.0f32; 1 << 16];
        for high in 0..1u32 << 16 {
            for (low, x) in x.iter_mut().enumerate() {
                *x = f32::from_bits(high << 16 | low as u32);
            }
            exp2_slice(&x, &mut out);
            for (&x, &y) in x.iter().zip(&out) {
                let libm = x.exp2();
                assert!(
                    y.to_bits() == libm.to_bits() || (y.is_nan() && libm.is_nan()),
                    "2^{x} ({:#x}): {y} against libm's {libm}",
                    x.to_bits()
                );
            }
        }
    }
}
