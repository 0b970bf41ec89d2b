//! Kusto's scalar rules, one function each, shared by every execution path.

pub mod dictionary;
pub mod distinct;
pub mod strmatch;
pub mod terms;
pub mod termscan;
pub mod time;

/// Asks the CPU to bring the cache line holding `data[at]` closer (a hint: no effect on
/// results, nothing on other architectures).
#[inline(always)]
pub(crate) fn prefetch<T>(data: &[T], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = data.get(at) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing and cannot fault; `p` points into `data`.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((p as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, at);
}

/// Writing the rows (or positions) that pass, eight at a time with no branch a row: for
/// each mask of eight lanes, the lanes whose bits are set, packed first (the rest 0).
/// The SIMD kernels widen an entry to the lane width they write.
#[cfg(target_arch = "x86_64")]
pub(crate) mod lanes {
    use std::arch::x86_64::*;

    static SET: [[u8; 8]; 256] = {
        let mut table = [[0u8; 8]; 256];
        let mut mask = 0;
        while mask < 256 {
            let (mut lane, mut k) = (0, 0);
            while lane < 8 {
                if (mask >> lane) & 1 == 1 {
                    table[mask][k] = lane as u8;
                    k += 1;
                }
                lane += 1;
            }
            mask += 1;
        }
        table
    };

    /// The set lanes of `mask` (its low eight bits) as eight u32s.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn set32(mask: u32) -> __m256i {
        let entry = &SET[(mask & 0xff) as usize];
        // SAFETY: an entry is eight bytes, the width of the load.
        _mm256_cvtepu8_epi32(unsafe { _mm_loadl_epi64(entry.as_ptr().cast()) })
    }

    /// The set lanes of `mask` (its low eight bits) as eight u16s.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(crate) fn set16(mask: u32) -> __m128i {
        let entry = &SET[(mask & 0xff) as usize];
        // SAFETY: an entry is eight bytes, the width of the load.
        _mm_cvtepu8_epi16(unsafe { _mm_loadl_epi64(entry.as_ptr().cast()) })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn set_lanes_are_the_bits_in_order() {
            if !std::is_x86_feature_detected!("avx2") {
                return;
            }
            for mask in 0..256u32 {
                let want: Vec<u32> = (0..8).filter(|l| mask >> l & 1 == 1).collect();
                let (mut wide, mut narrow) = ([0u32; 8], [0u16; 8]);
                // SAFETY: AVX2 is available (checked above); the stores are 32 and 16
                // bytes, the arrays' sizes.
                unsafe {
                    _mm256_storeu_si256(wide.as_mut_ptr().cast(), set32(mask));
                    _mm_storeu_si128(narrow.as_mut_ptr().cast(), set16(mask));
                }
                assert_eq!(&wide[..want.len()], &want[..], "{mask:08b}");
                let narrow: Vec<u32> = narrow[..want.len()].iter().map(|&l| u32::from(l)).collect();
                assert_eq!(narrow, want, "{mask:08b}");
            }
        }
    }
}
