//! Finding many term needles (`has`, `hasprefix`, `hassuffix` and their lists) in a whole
//! string array at once. One [`TermScanner`] holds every needle that any predicate looks
//! for in one column; one pass over the column's values buffer reports, per row, which
//! needles occur as terms. A single `has_any` and a pack of hundreds of rules use the same
//! pass; the term rule itself stays in `kernels::terms`.
//!
//! How the pass goes, a block of whole rows (about 64 KiB) at a time:
//!
//! * ASCII needles are found on the bytes of every row (see `scan_buffer` for why that
//!   is exact for non-ASCII rows too); non-ASCII needles, and rows holding KELVIN SIGN,
//!   are decided by the exact rule (`terms::fold` + `terms::has_term`) after an
//!   automaton over the folded row proposes candidates;
//! * for ASCII rows, with few needles: with AVX2 and two or more needles, each needle's
//!   rarest three-byte window is looked for at every position, all needles at once, 32
//!   positions per step, by nibble tables (`Windows`); else each needle's two rarest
//!   bytes are compared at every position, 32 (AVX2) or 16 (SSE2) positions per step,
//!   case-insensitively by setting bit 5; both on the buffer in place, and candidates
//!   are verified byte by byte;
//! * with many needles, one Aho-Corasick automaton runs over a lower-cased copy of the
//!   block (which stays in cache);
//! * an occurrence counts when it lies inside one row and its term boundaries hold (a
//!   term character just outside an alphanumeric needle edge breaks it).

use aho_corasick::{AhoCorasick, MatchKind};
use arrow::array::{
    downcast_dictionary_array, Array, AsArray, DictionaryArray, GenericStringArray, OffsetSizeTrait,
};
use arrow::datatypes::{ArrowDictionaryKeyType, ArrowNativeType, DataType};

use super::dictionary::{self, PerValues};
use super::distinct;
use super::terms::{self, TermMatch};
use crate::error::{Error, Result};

/// Needle texts up to which the per-needle SIMD pair scan beats the automaton.
pub const MAX_PAIR_NEEDLES: usize = 6;
/// Bytes per block of rows.
const BLOCK_BYTES: usize = 64 * 1024;

/// One needle text's SIMD fingerprint: the bytes at offsets `a` and `b`.
#[derive(Clone, Debug)]
struct Pair {
    text: usize,
    a: usize,
    b: usize,
    x: u8,
    y: u8,
}

/// Occurrences found by a scan: `(row, key)` pairs, sorted and unique.
#[derive(Clone, Debug, Default)]
pub struct Hits {
    pub pairs: Vec<(u32, u32)>,
}

/// Hits indexed by key: the rows (sorted) where each key occurs. Many predicates
/// reading one scan each look only at their own keys.
#[derive(Clone, Debug, Default)]
pub struct KeyRows(Vec<Vec<u32>>);

impl KeyRows {
    pub fn new(hits: &Hits, keys: usize) -> KeyRows {
        let mut lists = vec![Vec::new(); keys];
        for &(row, key) in &hits.pairs {
            if let Some(l) = lists.get_mut(key as usize) {
                l.push(row);
            }
        }
        KeyRows(lists)
    }

    /// How many (row, key) hits `keys` have: at least the rows `rows` returns, and at
    /// most as many as their number of keys times that.
    pub fn count(&self, keys: &[u32]) -> usize {
        keys.iter()
            .map(|k| self.0.get(*k as usize).map_or(0, Vec::len))
            .sum()
    }

    /// Rows (sorted, unique) holding any of `keys`, or all of them.
    pub fn rows(&self, keys: &[u32], all: bool) -> Vec<u32> {
        let list = |k: &u32| self.0.get(*k as usize).map_or(&[][..], |l| &l[..]);
        if all {
            let Some((first, rest)) = keys.split_first() else {
                return Vec::new();
            };
            let mut out = list(first).to_vec();
            for k in rest {
                let l = list(k);
                out.retain(|r| l.binary_search(r).is_ok());
            }
            return out;
        }
        // Any: the longest list, and the others appended, sorted once and merged into it
        // (sorting after each list cost a `has_any` of the pack's 61 company needles 60
        // ms over 10M rows, where `Google` alone holds a tenth of them; sorting them all
        // together, ~5 ms).
        let mut lists: Vec<&[u32]> = keys.iter().map(list).filter(|l| !l.is_empty()).collect();
        let Some(longest) = (0..lists.len()).max_by_key(|&i| lists[i].len()) else {
            return Vec::new();
        };
        let base = lists.swap_remove(longest);
        if lists.is_empty() {
            return base.to_vec();
        }
        let mut rest: Vec<u32> = lists.concat();
        rest.sort_unstable();
        rest.dedup();
        union_sorted(base, &rest)
    }
}

/// The rows of two sorted lists of unique rows, sorted and unique.
pub fn union_sorted(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        out.push(x.min(y));
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

/// Rows in `0..n` not in `rows` (sorted): a negated term predicate's rows.
pub fn complement(rows: &[u32], n: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(n.saturating_sub(rows.len()));
    let mut k = 0;
    for r in 0..n as u32 {
        if rows.get(k) == Some(&r) {
            k += 1;
        } else {
            out.push(r);
        }
    }
    out
}

/// Every term needle some predicate looks for in one column. A key is a needle text
/// with its mode; predicates ask for rows by keys.
#[derive(Clone, Debug)]
pub struct TermScanner {
    cs: bool,
    /// Distinct needle texts (case-mapped unless `cs`).
    texts: Vec<String>,
    /// Per key: its text and mode.
    keys: Vec<(usize, TermMatch)>,
    /// Per text: its keys with their boundary checks (left, right).
    text_keys: Vec<Vec<(u32, bool, bool)>>,
    /// Over every text: the exact path, and the block path when there are many.
    ac: AhoCorasick,
    /// Texts that can occur in ASCII rows.
    ascii_texts: usize,
    /// How a block of rows is searched for the ASCII texts.
    pass: BlockPass,
    /// The hits in each dictionary's values, for the batches sharing it.
    per_values: PerValues<Hits>,
}

/// The search of a block of rows for the ASCII texts.
#[derive(Clone, Debug)]
enum BlockPass {
    /// Two to six texts, each at least three bytes long, with AVX2: one pass by their
    /// three-byte windows finds them all.
    Windows(Windows),
    /// Other texts up to six: each one's SIMD fingerprint, a pass each.
    Pairs(Vec<Pair>),
    /// More texts: the automaton over a lower-cased copy.
    Automaton,
}

/// Up to eight ASCII texts, each found by its rarest window of three bytes: per window
/// byte, tables from the byte's low and high nibble to the set of texts (one bit each)
/// that may have it there (both cases of a letter unless case-sensitive). A position
/// where every byte's two nibbles agree on some text is a candidate for it (the
/// "Teddy" filter of Hyperscan). Over 10M company names (10M rows in memory, 1 thread)
/// the founding rule's three texts took the pair passes ~18 ms and take this one ~9
/// (the query 31 -> 21.6 ms); two texts, 24 -> 20 ms; one text stays with its pair
/// pass, which is cheaper alone. Two texts over 10M folder paths of 60 bytes, 58 -> 61
/// ms: no better on long values, but not worth a rule of its own.
#[derive(Clone, Debug)]
struct Windows {
    low: [[u8; 32]; 3],
    high: [[u8; 32]; 3],
    /// Per text bit: the text and where its window starts in it.
    texts: Vec<(usize, usize)>,
}

impl Windows {
    fn new(texts: &[String], cs: bool) -> Option<Windows> {
        #[cfg(target_arch = "x86_64")]
        let avx2 = std::is_x86_feature_detected!("avx2");
        #[cfg(not(target_arch = "x86_64"))]
        let avx2 = false;
        if !avx2 || texts.len() < 2 || texts.len() > 8 || texts.iter().any(|t| t.len() < 3) {
            return None;
        }
        let mut w = Windows {
            low: [[0; 32]; 3],
            high: [[0; 32]; 3],
            texts: Vec::new(),
        };
        for (i, t) in texts.iter().enumerate() {
            let t = t.as_bytes();
            let rare = |a: usize| t[a..a + 3].iter().map(|&b| rarity(b) as u32).sum::<u32>();
            let at = (0..=t.len() - 3)
                .max_by_key(|&a| (rare(a), std::cmp::Reverse(a)))
                .unwrap_or(0);
            let bit = 1u8 << i;
            for j in 0..3 {
                let b = t[at + j];
                let forms = if cs || !b.is_ascii_alphabetic() {
                    [b, b]
                } else {
                    [b.to_ascii_lowercase(), b.to_ascii_uppercase()]
                };
                for f in forms {
                    // The tables are read by `pshufb`, 16 entries per 128-bit lane.
                    for lane in [0, 16] {
                        w.low[j][lane + (f & 15) as usize] |= bit;
                        w.high[j][lane + (f >> 4) as usize] |= bit;
                    }
                }
            }
            w.texts.push((i, at));
        }
        Some(w)
    }
}

/// A needle's text as a scanner holds it: case-mapped unless `cs`.
fn text_of(needle: &str, cs: bool) -> String {
    if cs {
        needle.to_string()
    } else {
        terms::fold(needle).into_owned()
    }
}

/// Whether a scanner of `needles` matches each distinct value of a plain string column
/// once (the memo) rather than running the SIMD pair pass: more distinct ASCII texts
/// than that pass takes. A needle more then costs once per distinct value.
pub fn matches_each_value(needles: &[(String, TermMatch)], cs: bool) -> bool {
    let mut texts: Vec<String> = needles
        .iter()
        .map(|(n, _)| text_of(n, cs))
        .filter(|t| t.is_ascii())
        .collect();
    texts.sort_unstable();
    texts.dedup();
    texts.len() > MAX_PAIR_NEEDLES
}

impl TermScanner {
    /// A scanner for `needles` (any case; mapped here unless `cs`); the key of needle i is
    /// i. None when a needle is empty (`has ""` is true of every row: not a scan).
    pub fn new(needles: &[(String, TermMatch)], cs: bool) -> Option<TermScanner> {
        if needles.is_empty() || needles.iter().any(|(n, _)| n.is_empty()) {
            return None;
        }
        let mut texts: Vec<String> = Vec::new();
        let mut keys = Vec::new();
        for (n, mode) in needles {
            // As `text_of` (spelled out: calling it here moved the SIMD pass's code and
            // cost the founding rule 3 ms of its 30; see the commit).
            let t = if cs {
                n.clone()
            } else {
                terms::fold(n).into_owned()
            };
            let idx = texts.iter().position(|x| *x == t).unwrap_or_else(|| {
                texts.push(t);
                texts.len() - 1
            });
            keys.push((idx, *mode));
        }
        // ASCII texts first: the block path only looks for those.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| !texts[i].is_ascii());
        let texts: Vec<String> = order.iter().map(|&i| texts[i].clone()).collect();
        let keys: Vec<(usize, TermMatch)> = keys
            .into_iter()
            .map(|(t, m)| (order.iter().position(|&o| o == t).unwrap_or(0), m))
            .collect();
        let ascii_texts = texts.iter().filter(|t| t.is_ascii()).count();
        let mut text_keys = vec![Vec::new(); texts.len()];
        for (k, (t, mode)) in keys.iter().enumerate() {
            let text = &texts[*t];
            let first = text.chars().next().is_some_and(terms::is_term_char);
            let last = text.chars().next_back().is_some_and(terms::is_term_char);
            text_keys[*t].push((
                k as u32,
                first && *mode != TermMatch::Suffix,
                last && *mode != TermMatch::Prefix,
            ));
        }
        let ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&texts)
            .ok()?;
        // The one rule `matches_each_value` tells others.
        let ascii = &texts[..ascii_texts];
        let pass = if ascii_texts > MAX_PAIR_NEEDLES {
            BlockPass::Automaton
        } else if let Some(w) = Windows::new(ascii, cs) {
            BlockPass::Windows(w)
        } else {
            BlockPass::Pairs(
                ascii
                    .iter()
                    .enumerate()
                    .map(|(i, t)| fingerprint(i, t.as_bytes(), cs))
                    .collect(),
            )
        };
        Some(TermScanner {
            cs,
            texts,
            keys,
            text_keys,
            ac,
            ascii_texts,
            pass,
            per_values: PerValues::default(),
        })
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Every (row, key) occurrence in a string array of any layout (nulls read as "",
    /// which holds no non-empty term).
    pub fn scan(&self, a: &dyn Array) -> Result<Hits> {
        let mut pairs = Vec::new();
        match a.data_type() {
            DataType::Utf8 => self.scan_strings(a.as_string::<i32>(), &mut pairs),
            DataType::LargeUtf8 => self.scan_strings(a.as_string::<i64>(), &mut pairs),
            DataType::Utf8View => {
                let v = a.as_string_view();
                for i in 0..v.len() {
                    if !v.is_null(i) {
                        self.exact_row(v.value(i), i as u32, 0, &mut pairs);
                    }
                }
            }
            DataType::Dictionary(_, _) => {
                let values = self
                    .per_values
                    .get(a.as_any_dictionary().values(), |v| self.scan(v))?;
                downcast_dictionary_array!(
                    a => dictionary_pairs(a, &values.pairs, &mut pairs),
                    dt => return Err(Error::internal(format!("term scan on {dt}")))
                );
            }
            DataType::Null => {}
            dt => return Err(Error::internal(format!("term scan on {dt}"))),
        }
        Ok(Hits { pairs })
    }

    /// The exact rule on one row: the automaton over the (folded) row proposes texts,
    /// `terms::has_term` decides each key. `from`: only texts from this index on.
    fn exact_row(&self, s: &str, row: u32, from: usize, out: &mut Vec<(u32, u32)>) {
        let hay = if self.cs {
            std::borrow::Cow::Borrowed(s)
        } else {
            terms::fold(s)
        };
        let start = out.len();
        let mut seen = Vec::new();
        for m in self.ac.find_overlapping_iter(hay.as_bytes()) {
            let t = m.pattern().as_usize();
            if t < from || seen.contains(&t) {
                continue;
            }
            seen.push(t);
            for &(k, _, _) in &self.text_keys[t] {
                if terms::has_term(&hay, &self.texts[t], self.keys[k as usize].1) {
                    out.push((row, k));
                }
            }
        }
        out[start..].sort_unstable();
    }

    /// Few needles: the SIMD pair scan of the buffer, unless one value holds half of
    /// the first rows or its first rows show the needles in a quarter of the rows or
    /// more; then (and for many needles) the distinct-value memo. With a value that
    /// common (telemetry's company and product names: "Microsoft Corporation" in 78%
    /// of the benchmark's rows) the memo compares most rows with one value of their
    /// length, ~1 ns a row, where the buffer pass reads every byte for its needles:
    /// over 10M rows, 1 thread, the founding rule's three company needles 26 -> 14 ms,
    /// three product needles 42 -> 23 ms; file names and folder paths have no such
    /// value and stay with the pass (the memo, hashing each row: 19 -> 50 ms, 50 -> 72
    /// ms). Each occurrence costs the buffer pass ~20 ns to place and check: past a
    /// quarter of the rows the memo takes the rest (`has "Microsoft"` 182 -> 105 ms).
    fn scan_strings<O: OffsetSizeTrait>(
        &self,
        a: &GenericStringArray<O>,
        out: &mut Vec<(u32, u32)>,
    ) {
        const PROBE_ROWS: usize = 4096;
        /// Rows the majority is looked for in.
        const MAJORITY_ROWS: usize = 256;
        let n = a.len();
        let mut from = 0;
        if !matches!(self.pass, BlockPass::Automaton)
            && !distinct::has_majority(a, 0, MAJORITY_ROWS)
        {
            let probe = n.min(PROBE_ROWS);
            self.scan_buffer(a, 0, probe, out);
            if out.len() * 4 < probe || probe == n {
                self.scan_buffer(a, probe, n, out);
                return;
            }
            from = probe;
        }
        let done = self.scan_distinct(a, from, out);
        if done < n {
            self.scan_buffer(a, done, n, out);
        }
    }

    /// Each distinct value of the rows from `from` on is matched once (by the exact rule)
    /// and its keys are reused for every row holding it (`kernels::distinct`). Returns
    /// the row it stopped before: when the values turn out mostly distinct, the rest is
    /// left to the buffer pass.
    fn scan_distinct<O: OffsetSizeTrait>(
        &self,
        a: &GenericStringArray<O>,
        from: usize,
        out: &mut Vec<(u32, u32)>,
    ) -> usize {
        let sel = distinct::select(
            a,
            from,
            |value| {
                let mut hits = Vec::new();
                self.exact_row(value, 0, 0, &mut hits);
                hits.into_iter().map(|(_, k)| k).collect::<Vec<u32>>()
            },
            |keys| !keys.is_empty(),
        );
        for (&row, &id) in sel.rows.iter().zip(&sel.ids) {
            out.extend(sel.values[id as usize].iter().map(|&k| (row, k)));
        }
        from + sel.done
    }

    /// The buffer pass over rows `from_row..n`. ASCII needles are found on the bytes, in
    /// every row: an ASCII needle can only match ASCII characters, and case mapping sends every non-ASCII
    /// character to a non-ASCII one (but KELVIN SIGN, to `k`: rows holding it take the
    /// exact path) without changing whether it is a term character, so ASCII case
    /// folding plus a decoded neighbour at each edge is the exact rule (both facts are
    /// checked over all of Unicode in the tests). Non-ASCII needles can only match rows
    /// with non-ASCII bytes; those rows take the exact path for them.
    fn scan_buffer<O: OffsetSizeTrait>(
        &self,
        a: &GenericStringArray<O>,
        from_row: usize,
        n: usize,
        out: &mut Vec<(u32, u32)>,
    ) {
        let offsets = a.value_offsets();
        let data = a.value_data();
        let nulls = a.logical_nulls();
        let has_non_ascii_texts = self.ascii_texts < self.texts.len();
        let kelvin = memchr::memmem::Finder::new(terms::KELVIN);
        let mut lower: Vec<u8> = Vec::new();
        let mut rel: Vec<usize> = Vec::new();
        // Rows decided by the exact rule for every text, and rows needing it for the
        // non-ASCII texts only.
        let mut exact_all: Vec<usize> = Vec::new();
        let mut exact_some: Vec<usize> = Vec::new();
        let mut found: Vec<(u32, u32)> = Vec::new();
        let mut r0 = from_row;
        let mut guess = 1;
        while r0 < n {
            let b0 = offsets[r0].as_usize();
            // The rows whose bytes end within BLOCK_BYTES of the block's start (at least
            // one), stepping from the previous block's row count: a step a row from
            // `r0` cost the founding rule ~2 ms over 10M rows (30.3 -> 28.0 ms without
            // it), bisection as much (its probes miss the cache).
            let mut r1 = (r0 + guess).clamp(r0 + 1, n);
            while r1 < n && offsets[r1 + 1].as_usize() - b0 <= BLOCK_BYTES {
                r1 += 1;
            }
            while r1 > r0 + 1 && offsets[r1].as_usize() - b0 > BLOCK_BYTES {
                r1 -= 1;
            }
            guess = r1 - r0;
            let b1 = offsets[r1].as_usize();
            rel.clear();
            rel.extend(offsets[r0..=r1].iter().map(|o| o.as_usize() - b0));
            let block = &data[b0..b1];
            let mut rows = RowCursor { rel: &rel, row: 0 };
            exact_all.clear();
            exact_some.clear();
            if (has_non_ascii_texts || !self.cs) && !block.is_ascii() {
                if !self.cs {
                    for pos in kelvin.find_iter(block) {
                        let r = r0 + rows.at(pos);
                        if exact_all.last() != Some(&r) {
                            exact_all.push(r);
                        }
                    }
                }
                if has_non_ascii_texts {
                    for r in r0..r1 {
                        if !block[rel[r - r0]..rel[r - r0 + 1]].is_ascii()
                            && exact_all.binary_search(&r).is_err()
                        {
                            exact_some.push(r);
                        }
                    }
                }
            }
            found.clear();
            if self.ascii_texts > 0 {
                let mut verify = |s: usize, t: usize, equal_checked: bool| {
                    let text = self.texts[t].as_bytes();
                    let e = s + text.len();
                    let row = rows.at(s);
                    let (rs, re) = (rel[row], rel[row + 1]);
                    if e > re {
                        return;
                    }
                    if !equal_checked {
                        let got = &block[s..e];
                        let same = if self.cs {
                            got == text
                        } else {
                            got.eq_ignore_ascii_case(text)
                        };
                        if !same {
                            return;
                        }
                    }
                    let left_ok = s == rs || !term_char_before(&block[rs..s]);
                    let right_ok = e == re || !term_char_after(&block[e..re]);
                    for &(k, need_left, need_right) in &self.text_keys[t] {
                        if (!need_left || left_ok) && (!need_right || right_ok) {
                            found.push(((r0 + row) as u32, k));
                        }
                    }
                };
                match &self.pass {
                    #[cfg(target_arch = "x86_64")]
                    BlockPass::Windows(w) => {
                        let mut candidate = |pos: usize, bits: u8| {
                            let mut bits = bits;
                            while bits != 0 {
                                let (t, at) = w.texts[bits.trailing_zeros() as usize];
                                if pos >= at {
                                    verify(pos - at, t, false);
                                }
                                bits &= bits - 1;
                            }
                        };
                        let rest = &data[b0..];
                        // SAFETY: `Windows` exist only where AVX2 does.
                        let done =
                            unsafe { simd::windows_avx2(rest, block.len(), w, &mut candidate) };
                        // The last positions of the array, one by one.
                        for pos in done..block.len() {
                            candidate(pos, u8::MAX >> (8 - w.texts.len()));
                        }
                    }
                    BlockPass::Pairs(pairs) => {
                        for p in pairs {
                            let len = self.texts[p.text].len();
                            if block.len() >= len {
                                pair_candidates(
                                    &data[b0..],
                                    block.len() - len + 1,
                                    p,
                                    self.cs,
                                    |s| verify(s, p.text, false),
                                );
                            }
                        }
                    }
                    _ => {
                        // The automaton (and, off x86_64, where no `Windows` exist).
                        let hay: &[u8] = if self.cs {
                            block
                        } else {
                            lower.clear();
                            lower.extend_from_slice(block);
                            lower.make_ascii_lowercase();
                            &lower
                        };
                        for m in self.ac.find_overlapping_iter(hay) {
                            let t = m.pattern().as_usize();
                            if t < self.ascii_texts {
                                verify(m.start(), t, true);
                            }
                        }
                    }
                }
            }
            if !exact_all.is_empty() {
                found.retain(|(r, _)| exact_all.binary_search(&(*r as usize)).is_err());
                for &r in &exact_all {
                    self.exact_row(a.value(r), r as u32, 0, &mut found);
                }
            }
            for &r in &exact_some {
                self.exact_row(a.value(r), r as u32, self.ascii_texts, &mut found);
            }
            if let Some(nulls) = &nulls {
                found.retain(|(r, _)| nulls.is_valid(*r as usize));
            }
            found.sort_unstable();
            found.dedup();
            out.extend_from_slice(&found);
            r0 = r1;
        }
    }
}

/// The row of a block holding a byte position. Candidates come mostly in increasing
/// positions, often in nearby rows (a popular vendor's name in every tenth row): the
/// cursor steps forward a few rows, and searches only on a long jump or a step back.
struct RowCursor<'a> {
    /// Row start offsets within the block, then the block's length.
    rel: &'a [usize],
    row: usize,
}

impl RowCursor<'_> {
    #[inline]
    fn at(&mut self, pos: usize) -> usize {
        const STEPS: usize = 8;
        let rel = self.rel;
        if pos >= rel[self.row] {
            for _ in 0..STEPS {
                if rel[self.row + 1] > pos {
                    return self.row;
                }
                self.row += 1;
            }
        }
        self.row = rel.partition_point(|&o| o <= pos) - 1;
        self.row
    }
}

/// Whether the character ending `before` (valid UTF-8 up to its end) is a term character.
#[inline]
fn term_char_before(before: &[u8]) -> bool {
    match before.last() {
        None => false,
        Some(b) if b.is_ascii() => b.is_ascii_alphanumeric(),
        Some(_) => {
            // Back to the lead byte (at most 4 bytes).
            let from = before.len().saturating_sub(4);
            let tail = &before[from..];
            let lead = tail.iter().rposition(|b| (b & 0xC0) != 0x80).unwrap_or(0);
            std::str::from_utf8(&tail[lead..])
                .ok()
                .and_then(|s| s.chars().next())
                .is_some_and(terms::is_term_char)
        }
    }
}

/// Whether the character starting `after` is a term character.
#[inline]
fn term_char_after(after: &[u8]) -> bool {
    match after.first() {
        None => false,
        Some(b) if b.is_ascii() => b.is_ascii_alphanumeric(),
        Some(_) => {
            let end = after.len().min(4);
            let s = match std::str::from_utf8(&after[..end]) {
                Ok(s) => s,
                Err(e) => std::str::from_utf8(&after[..e.valid_up_to()]).unwrap_or(""),
            };
            s.chars().next().is_some_and(terms::is_term_char)
        }
    }
}

/// How rare a byte is in the text of process metadata, file names and URLs: higher is
/// rarer. Letters by their frequency in English; spaces and separators are common.
fn rarity(b: u8) -> u8 {
    const LETTERS: &[u8] = b"etaoinsrhldcumfpgwybvkxjqz";
    let l = b.to_ascii_lowercase();
    if let Some(i) = LETTERS.iter().position(|&c| c == l) {
        return 10 + i as u8;
    }
    match b {
        b' ' => 0,
        b'.' | b'-' | b'\\' | b'/' | b',' => 5,
        b'0'..=b'9' => 20,
        _ => 30,
    }
}

/// The two rarest bytes of an ASCII needle (one byte: twice).
fn fingerprint(text: usize, t: &[u8], cs: bool) -> Pair {
    let mut idx: Vec<usize> = (0..t.len()).collect();
    idx.sort_by_key(|&i| (std::cmp::Reverse(rarity(t[i])), i));
    let a = idx[0];
    let b = idx.get(1).copied().unwrap_or(a);
    let fold = |c: u8| if cs { c } else { c | 0x20 };
    Pair {
        text,
        a,
        b,
        x: fold(t[a]),
        y: fold(t[b]),
    }
}

/// Calls `f(s)` for every start `s < starts` where the pair's bytes match (bit 5 set on
/// both sides when case-insensitive: a superset of the case-insensitive matches, verified
/// by the caller). `data[s + a]` and `data[s + b]` must exist for every such `s`.
fn pair_candidates(data: &[u8], starts: usize, p: &Pair, cs: bool, mut f: impl FnMut(usize)) {
    #[cfg(target_arch = "x86_64")]
    let mut s = if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is available (checked above); the function bounds its loads.
        unsafe { simd::pairs_avx2(data, starts, p, cs, &mut f) }
    } else {
        // SAFETY: SSE2 is part of x86_64; the function bounds its loads.
        unsafe { simd::pairs_sse2(data, starts, p, cs, &mut f) }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let mut s = 0;
    let mask = if cs { 0 } else { 0x20 };
    while s < starts {
        if data[s + p.a] | mask == p.x && data[s + p.b] | mask == p.y {
            f(s);
        }
        s += 1;
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::Pair;
    use std::arch::x86_64::*;

    /// Calls `f(position, texts)` for each position below `starts` where some texts'
    /// windows may start (a superset: the caller verifies), 32 positions a step while
    /// every load stays inside `data`; returns where it stopped.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn windows_avx2(
        data: &[u8],
        starts: usize,
        w: &super::Windows,
        f: &mut impl FnMut(usize, u8),
    ) -> usize {
        let limit = starts.min((data.len() + 1).saturating_sub(2 + 32));
        let table = |t: &[u8; 32]| _mm256_loadu_si256(t.as_ptr() as *const __m256i);
        let low = [table(&w.low[0]), table(&w.low[1]), table(&w.low[2])];
        let high = [table(&w.high[0]), table(&w.high[1]), table(&w.high[2])];
        let nibble = _mm256_set1_epi8(0x0f);
        let ptr = data.as_ptr();
        let mut s = 0;
        while s < limit {
            let mut found = _mm256_set1_epi8(-1);
            for j in 0..3 {
                // SAFETY: s + j + 32 <= s + 34 <= data.len() by `limit`.
                let v = _mm256_loadu_si256(ptr.add(s + j) as *const __m256i);
                let lo = _mm256_and_si256(v, nibble);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nibble);
                found = _mm256_and_si256(
                    found,
                    _mm256_and_si256(
                        _mm256_shuffle_epi8(low[j], lo),
                        _mm256_shuffle_epi8(high[j], hi),
                    ),
                );
            }
            if _mm256_testz_si256(found, found) == 0 {
                let zero = _mm256_cmpeq_epi8(found, _mm256_setzero_si256());
                let mut lanes = !(_mm256_movemask_epi8(zero) as u32);
                let mut bytes = [0u8; 32];
                _mm256_storeu_si256(bytes.as_mut_ptr() as *mut __m256i, found);
                while lanes != 0 {
                    let i = lanes.trailing_zeros() as usize;
                    if s + i < starts {
                        f(s + i, bytes[i]);
                    }
                    lanes &= lanes - 1;
                }
            }
            s += 32;
        }
        s.min(starts)
    }

    /// Vector steps while every load stays inside `data`; returns where it stopped.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn pairs_avx2(
        data: &[u8],
        starts: usize,
        p: &Pair,
        cs: bool,
        f: &mut impl FnMut(usize),
    ) -> usize {
        let reach = p.a.max(p.b) + 32;
        let limit = starts.min((data.len() + 1).saturating_sub(reach));
        let vx = _mm256_set1_epi8(p.x as i8);
        let vy = _mm256_set1_epi8(p.y as i8);
        let bit = _mm256_set1_epi8(if cs { 0 } else { 0x20 });
        let ptr = data.as_ptr();
        let mut s = 0;
        while s + 32 <= limit {
            // SAFETY: s + max(a, b) + 32 <= data.len() by `limit`.
            let ca = _mm256_loadu_si256(ptr.add(s + p.a) as *const __m256i);
            let cb = _mm256_loadu_si256(ptr.add(s + p.b) as *const __m256i);
            let m = _mm256_and_si256(
                _mm256_cmpeq_epi8(_mm256_or_si256(ca, bit), vx),
                _mm256_cmpeq_epi8(_mm256_or_si256(cb, bit), vy),
            );
            let mut bits = _mm256_movemask_epi8(m) as u32;
            while bits != 0 {
                f(s + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
            s += 32;
        }
        s
    }

    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn pairs_sse2(
        data: &[u8],
        starts: usize,
        p: &Pair,
        cs: bool,
        f: &mut impl FnMut(usize),
    ) -> usize {
        let reach = p.a.max(p.b) + 16;
        let limit = starts.min((data.len() + 1).saturating_sub(reach));
        let vx = _mm_set1_epi8(p.x as i8);
        let vy = _mm_set1_epi8(p.y as i8);
        let bit = _mm_set1_epi8(if cs { 0 } else { 0x20 });
        let ptr = data.as_ptr();
        let mut s = 0;
        while s + 16 <= limit {
            // SAFETY: s + max(a, b) + 16 <= data.len() by `limit`.
            let ca = _mm_loadu_si128(ptr.add(s + p.a) as *const __m128i);
            let cb = _mm_loadu_si128(ptr.add(s + p.b) as *const __m128i);
            let m = _mm_and_si128(
                _mm_cmpeq_epi8(_mm_or_si128(ca, bit), vx),
                _mm_cmpeq_epi8(_mm_or_si128(cb, bit), vy),
            );
            let mut bits = _mm_movemask_epi8(m) as u32;
            while bits != 0 {
                f(s + bits.trailing_zeros() as usize);
                bits &= bits - 1;
            }
            s += 16;
        }
        s
    }
}

/// A dictionary array's (row, key) pairs from its values' pairs (sorted by value): the
/// rows whose value holds any key, found by `dictionary::rows_where` (no row is read
/// when no value does), each given its value's keys. Null rows read as "", which holds
/// no term.
fn dictionary_pairs<K: ArrowDictionaryKeyType>(
    d: &DictionaryArray<K>,
    value_pairs: &[(u32, u32)],
    out: &mut Vec<(u32, u32)>,
) {
    let n = d.values().len();
    let mut per_value: Vec<(usize, usize)> = vec![(0, 0); n];
    let mut i = 0;
    while i < value_pairs.len() {
        let v = value_pairs[i].0 as usize;
        let start = i;
        while i < value_pairs.len() && value_pairs[i].0 as usize == v {
            i += 1;
        }
        per_value[v] = (start, i);
    }
    let held: Vec<bool> = per_value.iter().map(|&(s, e)| e > s).collect();
    let keys = d.keys().values();
    for row in dictionary::rows_where(d, &held, false, None) {
        let (s, e) = per_value[keys[row as usize].as_usize()];
        out.extend(value_pairs[s..e].iter().map(|&(_, key)| (row, key)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{LargeStringArray, StringArray};

    fn reference(s: &str, needle: &str, mode: TermMatch, cs: bool) -> bool {
        terms::has(s, needle, cs, mode)
    }

    /// Every (row, key) the scanner reports agrees with the term rule, for few needles
    /// (SIMD pairs) and many (automaton), case-sensitive or not, with and without
    /// non-ASCII rows, nulls and slices.
    #[test]
    fn scanner_agrees_with_the_term_rule() {
        let rows: Vec<Option<&str>> = vec![
            Some("ConnectWise, Inc."),
            Some("ScreenConnectorz"),
            None,
            Some("x screenconnect"),
            Some("ÉCOLE ScreenConnect"),
            Some("Continuum  Managed"),
            Some("Continuum Managed LLC"),
            Some("a_connectwise_b"),
            Some(""),
            Some("KONNECTWISE"),
            Some("connectwisé"),
            Some("server.action1.com:443"),
            Some("x.server.action1.comm"),
            Some("DWSNET OÜ"),
            Some("dwsnet oü"),
            Some("c"),
            Some("https://rmm.datto.com/path"),
            Some("\u{212A}onnectwise x"),
            Some("Ωconnectwise ™connectwise"),
            Some("connectwise™ ŻScreenConnect"),
            Some("Microsoft® Windows® ConnectWise"),
        ];
        let few = ["ConnectWise", "Continuum Managed", "ScreenConnect"];
        let many = [
            "ConnectWise",
            "Continuum Managed",
            "ScreenConnect",
            "server.action1.com",
            "action1",
            "DWSNET OÜ",
            "datto.com",
            "c",
            "Connect",
            "com",
        ];
        let modes = [TermMatch::Whole, TermMatch::Prefix, TermMatch::Suffix];
        let arrays: Vec<Box<dyn Array>> = vec![
            Box::new(StringArray::from(rows.clone())),
            Box::new(LargeStringArray::from(rows.clone())),
            Box::new(StringArray::from(rows.clone()).slice(3, 9)),
            // More rows than the buffer pass probes, the needles in over a quarter of
            // them: the distinct-value memo takes over after the probe.
            Box::new(StringArray::from(rows.repeat(300))),
            Box::new(LargeStringArray::from(rows.repeat(300)).slice(5, 5000)),
            // One value in over half the rows, no nulls: the memo from the first row,
            // few needles too.
            Box::new(StringArray::from(
                rows.iter()
                    .flatten()
                    .flat_map(|&r| [r, "Microsoft Corporation", "Microsoft Corporation"])
                    .collect::<Vec<&str>>(),
            )),
            Box::new(arrow::array::StringViewArray::from(rows.clone())),
            Box::new(
                rows.clone()
                    .into_iter()
                    .collect::<arrow::array::DictionaryArray<arrow::datatypes::Int16Type>>(),
            ),
        ];
        for set in [&few[..], &many[..]] {
            for cs in [false, true] {
                let needles: Vec<(String, TermMatch)> = set
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.to_string(), modes[i % 3]))
                    .collect();
                let sc = TermScanner::new(&needles, cs).unwrap();
                for a in &arrays {
                    let hits = sc.scan(a.as_ref()).unwrap();
                    let strs = arrow::compute::cast(a.as_ref(), &DataType::Utf8).unwrap();
                    let strs = strs.as_string::<i32>();
                    let mut want = Vec::new();
                    for r in 0..a.len() {
                        let s = if strs.is_null(r) { "" } else { strs.value(r) };
                        for (k, (n, m)) in needles.iter().enumerate() {
                            if reference(s, n, *m, cs) {
                                want.push((r as u32, k as u32));
                            }
                        }
                    }
                    assert_eq!(hits.pairs, want, "cs={cs} {set:?} on {}", a.data_type());
                }
            }
        }
    }

    /// Long rows spanning blocks, occurrences at block and buffer edges.
    #[test]
    fn blocks_and_edges() {
        let long = format!("{} ConnectWise", "x".repeat(70_000));
        let rows: Vec<String> = (0..40)
            .map(|i| match i % 4 {
                0 => long.clone(),
                1 => "connectwise".to_string(),
                2 => format!("{}connectwise", "y ".repeat(i * 1000)),
                _ => "noise".to_string(),
            })
            .collect();
        let a = StringArray::from(rows.clone());
        let sc = TermScanner::new(&[("ConnectWise".to_string(), TermMatch::Whole)], false).unwrap();
        let got = KeyRows::new(&sc.scan(&a).unwrap(), 1).rows(&[0], false);
        let want: Vec<u32> = (0..40).filter(|i| i % 4 != 3).map(|i| i as u32).collect();
        assert_eq!(got, want);
    }

    /// The two facts the buffer pass relies on, over all of Unicode: case mapping sends
    /// no non-ASCII character to ASCII but KELVIN SIGN, and never changes whether a
    /// character is a term character.
    #[test]
    fn case_mapping_keeps_ascii_apart_and_term_chars_alike() {
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let f = terms::fold_char(c);
            if !c.is_ascii() && f.is_ascii() {
                assert_eq!(c, '\u{212A}', "{c:?} folds to ASCII {f:?}");
            }
            assert_eq!(
                terms::is_term_char(c),
                terms::is_term_char(f),
                "{c:?} -> {f:?}"
            );
        }
    }

    #[test]
    fn rows_any_and_all() {
        let h = Hits {
            pairs: vec![(0, 0), (0, 1), (2, 1), (5, 0), (5, 1), (5, 2)],
        };
        let k = KeyRows::new(&h, 4);
        assert_eq!(k.rows(&[0, 1], true), vec![0, 5]);
        assert_eq!(k.rows(&[0, 1], false), vec![0, 2, 5]);
        assert_eq!(k.rows(&[2], false), vec![5]);
        assert_eq!(k.rows(&[1, 3], true), Vec::<u32>::new());
        assert_eq!(k.rows(&[3], false), Vec::<u32>::new());
        assert_eq!(k.rows(&[0, 1, 2], true), vec![5]);
        assert_eq!(k.rows(&[], false), Vec::<u32>::new());
        assert_eq!(k.rows(&[1, 1, 3], false), vec![0, 2, 5]);
        assert_eq!(union_sorted(&[1, 3, 5], &[2, 3, 6]), vec![1, 2, 3, 5, 6]);
        assert_eq!(union_sorted(&[], &[4]), vec![4]);
        assert_eq!(union_sorted(&[4, 9], &[]), vec![4, 9]);
        // Lists of any sizes (one holding most rows, as `Google` does), overlapping:
        // the union, sorted and unique, as a set makes it.
        let mut state = 11u64;
        let mut next = move |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        for case in 0..200 {
            let keys = 1 + next(5) as u32;
            let mut pairs = Vec::new();
            for row in 0..(50 + next(400)) as u32 {
                for key in 0..keys {
                    let share = if key == 0 { 60 } else { 4 + case % 7 };
                    if next(100) < share {
                        pairs.push((row, key));
                    }
                }
            }
            let k = KeyRows::new(
                &Hits {
                    pairs: pairs.clone(),
                },
                keys as usize,
            );
            let asked: Vec<u32> = (0..keys).filter(|_| next(3) > 0).collect();
            let want: std::collections::BTreeSet<u32> = pairs
                .iter()
                .filter(|(_, key)| asked.contains(key))
                .map(|&(row, _)| row)
                .collect();
            assert_eq!(
                k.rows(&asked, false),
                want.into_iter().collect::<Vec<_>>(),
                "case {case}"
            );
        }
    }
}
