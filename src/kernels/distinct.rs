//! Matching each distinct value of a plain string array once. Columns such as company,
//! product or file names hold a few hundred distinct values in millions of rows: a
//! predicate too costly to run on every row (many needles, case mapping, a set lookup
//! after folding) runs once per value, and each row looks its value up by hash.
//! When the values turn out mostly distinct, the caller finishes the rest another way.

use std::collections::HashMap;

use arrow::array::{Array, GenericStringArray, OffsetSizeTrait};

/// Calls `emit(row, &compute(value))` for each non-null row from `from` on, in order,
/// computing once per distinct value. Stops after the row that makes more than
/// `max(256, rows / 16)` distinct values; returns the row it stopped before (`a.len()`
/// when done).
pub fn per_value<O: OffsetSizeTrait, T>(
    a: &GenericStringArray<O>,
    from: usize,
    compute: impl FnMut(&str) -> T,
    emit: impl FnMut(usize, &T),
) -> usize {
    from + memo_rows(a, a.len() - from, |i| from + i, false, compute, emit)
}

/// `per_value` over `count` rows of the array, the i-th being `row(i)` (any order): a
/// conjunct after a selective one sees only the rows left. Stops after the row that
/// makes more than `max(256, count / 16)` distinct values; returns the number of rows
/// done. Rows scattered over a large array miss the cache (the prefetcher does not
/// follow them: a tenth of 10M rows cost 45 ns each), so each row's bytes are
/// requested `AHEAD` rows before they are read.
pub fn per_value_of<O: OffsetSizeTrait, T>(
    a: &GenericStringArray<O>,
    count: usize,
    row: impl Fn(usize) -> usize,
    compute: impl FnMut(&str) -> T,
    emit: impl FnMut(usize, &T),
) -> usize {
    memo_rows(a, count, row, true, compute, emit)
}

/// The memo loop; `ahead`: prefetch (rows in order stream without it, and the hint
/// costs them an extra offset read a row).
fn memo_rows<O: OffsetSizeTrait, T>(
    a: &GenericStringArray<O>,
    count: usize,
    row: impl Fn(usize) -> usize,
    ahead: bool,
    mut compute: impl FnMut(&str) -> T,
    mut emit: impl FnMut(usize, &T),
) -> usize {
    const AHEAD: usize = 16;
    let limit = 256.max(count / 16);
    let offsets = a.value_offsets();
    let data = a.value_data();
    let nulls = a.logical_nulls();
    let mut memo: HashMap<&[u8], T, FxBuild> = HashMap::with_capacity_and_hasher(512, FxBuild);
    for i in 0..count {
        if ahead && i + AHEAD < count {
            prefetch(data, offsets[row(i + AHEAD)].as_usize());
        }
        let r = row(i);
        if nulls.as_ref().is_some_and(|m| m.is_null(r)) {
            continue;
        }
        let bytes = &data[offsets[r].as_usize()..offsets[r + 1].as_usize()];
        if let Some(t) = memo.get(bytes) {
            emit(r, t);
            continue;
        }
        let t = compute(a.value(r));
        emit(r, &t);
        memo.insert(bytes, t);
        if memo.len() > limit {
            return i + 1;
        }
    }
    count
}

/// Asks the CPU to bring the cache line holding `data[at]` closer (a hint: no effect on
/// results, nothing on other architectures).
#[inline(always)]
fn prefetch(data: &[u8], at: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = data.get(at) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch reads nothing and cannot fault; `p` points into `data`.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((p as *const u8).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (data, at);
}

/// A small multiplicative hash for the memo (it lives for one array; its keys are the
/// array's own values).
#[derive(Clone, Copy, Default)]
struct FxBuild;

const K: u64 = 0x517c_c1b7_2722_0a95;

impl std::hash::BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        if n >= 8 {
            // Whole words, the last one overlapping the one before: no byte loop.
            let word = |i: usize| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&bytes[i..i + 8]);
                u64::from_le_bytes(w)
            };
            let mut i = 0;
            while i + 8 < n {
                self.add(word(i));
                i += 8;
            }
            self.add(word(n - 8));
        } else {
            let mut w = [0u8; 8];
            w[..n].copy_from_slice(bytes);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        // The multiplies leave their best bits high and the table indexes by the low
        // ones: fold the high half in, or values differing only in their last word's
        // high bytes (numbered names of one length) all land in one bucket.
        let m = u128::from(self.0) * 0x9e37_79b9_7f4a_7c15;
        (m as u64) ^ ((m >> 64) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn each_value_once_and_early_stop() {
        let a = StringArray::from(vec![Some("a"), None, Some("b"), Some("a"), Some("b")]);
        let mut computed = Vec::new();
        let mut rows = Vec::new();
        let done = per_value(
            &a,
            0,
            |v| {
                computed.push(v.to_string());
                v.len()
            },
            |r, t| rows.push((r, *t)),
        );
        assert_eq!(done, 5);
        assert_eq!(computed, vec!["a", "b"]);
        assert_eq!(rows, vec![(0, 1), (2, 1), (3, 1), (4, 1)]);
        // All distinct: stops after the 257th value.
        let many: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let a = StringArray::from(many);
        assert_eq!(per_value(&a, 0, |_| (), |_, _| ()), 257);
        assert_eq!(per_value(&a, 100, |_| (), |_, _| ()), 357);
        // Some rows only, in the order given.
        let a = StringArray::from(vec![Some("a"), Some("b"), None, Some("a"), Some("c")]);
        let mut rows = Vec::new();
        let order = [4, 2, 3, 0];
        let done = per_value_of(
            &a,
            order.len(),
            |i| order[i],
            |v| v.to_string(),
            |r, t| rows.push((r, t.clone())),
        );
        assert_eq!(done, 4);
        assert_eq!(
            rows,
            vec![(4, "c".into()), (3, "a".into()), (0, "a".into())]
        );
    }

    /// Values that differ only in the high bytes of their last word (numbered names of
    /// one length) spread over the table's low bits: before the final mix they all fell
    /// in one bucket and the memo ran 6x slower.
    #[test]
    fn low_hash_bits_spread() {
        use std::hash::BuildHasher;
        let buckets = |vals: &[String]| {
            let mut seen = std::collections::HashSet::new();
            for v in vals {
                seen.insert(FxBuild.hash_one(v.as_bytes()) & 1023);
            }
            seen.len()
        };
        let numbered: Vec<String> = (0..180).map(|i| format!("Company {i:03} ")).collect();
        let suffixed: Vec<String> = (0..180).map(|i| format!("Vendor{i} Corporation")).collect();
        // 180 random values in 1024 buckets land in about 166 distinct ones.
        assert!(buckets(&numbered) > 140, "{}", buckets(&numbered));
        assert!(buckets(&suffixed) > 140, "{}", buckets(&suffixed));
    }
}
