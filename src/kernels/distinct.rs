//! Matching each distinct value of a plain string array once. Columns such as company,
//! product or file names hold a few hundred distinct values in millions of rows: a
//! predicate too costly to run on every row (many needles, case mapping, a set lookup
//! after folding) runs once per value, and each row looks its value up by hash.
//! When the values turn out mostly distinct, the caller finishes the rest another way.

use super::prefetch;
use arrow::array::{Array, GenericStringArray, OffsetSizeTrait};

/// What a memo pass found: each distinct value's result, and the rows whose value's
/// result was kept, each with its value's index.
#[derive(Debug)]
pub struct Selected<T> {
    /// `compute(value)` per distinct value, in order of first appearance.
    pub values: Vec<T>,
    /// The kept rows, in the order visited.
    pub rows: Vec<u32>,
    /// Per kept row: the index in `values` of its value.
    pub ids: Vec<u32>,
    /// How many rows were visited: all of them, unless the values turned out mostly
    /// distinct (more than `max(256, count / 16)` of them; the row that made one too many
    /// is the last visited).
    pub done: usize,
}

/// The non-null rows from `from` on whose value passes `keep(&compute(value))`,
/// computing once per distinct value (see `Selected` for where it stops).
pub fn select<O: OffsetSizeTrait, T>(
    a: &GenericStringArray<O>,
    from: usize,
    compute: impl FnMut(&str) -> T,
    keep: impl Fn(&T) -> bool,
) -> Selected<T> {
    let mut s = memo_rows(a, Rows::From(from), compute, keep);
    if from > 0 {
        s.rows.iter_mut().for_each(|r| *r += from as u32);
    }
    s
}

/// `select` over some rows of the array (any order): a conjunct after a selective one
/// sees only the rows left. Rows scattered over a large array miss the cache (the
/// prefetcher does not follow them: a tenth of 10M rows cost 45 ns each), so each row's
/// bytes are requested `AHEAD` rows before they are read.
pub fn select_of<O: OffsetSizeTrait, T>(
    a: &GenericStringArray<O>,
    rows: &[u32],
    compute: impl FnMut(&str) -> T,
    keep: impl Fn(&T) -> bool,
) -> Selected<T> {
    let mut s = memo_rows(a, Rows::List(rows), compute, keep);
    s.rows.iter_mut().for_each(|i| *i = rows[*i as usize]);
    s
}

/// Each row's value id (dense, in order of first appearance) and the first row holding
/// each id: the group codes of a string key in `summarize`. A null row reads as `""`
/// (Kusto strings are never null), whatever bytes its offsets span.
pub fn row_ids<O: OffsetSizeTrait>(a: &GenericStringArray<O>) -> (Vec<u32>, Vec<usize>) {
    row_ids_upto(a, usize::MAX).expect("no limit")
}

/// `row_ids`, or None as soon as there are more than `limit` distinct values (a caller
/// that only gains when values repeat stops paying for the rest of the array).
pub fn row_ids_upto<O: OffsetSizeTrait>(
    a: &GenericStringArray<O>,
    limit: usize,
) -> Option<(Vec<u32>, Vec<usize>)> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available (checked above).
        return unsafe {
            match word_count(a) {
                4 => row_ids_avx2::<O, 4>(a, limit),
                6 => row_ids_avx2::<O, 6>(a, limit),
                _ => row_ids_avx2::<O, 8>(a, limit),
            }
        };
    }
    match word_count(a) {
        4 => row_ids_in::<O, 4, false>(a, limit),
        6 => row_ids_in::<O, 6, false>(a, limit),
        _ => row_ids_in::<O, 8, false>(a, limit),
    }
}

/// `row_ids_in` compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn row_ids_avx2<O: OffsetSizeTrait, const W: usize>(
    a: &GenericStringArray<O>,
    limit: usize,
) -> Option<(Vec<u32>, Vec<usize>)> {
    row_ids_in::<O, W, true>(a, limit)
}

/// `SIMD`: compiled inside `row_ids_avx2` (only called where AVX2 is available).
#[inline(always)]
fn row_ids_in<O: OffsetSizeTrait, const W: usize, const SIMD: bool>(
    a: &GenericStringArray<O>,
    limit: usize,
) -> Option<(Vec<u32>, Vec<usize>)> {
    let offsets = a.value_offsets();
    let nulls = a.logical_nulls();
    let mut ids = ValueIds::<W>::new(a.value_data());
    let mut first = Vec::new();
    let mut codes = Vec::with_capacity(a.len());
    for r in 0..a.len() {
        let start = offsets[r].as_usize();
        let end = if nulls.as_ref().is_some_and(|m| m.is_null(r)) {
            start
        } else {
            offsets[r + 1].as_usize()
        };
        let id = ids.id_with::<SIMD>(start, end);
        if id == first.len() {
            if id == limit {
                return None;
            }
            first.push(r);
        }
        codes.push(id as u32);
    }
    Some((codes, first))
}

/// Whether one value holds at least half of the `rows` rows from `from` on, and is short
/// enough to be read as fixed words: the shape in which the memo's popular-value loop
/// runs (`popular_blocks`), about a nanosecond a row whatever the predicate. False when
/// the array has nulls (the memo then goes row by row). A majority vote over the rows,
/// then a count of its winner.
pub fn has_majority<O: OffsetSizeTrait>(
    a: &GenericStringArray<O>,
    from: usize,
    rows: usize,
) -> bool {
    if a.logical_nulls().is_some_and(|n| n.null_count() > 0) {
        return false;
    }
    let end = a.len().min(from.saturating_add(rows));
    if from >= end {
        return false;
    }
    let mut winner = a.value(from).as_bytes();
    let mut lead = 0usize;
    for r in from..end {
        let v = a.value(r).as_bytes();
        if lead == 0 {
            winner = v;
        }
        if v == winner {
            lead += 1;
        } else {
            lead -= 1;
        }
    }
    let count = (from..end)
        .filter(|&r| a.value(r).as_bytes() == winner)
        .count();
    popular(count, end - from) && winner.len() <= 8 * word_count(a)
}

/// Whether a value seen in `count` of `rows` rows is common enough for the memo's
/// popular-value loop (`popular_blocks`): half of them or more. The memo's own choice
/// and `has_majority`'s both ask here.
fn popular(count: usize, rows: usize) -> bool {
    count * 2 >= rows
}

/// The fixed words `ValueIds` reads a value as, by the array's mean value length: 4
/// when it is at most 24 bytes (company and file names), 6 up to 40 (product names: two
/// thirds are 32 to 40 bytes; 8 words cost them 87 ms over 10M rows, 6 words 54), else 8.
fn word_count<O: OffsetSizeTrait>(a: &GenericStringArray<O>) -> usize {
    let offsets = a.value_offsets();
    let bytes = (offsets[a.len()] - offsets[0]).as_usize();
    if bytes <= 24 * a.len() {
        4
    } else if bytes <= 40 * a.len() {
        6
    } else {
        8
    }
}

/// The rows a memo pass visits: those from a row on, in order, or a list (any order).
#[derive(Clone, Copy)]
enum Rows<'r> {
    From(usize),
    List(&'r [u32]),
}

/// The memo loop. `Selected::rows` holds positions among the rows visited.
fn memo_rows<O: OffsetSizeTrait, T>(
    a: &GenericStringArray<O>,
    rows: Rows<'_>,
    compute: impl FnMut(&str) -> T,
    keep: impl Fn(&T) -> bool,
) -> Selected<T> {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available (checked above).
        return unsafe {
            match word_count(a) {
                4 => memo_rows_avx2::<O, T, 4>(a, rows, compute, keep),
                6 => memo_rows_avx2::<O, T, 6>(a, rows, compute, keep),
                _ => memo_rows_avx2::<O, T, 8>(a, rows, compute, keep),
            }
        };
    }
    match word_count(a) {
        4 => memo_rows_in::<O, T, 4, false>(a, rows, compute, keep),
        6 => memo_rows_in::<O, T, 6, false>(a, rows, compute, keep),
        _ => memo_rows_in::<O, T, 8, false>(a, rows, compute, keep),
    }
}

/// The memo loop compiled for AVX2, reading each value as two vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn memo_rows_avx2<O: OffsetSizeTrait, T, const W: usize>(
    a: &GenericStringArray<O>,
    rows: Rows<'_>,
    compute: impl FnMut(&str) -> T,
    keep: impl Fn(&T) -> bool,
) -> Selected<T> {
    memo_rows_in::<O, T, W, true>(a, rows, compute, keep)
}

/// `SIMD`: compiled inside `memo_rows_avx2` (only called where AVX2 is available).
/// Every row's position and value index are written, and the count of kept rows moves
/// past them only when the value is kept: no branch on whether a row is kept (rows of
/// a popular value kept in random order mispredicted: a tenth of 10M company names
/// kept cost the loop 44 ms against 32 this way). Rows in order without nulls (the
/// common case: a whole column) take a loop of their own over the offsets.
#[inline(always)]
fn memo_rows_in<O: OffsetSizeTrait, T, const W: usize, const SIMD: bool>(
    a: &GenericStringArray<O>,
    rows: Rows<'_>,
    compute: impl FnMut(&str) -> T,
    keep: impl Fn(&T) -> bool,
) -> Selected<T> {
    const AHEAD: usize = 16;
    let count = match rows {
        Rows::From(from) => a.len() - from,
        Rows::List(list) => list.len(),
    };
    let offsets = a.value_offsets();
    let data = a.value_data();
    let nulls = a.logical_nulls().filter(|n| n.null_count() > 0);
    let mut m = Memo::<T, W>::new(data, count);
    let mut compute = compute;
    let mut new_value = |m: &mut Memo<T, W>, r: usize| {
        let v = compute(a.value(r));
        m.kept.push(keep(&v));
        m.values.push(v);
        m.values.len() > m.limit
    };
    let (from, list) = match rows {
        Rows::From(from) => (from, None),
        Rows::List(list) => (0, Some(list)),
    };
    if list.is_none() && nulls.is_none() {
        let spans = &offsets[from..];
        // The first rows, one by one, show whether one value is popular.
        let probe = count.min(POPULAR_PROBE);
        let mut counts: Vec<u32> = Vec::new();
        for i in 0..probe {
            let id = m
                .ids
                .id_with::<SIMD>(spans[i].as_usize(), spans[i + 1].as_usize());
            let stop = id == m.values.len() && new_value(&mut m, from + i);
            m.push(i, id);
            if stop {
                m.done = i + 1;
                return m.finish();
            }
            if id == counts.len() {
                counts.push(0);
            }
            counts[id] += 1;
        }
        let mut i = probe;
        let mut by_count: Vec<usize> = (0..counts.len()).collect();
        by_count.sort_by_key(|&id| std::cmp::Reverse(counts[id]));
        if let Some(&top) = by_count
            .first()
            .filter(|&&t| popular(counts[t] as usize, probe) && m.ids.fixed(t))
        {
            // Values of the first rows, most frequent first, one per length, that `admit`
            // lets in.
            let per_length = |admit: &dyn Fn(usize) -> bool| {
                let mut set: Vec<usize> = Vec::new();
                for &t in &by_count {
                    let len = m.ids.spans[t].1;
                    if set.len() < POPULAR_VALUES
                        && m.ids.fixed(t)
                        && admit(t)
                        && set.iter().all(|&o| m.ids.spans[o].1 != len)
                    {
                        set.push(t);
                    }
                }
                set
            };
            // The first value, and the others a kept one only when the first is kept
            // too (when none of them is, only the other rows are written).
            let tops = per_length(&|t| m.kept[top] || !m.kept[t]);
            // For the rows that are none of them, the most frequent other value of each
            // length (kept or not: those rows are written one by one anyway).
            let seconds = per_length(&|t| !tops.contains(&t));
            let sets = (&tops[..], &seconds[..]);
            i = popular_blocks::<O, T, W, SIMD>(&mut m, spans, i, count, sets, &mut |m, j| {
                new_value(m, from + j)
            });
            if m.done < count {
                return m.finish();
            }
        }
        for (i, w) in spans[..=count].windows(2).enumerate().skip(i) {
            let id = m.ids.id_with::<SIMD>(w[0].as_usize(), w[1].as_usize());
            if id == m.values.len() && new_value(&mut m, from + i) {
                m.push(i, id);
                m.done = i + 1;
                break;
            }
            m.push(i, id);
        }
        return m.finish();
    }
    let row = |i: usize| list.map_or(from + i, |l| l[i] as usize);
    for i in 0..count {
        if list.is_some() && i + AHEAD < count {
            prefetch(data, offsets[row(i + AHEAD)].as_usize());
        }
        let r = row(i);
        if nulls.as_ref().is_some_and(|n| n.is_null(r)) {
            continue;
        }
        let id = m
            .ids
            .id_with::<SIMD>(offsets[r].as_usize(), offsets[r + 1].as_usize());
        if id == m.values.len() && new_value(&mut m, r) {
            m.push(i, id);
            m.done = i + 1;
            break;
        }
        m.push(i, id);
    }
    m.finish()
}

/// Rows a whole-column memo pass takes one by one before it looks for a popular value.
const POPULAR_PROBE: usize = 1024;
/// Rows per block of the popular-value loop.
const POPULAR_BLOCK: usize = 256;
const _: () = assert!(POPULAR_BLOCK.is_power_of_two());
/// The most values the popular-value loop compares rows with (each row with the one of
/// its length only, so more values cost it nothing a row).
const POPULAR_VALUES: usize = 32;

/// The memo loop over `spans` (offsets of the rows visited) from position `start`,
/// blocks of rows at a time, for a column where one value (`tops[0]`, read as fixed
/// words) holds at least half the rows (telemetry is skewed: "Microsoft Corporation" is
/// 78% of the benchmark's company names, the OS's own product name 64% of its product
/// names). A first pass (`Popular::classify`) compares each row with the value of
/// `tops` of the row's length, no branch, and lists the rows that are none of them; those
/// are compared with the value of `seconds` of their length (the next most frequent
/// values, one per length, kept or not), and the table is probed for the rest; the
/// block's rows are then written in order (only the others' when no value of `tops` is
/// kept). 10M rows, 1 thread: company names 38.5 -> 27.6 ms with the first value alone,
/// -> 18 ms with every value of the first rows, one per length (the other rows fall
/// from 22% to 1%); product names 41.6 -> 38.7 -> 25 ms (36% to 5%) (a `has_any` of
/// ten needles, `benchmarks/`' data). The second set takes the rows of a kept value
/// that `tops` leaves out (Google's, a tenth of the company names, when the first
/// value is not kept): the pack's company needles as one `has_any` 21.2 -> 19.1 ms,
/// the pack ~2% (the probes of a small table in cache cost about what a compare
/// does, so it gains little on the others). Returns the
/// position it stopped at (`m.done` set when the values ran out); the caller finishes
/// the last rows.
#[inline(always)]
fn popular_blocks<O: OffsetSizeTrait, T, const W: usize, const SIMD: bool>(
    m: &mut Memo<'_, T, W>,
    spans: &[O],
    start: usize,
    count: usize,
    (tops, seconds): (&[usize], &[usize]),
    new_value: &mut impl FnMut(&mut Memo<'_, T, W>, usize) -> bool,
) -> usize {
    // Rows whose fixed words lie inside the buffer (offsets only grow).
    let data_len = m.ids.data.len();
    let safe = spans[..count].partition_point(|o| o.as_usize() + 8 * W <= data_len);
    let top_kept = m.kept[tops[0]];
    let popular = m.ids.popular(tops);
    let second = (!seconds.is_empty()).then(|| m.ids.popular(seconds));
    let data = m.ids.data;
    let mut rows = Classified {
        ids: [0; POPULAR_BLOCK],
        others: [0; POPULAR_BLOCK + 8],
    };
    let mut i = start;
    while i + POPULAR_BLOCK <= safe {
        let block = &spans[i..=i + POPULAR_BLOCK];
        let n = popular.classify::<O, SIMD>(data, block, &mut rows, top_kept);
        let Classified { ids, others } = &mut rows;
        for (at, &j) in others[..n].iter().enumerate() {
            let j = usize::from(j);
            let (s, e) = (block[j].as_usize(), block[j + 1].as_usize());
            // SAFETY: the rows before `safe` have their fixed words inside `data`.
            let id = match second
                .as_ref()
                .map(|p| unsafe { p.find::<SIMD>(data, s, e) })
            {
                Some((true, id)) => id as usize,
                _ => m.ids.id_with::<SIMD>(s, e),
            };
            ids[j] = id as u32;
            if id == m.values.len() && new_value(m, i + j) {
                // The values ran out at this row: the rows up to it, as below.
                if top_kept {
                    for (q, &id) in ids[..=j].iter().enumerate() {
                        m.push(i + q, id as usize);
                    }
                } else {
                    for &q in &others[..=at] {
                        m.push(i + usize::from(q), ids[usize::from(q)] as usize);
                    }
                }
                m.done = i + j + 1;
                return i + j + 1;
            }
        }
        if top_kept {
            m.push_block(i, 0..POPULAR_BLOCK, ids);
        } else {
            m.push_block(i, others[..n].iter().map(|&j| usize::from(j)), ids);
        }
        i += POPULAR_BLOCK;
    }
    i
}

thread_local! {
    /// Per thread: a memo pass's two row buffers (a position and a value id for every row
    /// visited), kept for its next pass. Two fresh 512 KB buffers a 128K-row morsel were
    /// returned to the OS by glibc's trimming and faulted back in the next time, ~27K page
    /// faults a 10M-row pack; on two threads the faults contend (the pack in the
    /// benchmark's worker process: 0.06-0.09 s a repetition against 0.047-0.056 s).
    static SCRATCH: std::cell::RefCell<(Vec<u32>, Vec<u32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// The longest row buffers a thread keeps (4 MB each): a morsel's are 128K rows; a pass
/// over a larger array gives its buffers back to the allocator.
const SCRATCH_ROWS: usize = 1 << 20;

/// A memo pass's state: the ids, each value's result and whether it is kept, and the
/// kept rows so far.
struct Memo<'a, T, const W: usize> {
    ids: ValueIds<'a, W>,
    values: Vec<T>,
    kept: Vec<bool>,
    /// Positions and value ids, one spare entry past the rows (each row is written
    /// whether or not it is kept).
    rows: Vec<u32>,
    row_ids: Vec<u32>,
    k: usize,
    limit: usize,
    done: usize,
}

impl<'a, T, const W: usize> Memo<'a, T, W> {
    fn new(data: &'a [u8], count: usize) -> Self {
        let (mut rows, mut row_ids) = SCRATCH.with_borrow_mut(std::mem::take);
        // Old entries stay as they are (every position is written before it is read);
        // only a longer pass's new tail is zeroed.
        rows.resize(count + 1, 0);
        row_ids.resize(count + 1, 0);
        Memo {
            ids: ValueIds::new(data),
            values: Vec::new(),
            kept: Vec::new(),
            rows,
            row_ids,
            k: 0,
            limit: 256.max(count / 16),
            done: count,
        }
    }

    /// Writes position `i` with value `id`; keeps it when the value is kept.
    #[inline(always)]
    fn push(&mut self, i: usize, id: usize) {
        debug_assert!(self.k <= i && i < self.rows.len() - 1 && id < self.kept.len());
        // SAFETY: `k <= i < count` (k grows at most once per position) and both buffers
        // hold `count + 1` entries; `id` is a known value's (`id_with` returns at most
        // the number of values, and a new one is pushed before this call).
        unsafe {
            *self.rows.get_unchecked_mut(self.k) = i as u32;
            *self.row_ids.get_unchecked_mut(self.k) = id as u32;
            self.k += usize::from(*self.kept.get_unchecked(id));
        }
    }

    /// `push` of the positions `base + j` of a popular-value block, `j` from `js`
    /// (ascending, each below `POPULAR_BLOCK`), with value `ids[j]`. The buffers and the
    /// count stay in registers: through `push` a row they were reloaded from the stack
    /// after each store (which might have written them, as far as the compiler knew),
    /// ~20% of the memo's own time in the pack.
    #[inline(always)]
    fn push_block(
        &mut self,
        base: usize,
        js: impl Iterator<Item = usize>,
        ids: &[u32; POPULAR_BLOCK],
    ) {
        let (rows, row_ids) = (self.rows.as_mut_ptr(), self.row_ids.as_mut_ptr());
        let (kept, mut k) = (&self.kept[..], self.k);
        for j in js {
            let id = ids[j & (POPULAR_BLOCK - 1)] as usize;
            debug_assert!(k <= base + j && base + j < self.rows.len() - 1 && id < kept.len());
            // SAFETY: as in `push`: `k <= base + j < count` (positions ascend and k grows
            // at most once each), both buffers hold `count + 1`; `id` is a known value's.
            unsafe {
                *rows.add(k) = (base + j) as u32;
                *row_ids.add(k) = id as u32;
                k += usize::from(*kept.get_unchecked(id));
            }
        }
        self.k = k;
    }

    /// The kept rows, copied out of the row buffers, which go back to this thread's
    /// scratch for its next memo pass.
    fn finish(self) -> Selected<T> {
        let rows = self.rows[..self.k].to_vec();
        let ids = self.row_ids[..self.k].to_vec();
        if self.rows.capacity() <= SCRATCH_ROWS {
            SCRATCH.with_borrow_mut(|s| *s = (self.rows, self.row_ids));
        }
        Selected {
            values: self.values,
            rows,
            ids,
            done: self.done,
        }
    }
}

/// Dense ids (0, 1, 2, ... in order of first appearance) for the distinct byte strings
/// of one buffer, each given by its range. A value of at most `8 * W` bytes is read as
/// `W` fixed words masked to its length: no loop whose trip count depends on the value
/// (a mispredicted branch a row cost as much as the rest of the row), a hash of one
/// wide multiply, a probe in a table of tags kept at most a quarter full (collisions
/// are mispredictions too), and a compare with the words of the id it names (dense,
/// aligned, in cache). Longer values hash and compare all their bytes. (A
/// `HashMap<&[u8], _>` spent as long in its `memcmp` calls as in the rest of a row: 10M
/// rows of 180 values, 66 ms that way, 38 ms this way.) The loop is bound by its
/// instructions, not by memory (10M company names: 5 ms to read their bytes, 12 ms to
/// hash them and read a slot), so a slot carries the value's length beside its tag: one
/// compare tests both.
struct ValueIds<'a, const W: usize> {
    data: &'a [u8],
    /// Empty (0), or `slot_key(hash, len)` above an id + 1; a hash's low bits index the
    /// table (a power of two long).
    slots: Vec<u64>,
    /// Per id: its value's words masked to its length (zeros for a value longer than
    /// `8 * W` bytes, which its slot key tells apart).
    words: Vec<Words<W>>,
    /// Per id: where its value first occurred, and its length.
    spans: Vec<(usize, usize)>,
}

/// Entries of `Popular`'s tables: lengths 0 to 127 (a longer row is looked up as 127).
const BY_LEN: usize = 128;

/// The values rows are compared with, whole, in the popular-value loop, at most one of
/// each length: a row is compared with the one of its length only (or with none, an
/// entry no row matches), so a value more costs the loop nothing per row.
struct Popular<const W: usize> {
    /// By a row's length (127 for any longer): the words of the value of that length,
    /// the mask of that length and the value's id. A length no value has masks every
    /// byte away and expects a word that is not zero: no row is it. A row is only ever
    /// compared with a value of its own length, so its bytes alone decide: no length
    /// test a row (with one, LLVM reduced the compare's vector to a scalar to join them:
    /// 37 -> 27 instructions a row without it). Indexed by the length itself, not
    /// through a table of entries (one load a row fewer, and one step less between a
    /// row's length and its compare).
    words: [Words<W>; BY_LEN],
    masks: [Words<W>; BY_LEN],
    ids: [u32; BY_LEN],
}

/// What `Popular::classify` tells of a block's rows: each row's value id (when it is one
/// of the values, and the caller asked for ids), and the positions of the rows that are
/// not.
struct Classified {
    ids: [u32; POPULAR_BLOCK],
    /// Eight spare entries: positions are written eight at a time.
    others: [u16; POPULAR_BLOCK + 8],
}

impl<const W: usize> Popular<W> {
    /// The rows of a block (`spans`: `POPULAR_BLOCK + 1` offsets, each row's fixed words
    /// inside `data`): the others (not one of the values) listed in `out.others`, whose
    /// number is returned, and with `ids` each row's id in `out.ids` when it is one of
    /// the values (without, `out.ids` is left as it was: a caller that only writes the
    /// other rows never reads them). A function of its own, so its loop keeps everything
    /// in registers (inside the memo loop it spilled: the company names' memo 24 -> 22
    /// ms over 10M rows).
    #[inline(never)]
    fn classify<O: OffsetSizeTrait, const SIMD: bool>(
        &self,
        data: &[u8],
        spans: &[O],
        out: &mut Classified,
        ids: bool,
    ) -> usize {
        // Offsets only grow: the last row's start bounds every row's fixed words (`find`
        // then reads them without a check a row).
        assert!(spans.len() > POPULAR_BLOCK);
        assert!(spans[POPULAR_BLOCK - 1].as_usize() + 8 * W <= data.len());
        #[cfg(target_arch = "x86_64")]
        if SIMD && !O::IS_LARGE {
            // SAFETY: `O` is `i32` (arrow's offsets are i32 or i64); `SIMD` is only set
            // in `memo_rows_avx2`, called after the check for AVX2; the bounds are
            // asserted above.
            return unsafe {
                let spans = std::slice::from_raw_parts(spans.as_ptr().cast::<i32>(), spans.len());
                if ids {
                    self.classify_eights::<true>(data, spans, out)
                } else {
                    self.classify_eights::<false>(data, spans, out)
                }
            };
        }
        let mut n = 0;
        for (j, w) in spans[..=POPULAR_BLOCK].windows(2).enumerate() {
            // SAFETY: `w[0]` is at most the last row's start (asserted above).
            let (is_value, id) =
                unsafe { self.find::<SIMD>(data, w[0].as_usize(), w[1].as_usize()) };
            out.ids[j] = id;
            // SAFETY: `n <= j < POPULAR_BLOCK` (n grows at most once a row).
            unsafe { *out.others.get_unchecked_mut(n) = j as u16 };
            n += usize::from(!is_value);
        }
        n
    }

    /// `classify` of `i32` offsets on AVX2, eight rows at a time: each row's bytes and
    /// its value's differ in a vector that is zero when they are equal, four such
    /// vectors fold into one bit each (two unpacks, two lane swaps, one compare: no
    /// vector-to-flags test a row, which with the extraction of each row's length from
    /// a vector held the loop to ~4 cycles a row), and the positions of the rows that
    /// are none of the values are written eight at a time from a table. With the tables
    /// indexed by length and no ids written when none are read, over 10M rows, 1
    /// thread (a `has_any` of the pack's needles): company names 27.3 -> 22.5 ms,
    /// product names 29.4 -> 25.4 ms; the pack 80.6 -> 74.0 ms (this machine, an AMD
    /// EPYC at ~3.5 GHz; the loop alone over 1M company names in cache, 1.13 -> 0.86 ns
    /// a row).
    ///
    /// # Safety
    /// AVX2 must be available; `spans` must hold `POPULAR_BLOCK + 1` offsets, each row's
    /// fixed words inside `data` (as `classify` asserts).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,popcnt")]
    unsafe fn classify_eights<const IDS: bool>(
        &self,
        data: &[u8],
        spans: &[i32],
        out: &mut Classified,
    ) -> usize {
        const { assert!(POPULAR_BLOCK % 8 == 0 && POPULAR_BLOCK <= u16::MAX as usize) };
        let (d, o) = (data.as_ptr(), spans.as_ptr());
        let mut n = 0;
        for g in (0..POPULAR_BLOCK).step_by(8) {
            // SAFETY: offsets g..=g + 8 exist (`POPULAR_BLOCK + 1` of them); a row's
            // start is at most the last row's, whose fixed words are inside `data` (the
            // caller's promise); the length is clamped inside the tables; `out.ids`
            // holds the block's rows.
            let mut differs = |k: usize| unsafe {
                let (start, end) = (*o.add(g + k), *o.add(g + k + 1));
                // Offsets grow: the difference is a length (unsigned, then clamped).
                let len = ((end - start) as u32 as usize).min(BY_LEN - 1);
                if IDS {
                    *out.ids.get_unchecked_mut(g + k) = *self.ids.get_unchecked(len);
                }
                simd::differs::<W>(
                    d.add(start as u32 as usize),
                    &self.words.get_unchecked(len).0,
                    &self.masks.get_unchecked(len).0,
                )
            };
            let low = simd::zero_lanes(differs(0), differs(1), differs(2), differs(3));
            let high = simd::zero_lanes(differs(4), differs(5), differs(6), differs(7));
            let misses = !(low | (high << 4)) & 0xff;
            // SAFETY: `n <= g` (at most one position a row so far), and `others` holds
            // `POPULAR_BLOCK + 8`.
            unsafe { simd::write_positions(out.others.as_mut_ptr().add(n), g as u16, misses) };
            n += misses.count_ones() as usize;
        }
        n
    }

    /// Whether `data[start..end]` is one of the values, and that value's id (any id when
    /// not), with no branch on the row's bytes: the row's fixed words are masked to the
    /// length of the value of its length and compared with that value's words.
    ///
    /// # Safety
    /// `start + 8 * W` must be at most `data.len()`.
    #[inline(always)]
    unsafe fn find<const SIMD: bool>(&self, data: &[u8], start: usize, end: usize) -> (bool, u32) {
        let len = (end - start).min(BY_LEN - 1);
        // SAFETY: `len < BY_LEN`, the length of each table.
        let (words, mask, id) = unsafe {
            (
                &self.words.get_unchecked(len).0,
                &self.masks.get_unchecked(len).0,
                *self.ids.get_unchecked(len),
            )
        };
        debug_assert!(start + 8 * W <= data.len());
        #[cfg(target_arch = "x86_64")]
        if SIMD {
            // SAFETY: `8 * W` bytes from `start` are inside `data` (the caller's promise);
            // AVX2 is available (`SIMD` is only set in `memo_rows_avx2`).
            let same = unsafe { simd::matches::<W>(data.as_ptr().add(start), words, mask) };
            return (same, id);
        }
        // SAFETY: as above.
        let bytes = unsafe { data.get_unchecked(start..start + 8 * W) };
        let d = (0..W).fold(0, |d, w| {
            let word = u64::from_le_bytes(bytes[8 * w..8 * w + 8].try_into().expect("8 bytes"));
            d | ((word & mask[w]) ^ words[w])
        });
        (d == 0, id)
    }
}

/// A value's fixed words, aligned for one vector load each 32 bytes.
#[repr(C, align(32))]
#[derive(Clone, Copy)]
struct Words<const W: usize>([u64; W]);

/// A slot's upper half: a hash's top 24 bits above a length byte, which is the value's
/// length when it is read as fixed words (at most 64 bytes) and 255 for a longer value
/// (whose full length its span holds).
#[inline(always)]
fn slot_key(h: u64, len: usize, wide: usize) -> u64 {
    let len = if len <= wide { len as u64 } else { 0xff };
    ((h >> 40) << 8) | len
}

/// 64 bytes set then 64 clear: the mask of word `w` of a value of `len` (<= 64) bytes is
/// the eight bytes from `64 - len + 8 * w`.
static MASK_BYTES: [u8; 128] = {
    let mut m = [0u8; 128];
    let mut i = 0;
    while i < 64 {
        m[i] = 0xff;
        i += 1;
    }
    m
};

impl<'a, const W: usize> ValueIds<'a, W> {
    /// The longest value read as fixed words.
    const WIDE: usize = 8 * W;

    fn new(data: &'a [u8]) -> Self {
        const SLOTS: usize = 4096;
        const { assert!(W >= 2 && W <= 8 && W % 2 == 0) };
        ValueIds {
            data,
            slots: vec![0; SLOTS],
            words: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// How many distinct values there are so far.
    #[cfg(test)]
    fn count(&self) -> usize {
        self.spans.len()
    }

    /// Whether `id`'s value is read as fixed words (at most `8 * W` bytes).
    fn fixed(&self, id: usize) -> bool {
        self.spans[id].1 <= Self::WIDE
    }

    /// `ids`' values (read as fixed words, of distinct lengths, at most
    /// `POPULAR_VALUES` of them, at least one) as the set rows are compared with.
    fn popular(&self, ids: &[usize]) -> Box<Popular<W>> {
        assert!(!ids.is_empty() && ids.len() <= POPULAR_VALUES);
        debug_assert!(ids.iter().all(|&id| self.fixed(id)));
        let mask = |len: usize| {
            let byte = |i: usize| if i < len { 0xffu64 << (8 * (i % 8)) } else { 0 };
            Words(std::array::from_fn(|w| {
                (8 * w..8 * w + 8).map(byte).fold(0, |m, b| m | b)
            }))
        };
        // Lengths no value has: no row is it (see `words`), the first value's id.
        let mut none = Words([0; W]);
        none.0[0] = 1; // masked to nothing, a row's words are zero
        let mut p = Box::new(Popular {
            words: [none; BY_LEN],
            masks: [mask(0); BY_LEN],
            ids: [ids[0] as u32; BY_LEN],
        });
        for &id in ids {
            let len = self.spans[id].1;
            p.words[len] = self.words[id];
            p.masks[len] = mask(len);
            p.ids[len] = id as u32;
        }
        p
    }

    /// The id of `data[start..end]`: the next unused one (the number of values seen
    /// before the call) when the value is new.
    #[inline(always)]
    fn id(&mut self, start: usize, end: usize) -> usize {
        let len = end - start;
        if len > Self::WIDE || start + Self::WIDE > self.data.len() {
            return self.id_slow(start, end);
        }
        let words = masked_words::<W>(&self.data[start..start + Self::WIDE], len);
        let h = hash_words(&words, len);
        self.find(h, len, |id| same_words(&self.words[id].0, &words))
            .unwrap_or_else(|| self.insert(h, words, start, len))
    }

    /// `id`, or `id_avx2` when `SIMD` (only inside code compiled for AVX2).
    #[inline(always)]
    fn id_with<const SIMD: bool>(&mut self, start: usize, end: usize) -> usize {
        #[cfg(target_arch = "x86_64")]
        if SIMD {
            // SAFETY: `SIMD` is only set in `memo_rows_avx2`, called after the check.
            return unsafe { self.id_avx2(start, end) };
        }
        self.id(start, end)
    }

    /// `id` with the value's fixed words in two vectors: one load and one mask per 32
    /// bytes, a compare of all of them at once. The same hash and keys as `id` (so the
    /// table's layout does not depend on the path).
    ///
    /// # Safety
    /// Only in code compiled for AVX2 (inlined into `memo_rows_avx2`: a function of its
    /// own, called per row, cost the vectors their gain).
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    unsafe fn id_avx2(&mut self, start: usize, end: usize) -> usize {
        let len = end - start;
        if len > Self::WIDE || start + Self::WIDE > self.data.len() {
            return self.id_slow(start, end);
        }
        // SAFETY: `start + 8 * W` bytes are inside `data` (checked above).
        let (v0, v1) = unsafe { simd::masked::<W>(self.data.as_ptr().add(start), len) };
        // SAFETY: AVX2 is available (the caller's contract).
        let h = unsafe { simd::hash::<W>(v0, v1, len) };
        // `find`'s probe, written out: through `find` and a closure the product-name
        // memo took 49-53 ms against 46-47 (10M rows, alternating runs).
        let mask = self.slots.len() - 1;
        let key = slot_key(h, len, Self::WIDE);
        let mut i = h as usize;
        loop {
            let slot = self.slots[i & mask];
            if slot == 0 {
                break;
            }
            if slot >> 32 == key {
                let id = (slot as u32 - 1) as usize;
                // SAFETY: as above.
                if unsafe { simd::same::<W>(&self.words[id].0, v0, v1) } {
                    return id;
                }
            }
            i += 1;
        }
        // SAFETY: as above.
        self.insert(h, unsafe { simd::words::<W>(v0, v1) }, start, len)
    }

    /// Values longer than `8 * W` bytes, and values at the buffer's end (whose fixed
    /// words would run past it): the same hash as `id` for the latter, one over every
    /// byte for the former.
    #[cold]
    fn id_slow(&mut self, start: usize, end: usize) -> usize {
        let len = end - start;
        let value = &self.data[start..end];
        if len <= Self::WIDE {
            let mut padded = [0u8; 64];
            padded[..len].copy_from_slice(value);
            let words = masked_words::<W>(&padded, len);
            let h = hash_words(&words, len);
            return self
                .find(h, len, |id| same_words(&self.words[id].0, &words))
                .unwrap_or_else(|| self.insert(h, words, start, len));
        }
        let h = hash_long(value);
        self.find(h, len, |id| {
            let (s, l) = self.spans[id];
            l == len && self.data[s..s + len] == *value
        })
        .unwrap_or_else(|| self.insert(h, [0; W], start, len))
    }

    /// The id whose slot carries `h`'s tag and `len`, and that passes `same`.
    #[inline(always)]
    fn find(&self, h: u64, len: usize, same: impl Fn(usize) -> bool) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let key = slot_key(h, len, Self::WIDE);
        let mut i = h as usize;
        loop {
            let slot = self.slots[i & mask];
            if slot == 0 {
                return None;
            }
            if slot >> 32 == key {
                let id = (slot as u32 - 1) as usize;
                if same(id) {
                    return Some(id);
                }
            }
            i += 1;
        }
    }

    #[cold]
    fn insert(&mut self, h: u64, words: [u64; W], start: usize, len: usize) -> usize {
        let id = self.spans.len();
        self.words.push(Words(words));
        self.spans.push((start, len));
        self.place(h, len, id);
        if self.spans.len() * 4 > self.slots.len() {
            self.grow();
        }
        id
    }

    fn place(&mut self, h: u64, len: usize, id: usize) {
        let mask = self.slots.len() - 1;
        let mut i = h as usize;
        while self.slots[i & mask] != 0 {
            i += 1;
        }
        self.slots[i & mask] = (slot_key(h, len, Self::WIDE) << 32) | (id as u64 + 1);
    }

    /// Doubles the table, placing every value again.
    fn grow(&mut self) {
        self.slots = vec![0; self.slots.len() * 2];
        for id in 0..self.spans.len() {
            let (start, len) = self.spans[id];
            let h = if len <= Self::WIDE {
                hash_words(&self.words[id].0, len)
            } else {
                hash_long(&self.data[start..start + len])
            };
            self.place(h, len, id);
        }
    }
}

/// The first `W` words of `bytes` (at least `8 * W` of them), masked to a value of
/// `len` bytes.
#[inline(always)]
fn masked_words<const W: usize>(bytes: &[u8], len: usize) -> [u64; W] {
    let word = |b: &[u8], at: usize| {
        let w: &[u8; 8] = b[at..at + 8].try_into().expect("eight bytes");
        u64::from_le_bytes(*w)
    };
    std::array::from_fn(|w| word(bytes, 8 * w) & word(&MASK_BYTES, 64 - len + 8 * w))
}

/// Whether two keys' words agree: one test of their differences or'ed together (`==` on
/// the arrays compiles to a call to `memcmp`, which cost more than the rest of a row).
#[inline(always)]
fn same_words<const W: usize>(a: &[u64; W], b: &[u64; W]) -> bool {
    (0..W).fold(0, |d, w| d | (a[w] ^ b[w])) == 0
}

/// `ValueIds`'s words, hash and compare on AVX2 vectors: words 0-3 in one, 4-7 (4-5
/// for six words) in the other.
#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{fold, MASK_BYTES, SEEDS};
    use crate::kernels::lanes;
    use std::arch::x86_64::*;

    /// The value at `p` (with `8 * W` readable bytes) masked to `len` bytes.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn masked<const W: usize>(p: *const u8, len: usize) -> (__m256i, __m256i) {
        let m = MASK_BYTES.as_ptr();
        // SAFETY: the caller guarantees `8 * W` bytes at `p`; `len <= 8 * W` keeps the
        // mask reads inside MASK_BYTES (128 bytes).
        unsafe {
            let v0 = _mm256_and_si256(
                _mm256_loadu_si256(p as *const __m256i),
                _mm256_loadu_si256(m.add(64 - len) as *const __m256i),
            );
            let v1 = match W {
                4 => _mm256_setzero_si256(),
                6 => _mm256_zextsi128_si256(_mm_and_si128(
                    _mm_loadu_si128(p.add(32) as *const __m128i),
                    _mm_loadu_si128(m.add(96 - len) as *const __m128i),
                )),
                _ => _mm256_and_si256(
                    _mm256_loadu_si256(p.add(32) as *const __m256i),
                    _mm256_loadu_si256(m.add(96 - len) as *const __m256i),
                ),
            };
            (v0, v1)
        }
    }

    #[target_feature(enable = "avx2")]
    #[inline]
    fn rotate<const L: i32, const R: i32>(x: __m128i) -> __m128i {
        _mm_or_si128(_mm_slli_epi64::<L>(x), _mm_srli_epi64::<R>(x))
    }

    /// `hash_words` of the same words: word pair k rotated by `29 * k % 64`.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn hash<const W: usize>(v0: __m256i, v1: __m256i, len: usize) -> u64 {
        let mut x = _mm_xor_si128(
            _mm256_castsi256_si128(v0),
            rotate::<29, 35>(_mm256_extracti128_si256::<1>(v0)),
        );
        if W >= 6 {
            x = _mm_xor_si128(x, rotate::<58, 6>(_mm256_castsi256_si128(v1)));
        }
        if W == 8 {
            x = _mm_xor_si128(x, rotate::<23, 41>(_mm256_extracti128_si256::<1>(v1)));
        }
        let a = _mm_cvtsi128_si64(x) as u64;
        let b = _mm_extract_epi64::<1>(x) as u64;
        fold(SEEDS[0] ^ a, SEEDS[1] ^ len as u64 ^ b)
    }

    /// Whether `words` are the value's words.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn same<const W: usize>(words: &[u64; W], v0: __m256i, v1: __m256i) -> bool {
        let p = words.as_ptr();
        // SAFETY: `words` holds `8 * W` bytes (W is 4, 6 or 8), read straight from the key
        // (through a copy, a 32-byte load of four 8-byte stores would stall).
        let d = unsafe {
            let d0 = _mm256_xor_si256(_mm256_loadu_si256(p as *const __m256i), v0);
            match W {
                4 => d0,
                6 => _mm256_or_si256(
                    d0,
                    _mm256_xor_si256(
                        _mm256_zextsi128_si256(_mm_loadu_si128(p.add(4) as *const __m128i)),
                        v1,
                    ),
                ),
                _ => _mm256_or_si256(
                    d0,
                    _mm256_xor_si256(_mm256_loadu_si256(p.add(4) as *const __m256i), v1),
                ),
            }
        };
        _mm256_testz_si256(d, d) == 1
    }

    /// Whether the `8 * W` bytes at `p`, masked by `mask`, are `words`.
    ///
    /// # Safety
    /// `8 * W` bytes must be readable at `p`.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn matches<const W: usize>(
        p: *const u8,
        words: &[u64; W],
        mask: &[u64; W],
    ) -> bool {
        // SAFETY: the caller's promise.
        let d = unsafe { differs::<W>(p, words, mask) };
        _mm256_testz_si256(d, d) == 1
    }

    /// A vector that is zero exactly when the `8 * W` bytes at `p`, masked by `mask`,
    /// are `words`.
    ///
    /// # Safety
    /// `8 * W` bytes must be readable at `p`.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn differs<const W: usize>(
        p: *const u8,
        words: &[u64; W],
        mask: &[u64; W],
    ) -> __m256i {
        let (w, m) = (
            words.as_ptr() as *const __m256i,
            mask.as_ptr() as *const __m256i,
        );
        // SAFETY: the caller's `8 * W` bytes at `p`; `words` and `mask` hold `8 * W` bytes.
        unsafe {
            let d0 = _mm256_xor_si256(
                _mm256_and_si256(
                    _mm256_loadu_si256(p as *const __m256i),
                    _mm256_loadu_si256(m),
                ),
                _mm256_loadu_si256(w),
            );
            match W {
                4 => d0,
                6 => _mm256_or_si256(
                    d0,
                    _mm256_zextsi128_si256(_mm_xor_si128(
                        _mm_and_si128(
                            _mm_loadu_si128(p.add(32) as *const __m128i),
                            _mm_loadu_si128(m.add(1) as *const __m128i),
                        ),
                        _mm_loadu_si128(w.add(1) as *const __m128i),
                    )),
                ),
                _ => _mm256_or_si256(
                    d0,
                    _mm256_xor_si256(
                        _mm256_and_si256(
                            _mm256_loadu_si256(p.add(32) as *const __m256i),
                            _mm256_loadu_si256(m.add(1)),
                        ),
                        _mm256_loadu_si256(w.add(1)),
                    ),
                ),
            }
        }
    }

    /// Which of four vectors are zero, as bits 0 to 3: each vector's four words or'ed
    /// into one lane (the 4x4 words transposed by two unpacks and two lane swaps), then
    /// one compare with zero and one mask for the four.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn zero_lanes(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> u32 {
        // [a0|a1, b0|b1, a2|a3, b2|b3] and the same of c and d.
        let ab = _mm256_or_si256(_mm256_unpacklo_epi64(a, b), _mm256_unpackhi_epi64(a, b));
        let cd = _mm256_or_si256(_mm256_unpacklo_epi64(c, d), _mm256_unpackhi_epi64(c, d));
        let all = _mm256_or_si256(
            _mm256_permute2x128_si256::<0x20>(ab, cd),
            _mm256_permute2x128_si256::<0x31>(ab, cd),
        );
        let zero = _mm256_cmpeq_epi64(all, _mm256_setzero_si256());
        _mm256_movemask_pd(_mm256_castsi256_pd(zero)) as u32
    }

    /// Writes `base + i` for each bit `i` set in `bits` (< 256), in order, at `out`; the
    /// eight u16s there are all written (those past the bits set are junk).
    ///
    /// # Safety
    /// Eight u16s must be writable at `out`.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) unsafe fn write_positions(out: *mut u16, base: u16, bits: u32) {
        debug_assert!(bits < 256);
        let positions = _mm_add_epi16(_mm_set1_epi16(base as i16), lanes::set16(bits));
        // SAFETY: the caller's eight u16s at `out`.
        unsafe { _mm_storeu_si128(out as *mut __m128i, positions) };
    }

    /// The words of the two vectors.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(super) fn words<const W: usize>(v0: __m256i, v1: __m256i) -> [u64; W] {
        let mut all = [0u64; 8];
        // SAFETY: `all` holds 64 bytes.
        unsafe {
            _mm256_storeu_si256(all.as_mut_ptr() as *mut __m256i, v0);
            _mm256_storeu_si256(all.as_mut_ptr().add(4) as *mut __m256i, v1);
        }
        std::array::from_fn(|w| all[w])
    }
}

/// The wide product of `a` and `b`, its halves folded.
#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

const SEEDS: [u64; 3] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
];

/// A hash of a value's masked words and length: the even words, each rotated by its
/// own amount, xored into one side of a wide multiply and the odd ones into the other
/// (one multiply: a second cost 7% of a row; the rotations keep equal words at
/// different places from cancelling). The folded product's low bits (which index the
/// table) depend on every input bit through its high half.
#[inline(always)]
fn hash_words<const W: usize>(w: &[u64; W], len: usize) -> u64 {
    let (mut a, mut b) = (SEEDS[0], SEEDS[1] ^ len as u64);
    for k in 0..W / 2 {
        let r = (29 * k as u32) % 64;
        a ^= w[2 * k].rotate_left(r);
        b ^= w[2 * k + 1].rotate_left(r);
    }
    fold(a, b)
}

/// A hash of every byte of a long value, eight at a time.
fn hash_long(v: &[u8]) -> u64 {
    let mut h = SEEDS[0] ^ v.len() as u64;
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        h = fold(h ^ u64::from_le_bytes(c.try_into().expect("8")), SEEDS[2]);
    }
    let mut last = [0u8; 8];
    last[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    fold(h ^ u64::from_le_bytes(last), SEEDS[2])
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    #[test]
    fn each_value_once_and_early_stop() {
        let a = StringArray::from(vec![Some("a"), None, Some("b"), Some("a"), Some("b")]);
        let mut computed = Vec::new();
        let sel = select(
            &a,
            0,
            |v| {
                computed.push(v.to_string());
                v.len()
            },
            |_| true,
        );
        assert_eq!(sel.done, 5);
        assert_eq!(computed, vec!["a", "b"]);
        assert_eq!((sel.rows, sel.ids), (vec![0, 2, 3, 4], vec![0, 1, 0, 1]));
        // Only rows whose value is kept; rows from `from` on, numbered in the array.
        let sel = select(&a, 1, |v| v.to_string(), |v| v == "b");
        assert_eq!((sel.rows, sel.ids, sel.done), (vec![2, 4], vec![0, 0], 4));
        assert_eq!(sel.values, vec!["b", "a"]);
        // All distinct: stops after the 257th value (kept or not).
        let many: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        let a = StringArray::from(many);
        assert_eq!(select(&a, 0, |_| (), |_| false).done, 257);
        let sel = select(&a, 100, |_| (), |_| true);
        assert_eq!(sel.done, 257);
        assert_eq!(sel.rows, (100..357).collect::<Vec<u32>>());
        // Some rows only, in the order given.
        let a = StringArray::from(vec![Some("a"), Some("b"), None, Some("a"), Some("c")]);
        let sel = select_of(&a, &[4, 2, 3, 0, 1], |v| v.to_string(), |v| v != "b");
        assert_eq!(sel.done, 5);
        assert_eq!((sel.rows, sel.ids), (vec![4, 3, 0], vec![0, 1, 1]));
        assert_eq!(sel.values, vec!["c", "a", "b"]);
    }

    /// `select` against a direct loop on columns where one value holds most rows (the
    /// popular-value blocks), kept or not, with long values, values at the buffer's end,
    /// values that share the popular one's length or its first 32 bytes, and columns
    /// whose values run out inside a block; the next most frequent values (compared with
    /// every row of their length) kept or not, among them one of 32 bytes that a longer
    /// row starts with, and the empty value.
    #[test]
    fn popular_value_blocks_match_a_direct_loop() {
        let popular = "Microsoft Corporation";
        let frequent = ["Google LLC", "", "Thirty-two bytes, exactly here.."];
        let others = [
            "Thirty-two bytes, exactly here...",
            "Thirty-two bytes, exactly here..x",
            "Google LLC",
            "",
            "Microsoft Corporatiom",
            "Microsoft Corporation ",
            "Microsoft Corporation\0",
            "microsoft corporation",
            "A value longer than sixty-four bytes, read as all of its bytes....",
            "Microsoft® Windows® Operating System",
        ];
        // Rows longer than the length table, starting with a frequent value's bytes: they
        // are compared with the entry no row is.
        let aliases = [
            format!("{popular}{}", "-".repeat(128)),
            "x".repeat(128),
            format!("{}{}", frequent[2], "+".repeat(128)),
        ];
        let others: Vec<&str> = others
            .iter()
            .copied()
            .chain(aliases.iter().map(String::as_str))
            .collect();
        let mut state = 7u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize
        };
        for (rows, share, unique_after) in [
            (5000, 80, usize::MAX),
            (5000, 55, usize::MAX),
            (3000, 90, 2000),
            (1500, 70, usize::MAX),
            (900, 90, usize::MAX),
        ] {
            let vals: Vec<String> = (0..rows)
                .map(|r| {
                    let pick = next() % 100;
                    if r >= unique_after {
                        format!("unique {r}")
                    } else if pick < share {
                        popular.to_string()
                    } else if pick < share + 3 * (100 - share) / 4 {
                        frequent[next() % frequent.len()].to_string()
                    } else {
                        others[next() % others.len()].to_string()
                    }
                })
                .collect();
            let a = StringArray::from(vals.clone());
            let large = arrow::array::LargeStringArray::from(vals.clone());
            for (keep_popular, keep_frequent) in
                [(false, 'G'), (true, 'G'), (false, 'x'), (true, 'T')]
            {
                for from in [0, 7] {
                    let keep =
                        |v: &String| (v == popular) == keep_popular || v.starts_with(keep_frequent);
                    let sel = select(&a, from, |v| v.to_string(), keep);
                    // The direct loop.
                    let count = rows - from;
                    let limit = 256.max(count / 16);
                    let mut seen: Vec<String> = Vec::new();
                    let (mut want_rows, mut want_ids) = (Vec::new(), Vec::new());
                    let mut done = count;
                    for (i, v) in vals[from..].iter().enumerate() {
                        let id = seen.iter().position(|s| s == v).unwrap_or_else(|| {
                            seen.push(v.clone());
                            seen.len() - 1
                        });
                        if keep(v) {
                            want_rows.push((from + i) as u32);
                            want_ids.push(id as u32);
                        }
                        if seen.len() > limit {
                            done = i + 1;
                            break;
                        }
                    }
                    let case = format!(
                        "{rows} rows, {share}%, kept {keep_popular} {keep_frequent}, from {from}"
                    );
                    assert_eq!(sel.values, seen, "{case}");
                    assert_eq!(sel.done, done, "{case}");
                    assert_eq!(sel.rows, want_rows, "{case}");
                    assert_eq!(sel.ids, want_ids, "{case}");
                    // The scalar loop (other CPUs), four, six and eight words.
                    let positions: Vec<u32> = want_rows.iter().map(|r| r - from as u32).collect();
                    let to_string = |v: &str| v.to_string();
                    let scalar = [
                        memo_rows_in::<i32, String, 4, false>(
                            &a,
                            Rows::From(from),
                            to_string,
                            keep,
                        ),
                        memo_rows_in::<i32, String, 6, false>(
                            &a,
                            Rows::From(from),
                            to_string,
                            keep,
                        ),
                        memo_rows_in::<i32, String, 8, false>(
                            &a,
                            Rows::From(from),
                            to_string,
                            keep,
                        ),
                    ];
                    let mut all = Vec::from(scalar);
                    #[cfg(target_arch = "x86_64")]
                    if std::is_x86_feature_detected!("avx2") {
                        // SAFETY: AVX2 is available (checked above).
                        unsafe {
                            all.push(memo_rows_avx2::<i32, String, 6>(
                                &a,
                                Rows::From(from),
                                to_string,
                                keep,
                            ));
                            all.push(memo_rows_avx2::<i32, String, 8>(
                                &a,
                                Rows::From(from),
                                to_string,
                                keep,
                            ));
                            // Large offsets: the row-at-a-time compare on AVX2 (the
                            // eight-row one takes `i32` offsets).
                            all.push(memo_rows_avx2::<i64, String, 4>(
                                &large,
                                Rows::From(from),
                                to_string,
                                keep,
                            ));
                        }
                    }
                    for got in all {
                        assert_eq!((got.values, got.done), (seen.clone(), done), "{case}");
                        assert_eq!(
                            (got.rows, got.ids),
                            (positions.clone(), want_ids.clone()),
                            "{case}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_majority_is_half_the_rows_or_more() {
        let m = "Microsoft Corporation";
        let long = "a value longer than sixty-four bytes, the widest that is read as words";
        let cases: Vec<(Vec<&str>, usize, usize, bool)> = vec![
            (vec![m, "a", m, "b"], 0, 4, true),
            (vec!["a", m, "b", m, "c"], 0, 5, false),
            (vec!["a", m, "b", m, "c"], 1, 4, true),
            (vec![m, m, "a", "b", "c"], 0, 5, false),
            (vec!["a", "b", "a", "b"], 0, 4, true),
            (vec![m, m, m, "x"], 0, 100, true),
            (vec![m], 1, 4, false),
            // Too long to be read as fixed words.
            (vec![long, long, "a"], 0, 3, false),
        ];
        for (rows, from, n, want) in cases {
            let a = StringArray::from(rows.clone());
            assert_eq!(has_majority(&a, from, n), want, "{rows:?} from {from}");
        }
        // Nulls: the memo goes row by row, so no.
        let a = StringArray::from(vec![Some(m), Some(m), None]);
        assert!(!has_majority(&a, 0, 3));
    }

    #[test]
    fn row_ids_read_nulls_as_empty() {
        use arrow::buffer::{NullBuffer, OffsetBuffer};
        // Row 2 is null but its offsets span "zz": it groups with the empty row 3.
        let a = StringArray::new(
            OffsetBuffer::new(vec![0, 1, 2, 4, 4, 5].into()),
            b"abzzb".to_vec().into(),
            Some(NullBuffer::from(vec![true, true, false, true, true])),
        );
        assert_eq!(row_ids(&a), (vec![0, 1, 2, 2, 1], vec![0, 1, 2]));
        assert_eq!(row_ids_upto(&a, 3), Some(row_ids(&a)));
        assert_eq!(row_ids_upto(&a, 2), None);
    }

    /// Values that differ only in the high bytes of their last word (numbered names of
    /// one length) or only in their middle spread over the table and keep their own ids:
    /// a hash that lost those bits would pile them into one run of slots.
    #[test]
    fn ids_and_spread() {
        ids_and_spread_in::<4>();
        ids_and_spread_in::<6>();
        ids_and_spread_in::<8>();
    }

    fn ids_over<const W: usize, const SIMD: bool>(
        data: &[u8],
        ranges: &[(usize, usize)],
    ) -> (Vec<usize>, usize) {
        let mut ids = ValueIds::<W>::new(data);
        let got = ranges
            .iter()
            .map(|&(s, e)| ids.id_with::<SIMD>(s, e))
            .collect();
        (got, ids.count())
    }

    /// The AVX2 path, compiled for AVX2 as `memo_rows_avx2` is.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn ids_over_avx2<const W: usize>(
        data: &[u8],
        ranges: &[(usize, usize)],
    ) -> (Vec<usize>, usize) {
        ids_over::<W, true>(data, ranges)
    }

    /// The AVX2 compare of a value with a key: true for its own words, false when any
    /// one byte differs, for every length and place (a wrong compare shows only when two
    /// values share a slot and tag, which the id tests cannot arrange).
    #[test]
    fn avx2_compare_sees_every_byte() {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked above).
            unsafe {
                compare_avx2::<4>();
                compare_avx2::<6>();
                compare_avx2::<8>();
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn compare_avx2<const W: usize>() {
        for len in 1..=8 * W {
            let base: Vec<u8> = (0..8 * W).map(|i| b'a' + (i % 26) as u8).collect();
            let words = masked_words::<W>(&base, len);
            // SAFETY: `base` holds `8 * W` bytes.
            let (v0, v1) = unsafe { simd::masked::<W>(base.as_ptr(), len) };
            assert!(simd::same::<W>(&words, v0, v1), "{W} words, {len} bytes");
            assert_eq!(simd::words::<W>(v0, v1), words);
            for at in 0..len {
                let mut other = base.clone();
                other[at] ^= 0x01;
                // SAFETY: as above.
                let (o0, o1) = unsafe { simd::masked::<W>(other.as_ptr(), len) };
                assert!(
                    !simd::same::<W>(&words, o0, o1),
                    "{W} words, {len} bytes, at {at}"
                );
            }
        }
    }

    /// The AVX2 hash of a value that has `8 * W` bytes from its start.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn hash_avx2<const W: usize>(bytes: &[u8], len: usize) -> u64 {
        assert!(bytes.len() >= 8 * W && len <= 8 * W);
        // SAFETY: checked above.
        let (v0, v1) = unsafe { simd::masked::<W>(bytes.as_ptr(), len) };
        simd::hash::<W>(v0, v1, len)
    }

    fn ids_and_spread_in<const W: usize>() {
        let buckets = |vals: &[String]| {
            let mut seen = std::collections::HashSet::new();
            for v in vals {
                let mut padded = v.clone().into_bytes();
                padded.resize(8 * W + v.len(), b'?');
                let mut ids = ValueIds::<W>::new(&padded);
                ids.id(0, v.len());
                seen.insert(ids.slots.iter().position(|&s| s != 0));
            }
            seen.len()
        };
        let numbered: Vec<String> = (0..180).map(|i| format!("Company {i:03} ")).collect();
        let suffixed: Vec<String> = (0..180).map(|i| format!("Vendor{i} Corporation")).collect();
        let middle: Vec<String> = (0..180)
            .map(|i| format!("A long product {i:03} name"))
            .collect();
        let hosts: Vec<String> = (0..180)
            .map(|i| format!("DESKTOP-{i:04}.contoso.local"))
            .collect();
        let long: Vec<String> = (0..180)
            .map(|i| format!("{}{i:03}{}", "a".repeat(40), "b".repeat(20)))
            .collect();
        // 180 random values in 4096 slots land in about 176 distinct ones.
        for vals in [&numbered, &suffixed, &middle, &hosts, &long] {
            assert!(buckets(vals) > 160, "{W}: {} {}", buckets(vals), vals[0]);
        }
        // Ids over one buffer: every length from 0 to 80, values that differ only in
        // trailing NULs or in their middle, a short value at the buffer's very end;
        // enough values to grow the table twice.
        let mut vals: Vec<String> = (0..=80).map(|n| "x".repeat(n)).collect();
        vals.extend(["ab", "ab\0", "ab\0\0"].map(String::from));
        vals.extend(middle.iter().cloned());
        vals.extend(hosts.iter().cloned());
        vals.extend(long.iter().cloned());
        vals.extend((0..4000).map(|i| format!("v{i}")));
        vals.push("end".into());
        let mut data = String::new();
        let mut ranges = Vec::new();
        for v in vals.iter().chain(vals.iter().rev()) {
            ranges.push((data.len(), data.len() + v.len()));
            data.push_str(v);
        }
        let n = vals.len();
        let want: Vec<usize> = (0..n).chain((0..n).rev()).collect();
        assert_eq!(
            ids_over::<W, false>(data.as_bytes(), &ranges),
            (want.clone(), n)
        );
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is available (checked above).
            let got = unsafe { ids_over_avx2::<W>(data.as_bytes(), &ranges) };
            assert_eq!(got, (want, n), "AVX2, {W} words");
            // One hash on both paths (the table's layout does not depend on the path).
            for &(s, e) in &ranges {
                let bytes = &data.as_bytes()[s..];
                if e - s <= 8 * W && bytes.len() >= 8 * W {
                    let words = masked_words::<W>(bytes, e - s);
                    // SAFETY: as above.
                    let simd = unsafe { hash_avx2::<W>(bytes, e - s) };
                    assert_eq!(
                        simd,
                        hash_words(&words, e - s),
                        "{W} words, {:?}",
                        &data[s..e]
                    );
                }
            }
        }
    }
}
