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
