//! String predicates with constant needles over whole Arrow string arrays, in any
//! layout. The semantics are those of `kernels::terms` (every answer agrees with
//! `Matcher::matches` on the single string); this module only chooses how to get there:
//!
//! * dictionary arrays: each distinct value is matched once, then mapped back by key;
//! * Utf8/LargeUtf8 with term needles (`has`, `has_any`, the shape of hunting
//!   filters): one pass of a `termscan::TermScanner` over the values buffer;
//! * anything else: once per distinct value while values repeat (`kernels::distinct`),
//!   else a row loop over `&str`.

use std::collections::HashSet;

use std::sync::{Arc, OnceLock};

use arrow::array::{
    downcast_dictionary_array, Array, ArrayRef, AsArray, BooleanArray, DictionaryArray,
    GenericStringArray, OffsetSizeTrait,
};
use arrow::datatypes::{ArrowDictionaryKeyType, DataType};

use super::dictionary::{self, PerValues};
use super::distinct;
use super::terms::{self, TermMatch};
use super::termscan::{complement, KeyRows, TermScanner};
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub enum Kind {
    /// has / hasprefix / hassuffix / has_any (all = false) / has_all (all = true).
    Term {
        needles: Vec<String>,
        mode: TermMatch,
        all: bool,
    },
    Contains(String),
    StartsWith(String),
    EndsWith(String),
    Equals(String),
    In(HashSet<String>),
    Regex(regex::Regex),
}

/// Where a one-needle byte test compares: the start, the end or the whole of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Affix {
    Start,
    End,
    Whole,
}

/// A compiled string predicate: needles case-mapped once when case-insensitive.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub kind: Kind,
    pub cs: bool,
    pub negated: bool,
    /// The buffer scanner of a term kind, built on first use.
    scanner: OnceLock<Option<Arc<TermScanner>>>,
    /// The answer for each value of a dictionary, for the batches sharing it.
    per_values: PerValues<Vec<bool>>,
}

/// How `eval_array` ran, for `explain()` and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    DictionaryValues,
    BufferScan,
    RowLoop,
}

impl Matcher {
    pub fn new(kind: Kind, cs: bool, negated: bool) -> Matcher {
        let fold = |s: String| if cs { s } else { terms::fold(&s).into_owned() };
        let kind = match kind {
            Kind::Term { needles, mode, all } => Kind::Term {
                needles: needles.into_iter().map(fold).collect(),
                mode,
                all,
            },
            Kind::Contains(n) => Kind::Contains(fold(n)),
            Kind::StartsWith(n) => Kind::StartsWith(fold(n)),
            Kind::EndsWith(n) => Kind::EndsWith(fold(n)),
            Kind::Equals(n) => Kind::Equals(fold(n)),
            Kind::In(set) => Kind::In(set.into_iter().map(fold).collect()),
            k @ Kind::Regex(_) => k,
        };
        Matcher {
            kind,
            cs,
            negated,
            scanner: OnceLock::new(),
            per_values: PerValues::default(),
        }
    }

    /// The term needles with their mode, for a shared scanner: (needles, mode, all).
    pub fn term_needles(&self) -> Option<(&[String], TermMatch, bool)> {
        match &self.kind {
            Kind::Term { needles, mode, all }
                if !needles.is_empty() && needles.iter().all(|n| !n.is_empty()) =>
            {
                Some((needles, *mode, *all))
            }
            _ => None,
        }
    }

    fn scanner(&self) -> Option<&Arc<TermScanner>> {
        self.scanner
            .get_or_init(|| {
                let (needles, mode, _) = self.term_needles()?;
                let keyed: Vec<(String, TermMatch)> =
                    needles.iter().map(|n| (n.clone(), mode)).collect();
                TermScanner::new(&keyed, self.cs).map(Arc::new)
            })
            .as_ref()
    }

    /// A term predicate (not negated) over every row of a plain string array: the rows
    /// its scan finds. None for other predicates and layouts.
    fn term_rows(&self, a: &dyn Array) -> Option<Vec<u32>> {
        let hits = match a.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 => self.scanner()?.scan(a).ok()?,
            _ => return None,
        };
        let (needles, _, all) = self.term_needles()?;
        if !all {
            // Any needle: the hits' rows, which come sorted (they were sorted again: the
            // pack's 64 company needles over 10M rows, `Google` in a tenth of them,
            // 29.6 -> 21.1 ms).
            let mut rows: Vec<u32> = hits.pairs.iter().map(|&(row, _)| row).collect();
            rows.dedup();
            return Some(rows);
        }
        let keys: Vec<u32> = (0..needles.len() as u32).collect();
        Some(KeyRows::new(&hits, keys.len()).rows(&keys, all))
    }

    /// The predicate on one string (null strings are `""`).
    pub fn matches(&self, s: &str) -> bool {
        // Affix and equality tests of case-insensitive needles compare in place (the
        // `terms` functions have ASCII paths; needles are already case-mapped).
        let m = match &self.kind {
            Kind::StartsWith(n) => terms::starts_with(s, n, self.cs),
            Kind::EndsWith(n) => terms::ends_with(s, n, self.cs),
            Kind::Equals(n) => terms::equals(s, n, self.cs),
            Kind::Contains(n) => terms::contains(s, n, self.cs),
            Kind::Regex(re) => re.is_match(s),
            Kind::Term { needles, mode, all } => {
                let hay = if self.cs {
                    std::borrow::Cow::Borrowed(s)
                } else {
                    terms::fold(s)
                };
                let hit = |n: &String| terms::has_term(&hay, n, *mode);
                if *all {
                    needles.iter().all(hit)
                } else {
                    needles.iter().any(hit)
                }
            }
            Kind::In(set) => {
                if self.cs {
                    set.contains(s)
                } else {
                    set.contains(&*terms::fold(s))
                }
            }
        };
        m != self.negated
    }

    /// The needle of a `startswith`, `endswith` or `==`/`=~` test, when it is ASCII.
    fn ascii_needle(&self) -> Option<(&[u8], Affix)> {
        let (n, kind) = match &self.kind {
            Kind::StartsWith(n) => (n, Affix::Start),
            Kind::EndsWith(n) => (n, Affix::End),
            Kind::Equals(n) => (n, Affix::Whole),
            _ => return None,
        };
        n.is_ascii().then_some((n.as_bytes(), kind))
    }

    /// For `startswith`, `endswith`, `==` and `=~` with one ASCII needle: the test on a
    /// row's bytes (not negated). Exact: a case-insensitive needle is compared with
    /// `terms::fold` of the row, and ASCII characters fold one to one to ASCII, so when the
    /// bytes compared are ASCII their ASCII-lowercase is the folded text there; other
    /// characters fold to non-ASCII ones but KELVIN SIGN (3 bytes, to `k`), which is why
    /// a non-ASCII row of another length may still be equal, and why non-ASCII rows go
    /// through `terms::folded_starts_with`/`folded_ends_with` (no folded copy: a
    /// `startswith "Chrome"` over 6M rows of "Microsoft® Windows® ..." took 0.7 s).
    ///
    /// `ascii_rows`: every row's bytes decide by ASCII case alone, as every row is
    /// ASCII or the needle holds no `k` (`terms::ascii_case_is_exact`): no per-row check.
    fn ascii_test(&self, ascii_rows: bool) -> Option<impl Fn(&[u8]) -> bool + '_> {
        let (n, kind) = self.ascii_needle()?;
        let cs = self.cs;
        Some(
            #[inline(always)]
            move |b: &[u8]| -> bool {
                if cs {
                    return match kind {
                        Affix::Start => b.starts_with(n),
                        Affix::End => b.ends_with(n),
                        Affix::Whole => b == n,
                    };
                }
                if ascii_rows {
                    return match kind {
                        Affix::Start => b.len() >= n.len() && b[..n.len()].eq_ignore_ascii_case(n),
                        Affix::End => {
                            b.len() >= n.len() && b[b.len() - n.len()..].eq_ignore_ascii_case(n)
                        }
                        Affix::Whole => b.eq_ignore_ascii_case(n),
                    };
                }
                if kind == Affix::Whole {
                    if b.len() == n.len() && b.is_ascii() {
                        return b.eq_ignore_ascii_case(n);
                    }
                    if !terms::may_fold_to_ascii_len(b.len(), n.len()) || b.is_ascii() {
                        return false;
                    }
                    return terms::folded_starts_with(b, n, true);
                }
                let part = match kind {
                    Affix::Start => b.get(..n.len()),
                    _ => b.len().checked_sub(n.len()).map(|i| &b[i..]),
                };
                match part {
                    Some(p) if p.is_ascii() => p.eq_ignore_ascii_case(n),
                    // Shorter than the needle and ASCII: so is the folded row.
                    None if b.is_ascii() => false,
                    _ if kind == Affix::Start => terms::folded_starts_with(b, n, false),
                    _ => terms::folded_ends_with(b, n),
                }
            },
        )
    }

    /// Whether `select_rows` tests row bytes for this predicate on plain strings.
    pub fn tests_row_bytes(&self) -> bool {
        self.ascii_needle().is_some()
    }

    /// The rows (all, or those of `rows`, in order) where the predicate holds, without a
    /// boolean array: on dictionary strings, any predicate (each value once); on plain
    /// strings, `startswith`, `endswith`, `==`, `=~` with one ASCII needle, testing each
    /// row's bytes (neither a buffer scan nor a per-value memo pays for those), and over
    /// all rows a term predicate, from its scan's hits (a popular needle, `has "Google"`
    /// in a tenth of 10M rows, spent 10 ms building and reading a boolean array). None
    /// for other predicates and layouts.
    pub fn select_rows(&self, a: &dyn Array, rows: Option<&[u32]>) -> Option<Vec<u32>> {
        if let DataType::Dictionary(..) = a.data_type() {
            return self.select_dictionary_rows(a, rows);
        }
        if let Some(found) = rows.is_none().then(|| self.term_rows(a)).flatten() {
            // Negated: the other rows, nulls included (`""` holds no term).
            return Some(if self.negated {
                complement(&found, a.len())
            } else {
                found
            });
        }
        let (needle, kind) = self.ascii_needle()?;
        fn go<O: OffsetSizeTrait>(
            m: &Matcher,
            a: &GenericStringArray<O>,
            rows: Option<&[u32]>,
            needle: &[u8],
            kind: Affix,
        ) -> Vec<u32> {
            let offsets = a.value_offsets();
            let data = a.value_data();
            // Most rows to test, case-insensitively: rows are compared by their bytes
            // without a check each when the needle holds no `k` (the bytes decide on
            // any row, `terms::ascii_case_is_exact`), else when one pass over the
            // values shows them all ASCII (skipping that pass: `FileName =~
            // "pdq-connect-agent.exe"` 12.5 -> 7 ms over 10M rows).
            let bytes_decide = !m.cs
                && (terms::ascii_case_is_exact(needle)
                    || rows.is_none_or(|r| r.len() * 8 > a.len())
                        && data[offsets[0].as_usize()..offsets[a.len()].as_usize()].is_ascii());
            let Some(test) = m.ascii_test(bytes_decide) else {
                return Vec::new();
            };
            // Equality compared byte for byte: a row of another length is not equal,
            // and its bytes are not read.
            let by_length = kind == Affix::Whole && (m.cs || bytes_decide);
            let nulls = a.logical_nulls().filter(|n| n.null_count() > 0);
            if rows.is_none() && nulls.is_none() && (m.cs || bytes_decide) {
                let row_matches = |r: usize| {
                    let (s, e) = (offsets[r].as_usize(), offsets[r + 1].as_usize());
                    test(&data[s..e])
                };
                return affix_rows(offsets, data, needle, kind, m, row_matches);
            }
            let empty = m.matches("");
            let mut out = Vec::new();
            let mut visit = |r: usize| {
                let hit = if nulls.as_ref().is_some_and(|n| n.is_null(r)) {
                    empty
                } else {
                    let (s, e) = (offsets[r].as_usize(), offsets[r + 1].as_usize());
                    if by_length && e - s != needle.len() {
                        m.negated
                    } else if by_length && needle.is_empty() {
                        !m.negated
                    } else {
                        test(&data[s..e]) != m.negated
                    }
                };
                if hit {
                    out.push(r as u32);
                }
            };
            match rows {
                Some(rows) => ahead(rows, offsets, data, &mut visit),
                None => (0..a.len()).for_each(visit),
            }
            out
        }
        match a.data_type() {
            DataType::Utf8 => Some(go(self, a.as_string::<i32>(), rows, needle, kind)),
            DataType::LargeUtf8 => Some(go(self, a.as_string::<i64>(), rows, needle, kind)),
            _ => None,
        }
    }

    /// The predicate on each value of a dictionary, kept for the batches sharing it.
    fn value_answers(&self, values: &ArrayRef) -> Result<Arc<Vec<bool>>> {
        self.per_values.get(values, |v| {
            let a = self.eval_array(v)?;
            Ok((0..a.len()).map(|i| a.value(i)).collect())
        })
    }

    /// `select_rows` on a dictionary array, for any predicate: each dictionary value is
    /// matched once, then each row reads its key's answer (no per-row boolean array).
    fn select_dictionary_rows(&self, a: &dyn Array, rows: Option<&[u32]>) -> Option<Vec<u32>> {
        fn go<K: ArrowDictionaryKeyType>(
            m: &Matcher,
            d: &DictionaryArray<K>,
            rows: Option<&[u32]>,
        ) -> Result<Vec<u32>> {
            let hit = m.value_answers(d.values())?;
            Ok(dictionary::rows_where(d, &hit, m.matches(""), rows))
        }
        if a.as_any_dictionary().values().is_empty() {
            return None;
        }
        downcast_dictionary_array!(
            a => go(self, a, rows).ok(),
            _ => None
        )
    }

    /// Which strategy `eval_array` uses for this array.
    pub fn strategy(&self, dt: &DataType) -> Strategy {
        match dt {
            DataType::Dictionary(..) => Strategy::DictionaryValues,
            DataType::Utf8 | DataType::LargeUtf8 if self.term_needles().is_some() => {
                Strategy::BufferScan
            }
            _ => Strategy::RowLoop,
        }
    }

    /// The predicate over a whole string array of any layout; never null.
    pub fn eval_array(&self, a: &dyn Array) -> Result<BooleanArray> {
        match a.data_type() {
            DataType::Dictionary(_, _) => {
                let d = a.as_any_dictionary();
                let empty = self.matches("");
                if d.values().is_empty() {
                    // Every key is null: every row reads as "".
                    return Ok(BooleanArray::from(vec![empty; a.len()]));
                }
                let values = self.value_answers(d.values())?;
                let keys = d.normalized_keys();
                let nulls = d.keys().logical_nulls();
                let out: BooleanArray = keys
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| {
                        Some(if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                            empty
                        } else {
                            values.get(k).copied().unwrap_or(empty)
                        })
                    })
                    .collect();
                Ok(out)
            }
            DataType::Utf8 => Ok(self.eval_generic(a.as_string::<i32>())),
            DataType::LargeUtf8 => Ok(self.eval_generic(a.as_string::<i64>())),
            DataType::Utf8View => {
                let v = a.as_string_view();
                Ok((0..v.len())
                    .map(|i| Some(self.matches(if v.is_null(i) { "" } else { v.value(i) })))
                    .collect())
            }
            DataType::Null => Ok((0..a.len()).map(|_| Some(self.matches(""))).collect()),
            dt => Err(Error::internal(format!("string matcher on {dt}"))),
        }
    }

    /// The byte lengths of the needles of an equality or `in` test whose needles are all
    /// ASCII (at most 64 of them); None otherwise.
    fn equality_lengths(&self) -> Option<Vec<usize>> {
        let mut lengths: Vec<usize> = match &self.kind {
            Kind::Equals(n) if n.is_ascii() => vec![n.len()],
            Kind::In(set) if set.len() <= 64 && set.iter().all(|n| n.is_ascii()) => {
                set.iter().map(String::len).collect()
            }
            _ => return None,
        };
        lengths.sort_unstable();
        lengths.dedup();
        Some(lengths)
    }

    fn eval_generic<O: OffsetSizeTrait>(&self, a: &GenericStringArray<O>) -> BooleanArray {
        if let Some(found) = self.term_rows(a) {
            let mut out = vec![self.negated; a.len()];
            for r in found {
                out[r as usize] = !self.negated;
            }
            return BooleanArray::from(out);
        }
        let empty = self.matches("");
        if let Some(test) = self.ascii_test(false) {
            // An affix or equality test with one ASCII needle: each row's bytes.
            let offsets = a.value_offsets();
            let data = a.value_data();
            return (0..a.len())
                .map(|r| {
                    Some(if a.is_null(r) {
                        empty
                    } else {
                        test(&data[offsets[r].as_usize()..offsets[r + 1].as_usize()])
                            != self.negated
                    })
                })
                .collect();
        }
        // Other tests: once per distinct value while values repeat, then row by row (`in`
        // with ASCII needles skips rows of other lengths: a case-mapped value only
        // shrinks by KELVIN SIGN, 3 bytes -> `k`). Set tests on the memo: `in~` over 10M
        // product names, most of them non-ASCII, folded every row in 1.1 s.
        let lengths = self.equality_lengths();
        let row_test = |r: usize| {
            let len = a.value_length(r).as_usize();
            let maybe = lengths.as_ref().is_none_or(|ls| {
                ls.iter()
                    .any(|&l| len == l || (!self.cs && terms::may_fold_to_ascii_len(len, l)))
            });
            if maybe {
                self.matches(a.value(r))
            } else {
                self.negated
            }
        };
        let sel = distinct::select(a, 0, |v| self.matches(v), |&m| m);
        let mut out = vec![false; a.len()];
        for &r in &sel.rows {
            out[r as usize] = true;
        }
        if let Some(nulls) = a.logical_nulls().filter(|_| empty) {
            (0..a.len())
                .filter(|&r| nulls.is_null(r))
                .for_each(|r| out[r] = true);
        }
        for (r, o) in out.iter_mut().enumerate().skip(sel.done) {
            if a.is_valid(r) {
                *o = row_test(r);
            }
        }
        BooleanArray::from(out)
    }
}

/// `select_rows` of an affix or equality test with an ASCII needle over every row of a
/// plain string array with no nulls, compared byte for byte (`m.cs`) or with every row
/// ASCII (so a byte's ASCII case is its fold): for an affix, one tight loop in which a
/// row's length and eight of its bytes decide (`AffixWord`), `row_matches` (the
/// matcher's own byte test) only the rows a longer needle's first eight bytes let
/// through and the few rows at the buffer's ends; for equality, the lengths first (below).
/// Over 10M file names: `startswith "level"` 44 -> 21 -> 8.4 ms (the first byte, then
/// eight), `startswith "svc"` (13% of the rows) 50.5 -> 8.4 ms, `endswith ".dll"` 53 ->
/// 21 -> 10 ms, `=~ "pdq-connect-agent.exe"` 27 -> 15 -> 2.3 ms.
#[inline(never)]
fn affix_rows<O: OffsetSizeTrait>(
    offsets: &[O],
    data: &[u8],
    needle: &[u8],
    kind: Affix,
    m: &Matcher,
    row_matches: impl Fn(usize) -> bool,
) -> Vec<u32> {
    let fold = if m.cs { 0 } else { 0x20 };
    let (n, negated) = (needle.len(), m.negated);
    // The byte compared first, and its place in the needle (none when it is empty).
    let at = if kind == Affix::End {
        n.saturating_sub(1)
    } else {
        0
    };
    let probe = needle.get(at).map_or(0, |b| b | fold);
    let mut out = Vec::new();
    // `== ""`, `isempty`: the lengths decide (32 at a time below when AVX2 is there).
    if n == 0 && kind == Affix::Whole && !lengths_by_simd::<O>() {
        for (r, w) in offsets.windows(2).enumerate() {
            if (w[0] == w[1]) != negated {
                out.push(r as u32);
            }
        }
        return out;
    }
    // Equality: rows of the needle's length, found eight at a time from the offsets
    // alone (and gathered without a branch a row), then tested, their bytes fetched
    // ahead (`=~ "pdq-connect-agent.exe"` over 10M file names 6.3 -> 2.3 ms; `where
    // isempty(Company) | count`, 4% of 10M rows kept, 7.9 -> 4.5 ms). Not for affixes:
    // gathering each row's first bytes (`vpgatherdd`) made `startswith "level"` 13 ->
    // 20 ms.
    #[cfg(target_arch = "x86_64")]
    if kind == Affix::Whole && lengths_by_simd::<O>() {
        // SAFETY: `O` is `i32` (not large: arrow's offsets are i32 or i64).
        let offsets32 =
            unsafe { std::slice::from_raw_parts(offsets.as_ptr().cast::<i32>(), offsets.len()) };
        // SAFETY: AVX2 is available (checked above).
        let (mut found, done) = unsafe { simd::rows_of_length(offsets32, n) };
        let rows = offsets.len() - 1;
        found.extend(
            (done..rows)
                .filter(|&r| offsets[r + 1].as_usize() - offsets[r].as_usize() == n)
                .map(|r| r as u32),
        );
        if n > 0 {
            let mut kept = Vec::new();
            ahead(&found, offsets, data, |r| {
                if data[offsets[r].as_usize()] | fold == probe && row_matches(r) {
                    kept.push(r as u32);
                }
            });
            found = kept;
        }
        return if negated {
            complement(&found, rows)
        } else {
            found
        };
    }
    let mut s = offsets.first().map_or(0, |o| o.as_usize());
    // An affix: the eight bytes at the row's start (or before its end) compared at once
    // with the needle's first (last) eight, each letter of either case: the rows are
    // decided there, with no call and no branch on their bytes (a first byte alone let
    // 2.1M of 10M file names through to a call of the full test for `startswith "svc"`).
    if let Some(word) = (kind != Affix::Whole && n > 0).then(|| AffixWord::new(needle, kind, fold))
    {
        // Rows whose eight bytes lie inside the buffer: from the first ending at 8 or
        // later (`endswith`), up to the last starting 8 before the end (`startswith`).
        let rows = offsets.len() - 1;
        let (lo, hi) = if word.end {
            (offsets[1..].partition_point(|o| o.as_usize() < 8), rows)
        } else {
            (
                0,
                offsets[..rows].partition_point(|o| o.as_usize() + 8 <= data.len()),
            )
        };
        let edge = |r: usize| {
            let len = offsets[r + 1].as_usize() - offsets[r].as_usize();
            len >= n && row_matches(r)
        };
        // The first row decided by its word (the rows before are edges, fully tested).
        let first = lo;
        // The rows matching (not negated yet): the edges' by the full test, the others'
        // by their word, in a loop with no call and no branch a row (each row's number is
        // written, the count moves past it on a hit), then by the full test for a needle
        // longer than eight bytes.
        let mut found: Vec<u32> = (0..lo).filter(|&r| edge(r)).map(|r| r as u32).collect();
        let (case, mask, want, end) = (word.case, word.mask, word.want, word.end);
        // Eight rows at a time where the offsets are `i32` and AVX2 is there.
        #[cfg(target_arch = "x86_64")]
        let lo = if lengths_by_simd::<O>() && hi > lo {
            // SAFETY: `O` is `i32` (checked: not large); AVX2 is available (checked);
            // rows `lo..hi` have their eight bytes inside `data` (above).
            unsafe {
                let offsets32 =
                    std::slice::from_raw_parts(offsets.as_ptr().cast::<i32>(), offsets.len());
                simd::affix_hits(offsets32, data, lo, hi, n, &word, &mut found)
            }
        } else {
            lo
        };
        let base = found.len();
        found.reserve(hi.saturating_sub(lo) + 1);
        let mut k = base;
        let slots = found.spare_capacity_mut();
        let mut s = offsets[lo].as_usize();
        for (i, o) in offsets[lo + 1..=hi.max(lo)].iter().enumerate() {
            let e = o.as_usize();
            let at = if end { e.wrapping_sub(8) } else { s };
            debug_assert!(at + 8 <= data.len());
            // SAFETY: rows in `lo..hi` have their eight bytes inside `data` (above).
            let w = u64::from_le(unsafe { data.as_ptr().add(at).cast::<u64>().read_unaligned() });
            let hit = (e - s >= n) & ((w | case) & mask == want);
            // SAFETY: `k - base <= i < hi - lo`, within the capacity reserved.
            unsafe { slots.get_unchecked_mut(k - base).write((lo + i) as u32) };
            k += usize::from(hit);
            s = e;
        }
        // SAFETY: the `k - base` entries after `base` were written above.
        unsafe { found.set_len(k) };
        if n > 8 {
            found.retain(|&r| (r as usize) < first || row_matches(r as usize));
        }
        found.extend((hi.max(lo)..rows).filter(|&r| edge(r)).map(|r| r as u32));
        return if negated {
            complement(&found, rows)
        } else {
            found
        };
    }
    for (r, o) in offsets.iter().skip(1).enumerate() {
        let e = o.as_usize();
        let len = e - s;
        let fits = match kind {
            Affix::Whole => len == n,
            _ => len >= n,
        };
        let maybe = fits && {
            let p = if kind == Affix::End { e - n } else { s };
            n == 0 || data[p + at] | fold == probe
        };
        if (maybe && row_matches(r)) != negated {
            out.push(r as u32);
        }
        s = e;
    }
    out
}

/// An affix needle's first eight bytes (`startswith`) or last eight (`endswith`) as one
/// word to compare a row's with: a letter's case bit is set on both sides (`fold`: 0x20
/// when case-insensitive; only letters get it, as `@` and `` ` `` differ by that bit).
struct AffixWord {
    end: bool,
    /// The bytes compared (the needle's, at most eight), their case bits, the needle's.
    mask: u64,
    case: u64,
    want: u64,
}

impl AffixWord {
    fn new(needle: &[u8], kind: Affix, fold: u8) -> AffixWord {
        let k = needle.len().min(8);
        let end = kind == Affix::End;
        // The compared bytes in the order they sit in the row's word: the needle's last
        // `k` at the top of the eight bytes before the row's end, or its first `k` at
        // the bottom of the eight from its start.
        let (part, shift) = if end {
            (&needle[needle.len() - k..], 8 * (8 - k))
        } else {
            (&needle[..k], 0)
        };
        let mut bytes = [0u8; 8];
        let mut case = [0u8; 8];
        for (i, &b) in part.iter().enumerate() {
            let letter = b.is_ascii_alphabetic() && fold != 0;
            bytes[i] = if letter { b | 0x20 } else { b };
            case[i] = if letter { 0x20 } else { 0 };
        }
        let low = if k == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * k)) - 1
        };
        AffixWord {
            end,
            mask: low << shift,
            case: u64::from_le_bytes(case) << shift,
            want: u64::from_le_bytes(bytes) << shift,
        }
    }
}

/// `visit(row)` for each row of `rows` (ascending), the lines holding the offsets and
/// first bytes of rows a little ahead fetched meanwhile: rows spread over a buffer of
/// 100 MB or more each wait for memory otherwise (`FileName startswith "level"` on the
/// 4% of 10M rows with no company, 13 -> 5.5 ms; `Company == "Adobe Inc."`, testing
/// the tenth of 10M rows of its length, 21 -> 15.6 ms in all).
#[inline(always)]
fn ahead<O: OffsetSizeTrait>(
    rows: &[u32],
    offsets: &[O],
    data: &[u8],
    mut visit: impl FnMut(usize),
) {
    const AHEAD: usize = 8;
    for (i, &r) in rows.iter().enumerate() {
        if let Some(&far) = rows.get(i + 2 * AHEAD) {
            super::prefetch(offsets, far as usize);
        }
        if let Some(o) = rows
            .get(i + AHEAD)
            .and_then(|&near| offsets.get(near as usize))
        {
            super::prefetch(data, o.as_usize());
        }
        visit(r as usize);
    }
}

/// Whether `simd::rows_of_length` runs on these offsets (`i32`, with AVX2).
fn lengths_by_simd<O: OffsetSizeTrait>() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        !O::IS_LARGE && std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use crate::kernels::lanes;

    /// `affix_rows`' word test over rows `lo..` eight at a time: their lengths from two
    /// vector loads of offsets, each row's eight bytes (at its start, or before its end)
    /// put four to a vector, compared at once, and the rows that pass written eight at
    /// a time (`lanes::set32`). Appends them to `found` and returns the row it stopped
    /// before (fewer than eight rows before `hi` are left to the caller). 10M file
    /// names, `startswith "level"` (the loop alone): 10.2 -> 6.5 ms, ~25 GB/s of the
    /// offsets and values read.
    ///
    /// # Safety
    /// Rows `lo..hi` must have eight bytes inside `data` at their start (`startswith`)
    /// or before their end (`endswith`); `hi < offsets.len()`.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn affix_hits(
        offsets: &[i32],
        data: &[u8],
        lo: usize,
        hi: usize,
        n: usize,
        word: &super::AffixWord,
        found: &mut Vec<u32>,
    ) -> usize {
        debug_assert!(hi < offsets.len());
        let (o, d) = (offsets.as_ptr(), data.as_ptr());
        let case = _mm256_set1_epi64x(word.case as i64);
        let mask = _mm256_set1_epi64x(word.mask as i64);
        let want = _mm256_set1_epi64x(word.want as i64);
        // A length at least `n` (which fits an `i32`: a row holds it, or none passes).
        let shortest = _mm256_set1_epi32(i32::try_from(n).unwrap_or(i32::MAX).saturating_sub(1));
        // Where a row's word sits: its start, or eight bytes before its end.
        let (first, back) = if word.end { (1, 8) } else { (0, 0) };
        // SAFETY: row `r`'s eight bytes at `offsets[r + first] - back` are inside `data`
        // (the caller's promise for rows `lo..hi`).
        let at = |r: usize| unsafe {
            d.add((*o.add(r + first) as u32 as usize).wrapping_sub(back))
                .cast::<i64>()
                .read_unaligned()
        };
        let hits4 = |r: usize| {
            let w = _mm256_set_epi64x(at(r + 3), at(r + 2), at(r + 1), at(r));
            let same = _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_or_si256(w, case), mask), want);
            _mm256_movemask_pd(_mm256_castsi256_pd(same)) as u32
        };
        let rows = (hi - lo) / 8 * 8;
        found.reserve(rows + 8);
        let mut k = found.len();
        let out = found.as_mut_ptr();
        let mut r = lo;
        while r < lo + rows {
            // SAFETY: offsets r..=r + 8 exist (r + 8 <= hi < offsets.len()).
            let (starts, ends) = unsafe {
                (
                    _mm256_loadu_si256(o.add(r).cast()),
                    _mm256_loadu_si256(o.add(r + 1).cast()),
                )
            };
            let long = _mm256_cmpgt_epi32(_mm256_sub_epi32(ends, starts), shortest);
            let long = _mm256_movemask_ps(_mm256_castsi256_ps(long)) as u32;
            let bits = (hits4(r) | (hits4(r + 4) << 4)) & long;
            // SAFETY: `bits < 256` indexes the table; room for eight more was reserved
            // (at most eight a step, `rows + 8` in all); only the first `count_ones`
            // of the eight written become elements.
            unsafe {
                let rows = _mm256_add_epi32(_mm256_set1_epi32(r as u32 as i32), lanes::set32(bits));
                _mm256_storeu_si256(out.add(k).cast(), rows);
            }
            k += bits.count_ones() as usize;
            r += 8;
        }
        // SAFETY: the entries up to `k` were written above.
        unsafe { found.set_len(k) };
        r
    }

    /// The rows of `n` bytes, found eight at a time and written eight at a time (no
    /// branch a row; none at all for 32 rows where no length matches), and the row it
    /// stopped before (the last rows, fewer than 32, are the caller's).
    #[target_feature(enable = "avx2")]
    pub(super) fn rows_of_length(offsets: &[i32], n: usize) -> (Vec<u32>, usize) {
        const STEP: usize = 32;
        let rows = offsets.len().saturating_sub(1);
        let mut out: Vec<u32> = Vec::new();
        let Ok(n) = i32::try_from(n) else {
            // No value of an `i32`-offset array is that long.
            return (out, rows);
        };
        let want = _mm256_set1_epi32(n);
        let p = offsets.as_ptr();
        // The lanes of rows r..r+8 of `n` bytes, as a bit mask.
        let eight = |r: usize| -> u32 {
            // SAFETY: the caller has rows r..r+8, so offsets r..r+9 exist.
            let (starts, ends) = unsafe {
                (
                    _mm256_loadu_si256(p.add(r) as *const __m256i),
                    _mm256_loadu_si256(p.add(r + 1) as *const __m256i),
                )
            };
            let lens = _mm256_sub_epi32(ends, starts);
            _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(lens, want))) as u32
        };
        let mut r = 0;
        while r + STEP <= rows {
            let masks = [eight(r), eight(r + 8), eight(r + 16), eight(r + 24)];
            if masks.iter().any(|&m| m != 0) {
                out.reserve(STEP);
                for (k, &bits) in masks.iter().enumerate() {
                    let first = _mm256_set1_epi32((r + 8 * k) as u32 as i32);
                    let lanes = lanes::set32(bits);
                    // SAFETY: room for 32 more was reserved; only the first `count_ones`
                    // of these eight become elements.
                    unsafe {
                        _mm256_storeu_si256(
                            out.as_mut_ptr().add(out.len()) as *mut __m256i,
                            _mm256_add_epi32(first, lanes),
                        );
                        out.set_len(out.len() + bits.count_ones() as usize);
                    }
                }
            }
            r += STEP;
        }
        (out, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, LargeStringArray, StringArray, StringViewArray};
    use arrow::datatypes::Int8Type;

    fn hay() -> Vec<Option<&'static str>> {
        vec![
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
            Some("\u{212A}ONNECTWISE"),
            Some("\u{212A}"),
            Some("Microsoft® Windows® Operating System"),
            Some("İ\u{212A}onnectwise"),
            Some("connect\u{212A}"),
            Some("\u{212A}K"),
            // Two needles of one `has_any` in one row: the row once.
            Some("ConnectWise ScreenConnect"),
        ]
    }

    /// `startswith`/`endswith` over whole arrays without nulls (`affix_rows`, eight bytes
    /// compared at once): needles of one to twelve bytes, letters of both cases and the
    /// bytes a case bit apart (`@` and `` ` ``, `[` and `{`), rows shorter and longer than
    /// eight bytes, at both ends of the buffer, ASCII or not; each row as `matches` has it.
    #[test]
    fn affix_words_agree_with_the_rule() {
        let alphabet: Vec<&str> = vec!["a", "A", "b", "@", "`", "[", "{", ".", "é", "k", "K", "1"];
        let mut state = 5u64;
        let mut next = move |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as usize % n
        };
        for case in 0..300 {
            let word = |len: usize, next: &mut dyn FnMut(usize) -> usize| -> String {
                (0..len).map(|_| alphabet[next(alphabet.len())]).collect()
            };
            let needle: String = word(1 + case % 12, &mut next)
                .chars()
                .filter(char::is_ascii)
                .collect();
            let rows: Vec<String> = (0..40)
                .map(|_| {
                    let len = next(16);
                    let body = word(len, &mut next);
                    match next(4) {
                        0 => format!("{}{body}", needle.to_ascii_uppercase()),
                        1 => format!("{body}{needle}"),
                        _ => body,
                    }
                })
                .collect();
            let a = StringArray::from(rows.clone());
            for kind in [
                Kind::StartsWith(needle.clone()),
                Kind::EndsWith(needle.clone()),
            ] {
                for (cs, negated) in [(false, false), (true, false), (false, true)] {
                    let m = Matcher::new(kind.clone(), cs, negated);
                    let want: Vec<u32> = (0..rows.len() as u32)
                        .filter(|&r| m.matches(&rows[r as usize]))
                        .collect();
                    // Eight rows at a time (`i32` offsets), and one at a time (large).
                    let large = LargeStringArray::from(rows.clone());
                    for a in [&a as &dyn Array, &large] {
                        let got = m.select_rows(a, None).expect("an affix selects rows");
                        assert_eq!(got, want, "{m:?} over {rows:?}");
                    }
                }
            }
        }
    }

    /// Every layout and strategy agrees with `matches` on each string.
    #[test]
    fn strategies_agree_with_the_rule() {
        let matchers = vec![
            Matcher::new(
                Kind::Term {
                    needles: vec![
                        "ConnectWise".into(),
                        "Continuum Managed".into(),
                        "ScreenConnect".into(),
                    ],
                    mode: TermMatch::Whole,
                    all: false,
                },
                false,
                false,
            ),
            Matcher::new(
                Kind::Term {
                    needles: vec!["connect".into(), "wise".into()],
                    mode: TermMatch::Prefix,
                    all: true,
                },
                false,
                false,
            ),
            Matcher::new(
                Kind::Term {
                    needles: vec!["ScreenConnect".into()],
                    mode: TermMatch::Whole,
                    all: false,
                },
                true,
                true,
            ),
            Matcher::new(Kind::Contains("CONNECT".into()), false, false),
            Matcher::new(Kind::Equals("".into()), false, false),
            Matcher::new(Kind::Equals("konnectwise".into()), false, false),
            Matcher::new(Kind::Equals("k".into()), false, true),
            Matcher::new(Kind::Equals("KONNECTWISE".into()), true, false),
            Matcher::new(
                Kind::In(
                    ["connectwise, inc.", "x screenconnect", "k"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect(),
                ),
                false,
                false,
            ),
            Matcher::new(Kind::StartsWith("screen".into()), false, false),
            Matcher::new(Kind::EndsWith("WISE".into()), true, true),
            // One ASCII needle: the byte tests of `select_rows` (KELVIN SIGN rows fold
            // to `k`; `é` rows are not ASCII).
            Matcher::new(Kind::StartsWith("KONNECT".into()), false, false),
            Matcher::new(Kind::StartsWith("k".into()), false, true),
            Matcher::new(Kind::EndsWith("wise".into()), false, false),
            Matcher::new(Kind::EndsWith("isé".into()), false, false),
            Matcher::new(Kind::Equals("connectwise, inc.".into()), true, false),
            Matcher::new(Kind::Equals("".into()), false, true),
            // `isempty` / `isnotempty` (lengths alone decide).
            Matcher::new(Kind::Equals("".into()), true, false),
            Matcher::new(Kind::Equals("".into()), true, true),
            Matcher::new(Kind::Equals("X SCREENCONNECT".into()), false, false),
            Matcher::new(Kind::Equals("y screenconnect".into()), false, false),
            Matcher::new(Kind::StartsWith("".into()), true, false),
            // Non-ASCII rows without a folded copy (`terms::folded_starts_with`).
            Matcher::new(Kind::StartsWith("microsoft".into()), false, false),
            Matcher::new(Kind::StartsWith("MICROSOFT".into()), false, true),
            Matcher::new(Kind::EndsWith("CONNECTK".into()), false, false),
            Matcher::new(Kind::Equals("kk".into()), false, false),
            Matcher::new(Kind::EndsWith("konnectwise".into()), false, false),
            Matcher::new(
                Kind::Term {
                    needles: vec!["école".into()],
                    mode: TermMatch::Whole,
                    all: false,
                },
                false,
                false,
            ),
        ];
        let h = hay();
        let ascii_values: Vec<&str> = h
            .iter()
            .flatten()
            .copied()
            .filter(|s| s.is_ascii())
            .collect();
        let arrays: Vec<Box<dyn Array>> = vec![
            Box::new(StringArray::from(h.clone())),
            Box::new(LargeStringArray::from(h.clone())),
            Box::new(StringViewArray::from(h.clone())),
            Box::new(h.clone().into_iter().collect::<DictionaryArray<Int8Type>>()),
            Box::new(StringArray::from(h.clone()).slice(2, 7)),
            // All ASCII: `select_rows` skips its per-row ASCII checks.
            Box::new(StringArray::from(
                h.iter()
                    .map(|v| v.filter(|s| s.is_ascii()))
                    .collect::<Vec<_>>(),
            )),
            // All ASCII and no nulls (`affix_rows`), whole, sliced, and large.
            Box::new(StringArray::from(ascii_values.clone())),
            Box::new(StringArray::from(ascii_values.clone()).slice(1, ascii_values.len() - 2)),
            Box::new(LargeStringArray::from(ascii_values.clone())),
        ];
        for m in &matchers {
            for a in &arrays {
                let got = m.eval_array(a.as_ref()).unwrap();
                let sa = arrow::compute::cast(a.as_ref(), &DataType::Utf8).unwrap();
                let sa = sa.as_string::<i32>();
                let mut want = Vec::new();
                for i in 0..a.len() {
                    let s = if sa.is_null(i) { "" } else { sa.value(i) };
                    assert_eq!(
                        got.value(i),
                        m.matches(s),
                        "{m:?} on {s:?} ({})",
                        a.data_type()
                    );
                    if m.matches(s) {
                        want.push(i as u32);
                    }
                }
                if let Some(rows) = m.select_rows(a.as_ref(), None) {
                    assert_eq!(rows, want, "{m:?} select_rows ({})", a.data_type());
                    let odd: Vec<u32> = (0..a.len() as u32).filter(|r| r % 2 == 1).collect();
                    let want_odd: Vec<u32> = want.iter().copied().filter(|r| r % 2 == 1).collect();
                    match m.select_rows(a.as_ref(), Some(&odd)) {
                        Some(some) => assert_eq!(some, want_odd, "{m:?} select_rows of odd rows"),
                        // A term predicate selects from a scan of every row only.
                        None => assert!(m.term_needles().is_some(), "{m:?} on odd rows"),
                    }
                }
            }
        }
    }
}
