//! Dictionary-encoded strings: the rows picked by their values' answers (the last step
//! of every predicate on them: each distinct value is matched once by the caller, then
//! each row reads its key's answer), and those answers kept for the batches that share a
//! dictionary. Callers: `strmatch` (a predicate's kept rows) and `termscan` (the rows
//! whose value holds a needle).

use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, DictionaryArray};
use arrow::datatypes::{ArrowDictionaryKeyType, ArrowNativeType};

use crate::error::Result;

/// Rows per step of the key loop: one word of answers, then its set bits.
const STEP: usize = 64;

/// The rows (all, or those of `rows`, in order) whose value's answer is true:
/// `answers[k]` for a row with key `k`, `null` for a null row. A key past the values
/// (only a null row may hold one) reads as false.
///
/// Nothing is read per row when no answer can be true (the common case for a hunt's
/// needles against one batch's values), and every row when all are; otherwise keys are
/// read 64 at a time into a word of answers without a branch a row, and only the set
/// bits are written. Looking each key's answer up reads int32 keys at ~11 GB/s (~45 us
/// per 128K-row morsel, ~17 ms of the pack over 10M dictionary rows in ~5 passes a
/// morsel); comparing keys with up to four values held instead took the pack 34.6 ->
/// 31 ms (alternating builds; no change from Parquet, whose 8,192-row batches cost
/// ~4.5 us a call either way).
pub fn rows_where<K: ArrowDictionaryKeyType>(
    d: &DictionaryArray<K>,
    answers: &[bool],
    null: bool,
    rows: Option<&[u32]>,
) -> Vec<u32> {
    let nulls = d.keys().logical_nulls().filter(|n| n.null_count() > 0);
    let any = answers.iter().any(|&a| a) || null && nulls.is_some();
    let all = answers.iter().all(|&a| a) && (null || nulls.is_none());
    if !any {
        return Vec::new();
    }
    if all {
        return rows.map_or_else(|| (0..d.len() as u32).collect(), <[u32]>::to_vec);
    }
    // One entry past the values: out-of-range keys (of null rows) read as false.
    let mut table: Vec<u64> = answers.iter().map(|&a| u64::from(a)).collect();
    table.push(0);
    let last = answers.len();
    let keys = d.keys().values();
    let answer = |r: usize| -> u64 {
        let k = keys[r].as_usize().min(last);
        match &nulls {
            Some(n) if n.is_null(r) => u64::from(null),
            _ => table[k],
        }
    };
    let mut out = Vec::new();
    match rows {
        Some(rows) => out.extend(rows.iter().copied().filter(|&r| answer(r as usize) != 0)),
        None if nulls.is_some() => {
            out.extend((0..d.len() as u32).filter(|&r| answer(r as usize) != 0))
        }
        None => {
            let held: Vec<K::Native> = (0..last)
                .filter(|&k| answers[k])
                .filter_map(K::Native::from_usize)
                .collect();
            if held.is_empty() {
                // Only values no key can name (past the key type's range) are held.
                return out;
            }
            let mut emit = |c: usize, mut word: u64| {
                while word != 0 {
                    out.push((c * STEP) as u32 + word.trailing_zeros());
                    word &= word - 1;
                }
            };
            if held.len() <= 4 {
                // Each key compared with up to four values held (the first repeated to
                // fill): vector compares, where the lookup is a load a key.
                let mut cmp = [held[0]; 4];
                cmp[..held.len()].copy_from_slice(&held);
                for (c, chunk) in keys.chunks(STEP).enumerate() {
                    let mut word = 0u64;
                    for (j, k) in chunk.iter().enumerate() {
                        let hit = (*k == cmp[0]) | (*k == cmp[1]) | (*k == cmp[2]) | (*k == cmp[3]);
                        word |= u64::from(hit) << j;
                    }
                    emit(c, word);
                }
            } else {
                for (c, chunk) in keys.chunks(STEP).enumerate() {
                    let mut word = 0u64;
                    for (j, k) in chunk.iter().enumerate() {
                        word |= table[k.as_usize().min(last)] << j;
                    }
                    emit(c, word);
                }
            }
        }
    }
    out
}

/// Dictionaries a [`PerValues`] keeps at once (two per scan thread on this project's
/// two cores; more threads recompute more often, as before the cache).
const KEPT_DICTIONARIES: usize = 4;
/// The largest dictionary a [`PerValues`] keeps, in buffer bytes (larger ones are matched
/// per batch): a plan's matchers keep at most a megabyte each, for the run's length.
const KEPT_BYTES: usize = 256 << 10;

/// A predicate's answers per dictionary, kept for the batches that share it: arrow-rs's
/// Parquet reader builds each 8,192-row batch of a row group a values array over the
/// same dictionary buffers, and slices of one dictionary array (morsels) share theirs.
/// Matching each batch's values again cost the 55-rule pack from Parquet 0.303 s against
/// 0.264 s this way (10M rows, 1 thread, alternating builds; 37 -> 35 ms in memory). An
/// entry holds its array, so the memory it is found by cannot be reused while it is
/// kept. A clone starts empty.
#[derive(Default)]
pub struct PerValues<T> {
    kept: Mutex<Vec<(ArrayRef, Identity, Arc<T>)>>,
}

impl<T> Clone for PerValues<T> {
    fn clone(&self) -> Self {
        PerValues {
            kept: Mutex::new(Vec::new()),
        }
    }
}

impl<T> std::fmt::Debug for PerValues<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.kept.lock().map_or(0, |k| k.len());
        write!(f, "PerValues({n} kept)")
    }
}

impl<T> PerValues<T> {
    /// `compute(values)`, or its answer kept from an earlier batch whose values are the
    /// same memory.
    pub fn get(
        &self,
        values: &ArrayRef,
        compute: impl FnOnce(&dyn Array) -> Result<T>,
    ) -> Result<Arc<T>> {
        let id = Identity::of(values.as_ref());
        if let Ok(kept) = self.kept.lock() {
            if let Some((_, _, answer)) = kept.iter().find(|(_, i, _)| *i == id) {
                return Ok(answer.clone());
            }
        }
        let answer = Arc::new(compute(values.as_ref())?);
        if values.get_buffer_memory_size() <= KEPT_BYTES {
            if let Ok(mut kept) = self.kept.lock() {
                if kept.len() == KEPT_DICTIONARIES {
                    kept.remove(0);
                }
                kept.push((values.clone(), id, answer.clone()));
            }
        }
        Ok(answer)
    }
}

/// Where an array's bytes are: its type, offset and length, and each buffer's address
/// and length (its children's too). Two arrays with the same identity, one of them kept
/// alive, read the same immutable memory: arrow-rs's Parquet reader builds a new values
/// array for every batch of a row group over the same dictionary buffers.
#[derive(PartialEq, Eq)]
struct Identity(Vec<usize>, arrow::datatypes::DataType);

impl Identity {
    fn of(a: &dyn Array) -> Identity {
        fn walk(d: &arrow::array::ArrayData, out: &mut Vec<usize>) {
            out.extend([d.offset(), d.len(), d.buffers().len()]);
            for b in d.buffers() {
                out.extend([b.as_ptr() as usize, b.len()]);
            }
            match d.nulls() {
                Some(n) => out.extend([n.buffer().as_ptr() as usize, n.offset(), n.len()]),
                None => out.push(0),
            }
            out.push(d.child_data().len());
            for c in d.child_data() {
                walk(c, out);
            }
        }
        let data = a.to_data();
        let mut out = Vec::new();
        walk(&data, &mut out);
        Identity(out, data.data_type().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int32Array, Int8Array, StringArray};
    use arrow::datatypes::{Int32Type, Int8Type};
    use std::sync::Arc;

    /// The rows a plain loop over (key, answer) picks, for every shortcut: no answer
    /// true, all true, some (across several 64-row steps and a partial last one), nulls
    /// reading `null`, and a given row subset.
    #[test]
    fn rows_match_a_plain_loop() {
        let values = Arc::new(StringArray::from(vec!["a", "b", "c", "d", "e", "f"]));
        let keys: Vec<Option<i32>> = (0..200)
            .map(|i| (i % 7 != 3).then_some(i * 5 % 6))
            .collect();
        let with_nulls =
            DictionaryArray::<Int32Type>::try_new(Int32Array::from(keys.clone()), values.clone())
                .unwrap();
        let plain_keys: Vec<i32> = keys.iter().map(|k| k.unwrap_or(1)).collect();
        let no_nulls =
            DictionaryArray::<Int32Type>::try_new(Int32Array::from(plain_keys), values.clone())
                .unwrap();
        let subset: Vec<u32> = (0..200).filter(|r| r % 3 != 1).collect();
        for d in [&with_nulls, &no_nulls] {
            // None, all, one, two, four (compared) and five (looked up) of six values held.
            for answers in [
                [false; 6],
                [true; 6],
                [true, false, false, false, false, false],
                [false, true, false, false, false, true],
                [true, false, true, true, false, true],
                [true, true, false, true, true, true],
            ] {
                for null in [false, true] {
                    for rows in [None, Some(subset.as_slice())] {
                        let expect: Vec<u32> = rows
                            .map_or_else(|| (0..200).collect(), <[u32]>::to_vec)
                            .into_iter()
                            .filter(|&r| {
                                let r = r as usize;
                                if d.is_null(r) {
                                    null
                                } else {
                                    answers[d.keys().value(r) as usize]
                                }
                            })
                            .collect();
                        assert_eq!(
                            rows_where(d, &answers, null, rows),
                            expect,
                            "{answers:?} null={null} subset={}",
                            rows.is_some()
                        );
                    }
                }
            }
        }
    }

    /// Answers are kept per values memory: the same array, a slice of a dictionary sharing
    /// it, or a new array over the same buffers (as arrow-rs's Parquet reader builds one
    /// per batch) reuse them; an array with equal contents elsewhere, or a slice of the
    /// values, does not. The oldest entry makes room for a new one.
    #[test]
    fn per_values_keeps_answers_per_memory() {
        let cache: PerValues<usize> = PerValues::default();
        let calls = std::cell::Cell::new(0);
        let count = |a: &dyn Array| {
            calls.set(calls.get() + 1);
            Ok(a.len())
        };
        let a: ArrayRef = Arc::new(StringArray::from(vec!["x", "y"]));
        let d = DictionaryArray::<Int8Type>::try_new(Int8Array::from(vec![0, 1, 1]), a.clone())
            .unwrap();
        assert_eq!(*cache.get(d.values(), count).unwrap(), 2);
        assert_eq!(*cache.get(d.slice(1, 2).values(), count).unwrap(), 2);
        cache
            .get(&arrow::array::make_array(a.to_data()), count)
            .unwrap();
        assert_eq!(calls.get(), 1);
        let equal: ArrayRef = Arc::new(StringArray::from(vec!["x", "y"]));
        cache.get(&equal, count).unwrap();
        assert_eq!(*cache.get(&a.slice(0, 1), count).unwrap(), 1);
        assert_eq!(calls.get(), 3);
        for _ in 0..KEPT_DICTIONARIES {
            let other: ArrayRef = Arc::new(StringArray::from(vec!["z"]));
            cache.get(&other, count).unwrap();
        }
        cache.get(&a, count).unwrap();
        assert_eq!(calls.get(), 4 + KEPT_DICTIONARIES);
    }

    /// A null row's key may point past the values (Arrow leaves it unspecified).
    #[test]
    fn null_rows_with_wild_keys() {
        let keys = Int8Array::from(vec![Some(0), None, Some(1)]);
        let d =
            DictionaryArray::<Int8Type>::try_new(keys, Arc::new(StringArray::from(vec!["x", "y"])))
                .unwrap();
        let (keys, values) = (d.keys().clone(), d.values().clone());
        let mut raw = keys.values().to_vec();
        raw[1] = 100;
        let wild = DictionaryArray::<Int8Type>::new(
            Int8Array::new(raw.into(), keys.nulls().cloned()),
            values,
        );
        assert_eq!(rows_where(&wild, &[false, true], false, None), vec![2]);
        assert_eq!(rows_where(&wild, &[false, true], true, None), vec![1, 2]);
    }
}
