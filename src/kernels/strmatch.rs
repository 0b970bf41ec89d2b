//! String predicates with constant needles over whole Arrow string arrays, in any
//! layout. The semantics are those of `kernels::terms` (every answer agrees with
//! `Matcher::matches` on the single string); this module only chooses how to get there:
//!
//! * dictionary arrays: each distinct value is matched once, then mapped back by key;
//! * Utf8/LargeUtf8 with case-insensitive ASCII term needles (`has`, `has_any`, the
//!   shape of hunting filters): one Aho-Corasick pass over the lower-cased values
//!   buffer, hits mapped to rows through the offsets, term boundaries checked in
//!   place; rows holding any non-ASCII byte are re-checked with the exact rule;
//! * anything else: a row loop over `&str` without allocation.

use std::collections::HashSet;

use aho_corasick::{AhoCorasick, MatchKind};
use arrow::array::{Array, AsArray, BooleanArray, GenericStringArray, OffsetSizeTrait};
use arrow::datatypes::DataType;

use super::terms::{self, TermMatch};
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

/// A compiled string predicate: needles case-mapped once when case-insensitive.
#[derive(Clone, Debug)]
pub struct Matcher {
    pub kind: Kind,
    pub cs: bool,
    pub negated: bool,
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
        Matcher { kind, cs, negated }
    }

    /// The predicate on one string (null strings are `""`).
    pub fn matches(&self, s: &str) -> bool {
        let hay = if self.cs || matches!(self.kind, Kind::Regex(_)) {
            std::borrow::Cow::Borrowed(s)
        } else {
            terms::fold(s)
        };
        let m = match &self.kind {
            Kind::Term { needles, mode, all } => {
                let hit = |n: &String| terms::has_term(&hay, n, *mode);
                if *all {
                    needles.iter().all(hit)
                } else {
                    needles.iter().any(hit)
                }
            }
            Kind::Contains(n) => hay.contains(n.as_str()),
            Kind::StartsWith(n) => hay.starts_with(n.as_str()),
            Kind::EndsWith(n) => hay.ends_with(n.as_str()),
            Kind::Equals(n) => *hay == **n,
            Kind::In(set) => set.contains(&*hay),
            Kind::Regex(re) => re.is_match(&hay),
        };
        m != self.negated
    }

    /// Which strategy `eval_array` uses for this array.
    pub fn strategy(&self, dt: &DataType) -> Strategy {
        match dt {
            DataType::Dictionary(..) => Strategy::DictionaryValues,
            DataType::Utf8 | DataType::LargeUtf8 if self.buffer_scan_needles().is_some() => {
                Strategy::BufferScan
            }
            _ => Strategy::RowLoop,
        }
    }

    /// Needles for the buffer scan: case-insensitive, ASCII, non-empty term needles.
    fn buffer_scan_needles(&self) -> Option<(&[String], TermMatch, bool)> {
        match &self.kind {
            Kind::Term { needles, mode, all }
                if !self.cs
                    && !needles.is_empty()
                    && needles.iter().all(|n| !n.is_empty() && n.is_ascii()) =>
            {
                Some((needles, *mode, *all))
            }
            _ => None,
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
                let values = self.eval_array(d.values().as_ref())?;
                let keys = d.normalized_keys();
                let nulls = d.keys().logical_nulls();
                let out: BooleanArray = keys
                    .iter()
                    .enumerate()
                    .map(|(i, &k)| {
                        Some(if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
                            empty
                        } else {
                            values.value(k)
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

    fn eval_generic<O: OffsetSizeTrait>(&self, a: &GenericStringArray<O>) -> BooleanArray {
        if let Some((needles, mode, all)) = self.buffer_scan_needles() {
            let mut hits = term_scan(a, needles, mode, all);
            if self.negated {
                hits.iter_mut().for_each(|h| *h = !*h);
            }
            return BooleanArray::from(hits);
        }
        (0..a.len())
            .map(|i| Some(self.matches(if a.is_null(i) { "" } else { a.value(i) })))
            .collect()
    }
}

/// Case-insensitive term matching of ASCII needles over the values buffer, a block of rows
/// at a time: each block (about 64 KiB, whole rows) is lower-cased into a reused buffer
/// that stays in cache, one Aho-Corasick automaton finds candidate occurrences
/// (leftmost-first, restarting one byte later when a boundary check fails), each hit is
/// mapped to its row through the offsets, and a row that has matched is skipped. Rows
/// holding a non-ASCII byte are decided by the exact Unicode rule instead.
fn term_scan<O: OffsetSizeTrait>(
    a: &GenericStringArray<O>,
    needles: &[String],
    mode: TermMatch,
    all: bool,
) -> Vec<bool> {
    const BLOCK_BYTES: usize = 64 * 1024;
    let n = a.len();
    let offsets = a.value_offsets();
    let data = a.value_data();
    let check_left = mode != TermMatch::Suffix;
    let check_right = mode != TermMatch::Prefix;
    let first_term: Vec<bool> = needles
        .iter()
        .map(|s| check_left && s.as_bytes()[0].is_ascii_alphanumeric())
        .collect();
    let last_term: Vec<bool> = needles
        .iter()
        .map(|s| check_right && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
        .collect();
    let nested = needles
        .iter()
        .any(|x| needles.iter().any(|y| x != y && y.contains(x.as_str())));
    let overlapping = all || nested;
    let kind = if overlapping {
        MatchKind::Standard
    } else {
        MatchKind::LeftmostFirst
    };
    let ac = AhoCorasick::builder()
        .match_kind(kind)
        .build(needles)
        .expect("ASCII needles build");
    let full: u64 = if needles.len() >= 64 {
        u64::MAX
    } else {
        (1u64 << needles.len()) - 1
    };
    let mut hit = vec![false; n];
    let mut seen: Vec<u64> = if all { vec![0; n] } else { Vec::new() };
    let mut exact = vec![false; n];
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK_BYTES * 2);
    let mut rel: Vec<usize> = Vec::new();
    let mut r0 = 0;
    while r0 < n {
        // A block of whole rows.
        let b0 = offsets[r0].as_usize();
        let mut r1 = r0 + 1;
        while r1 < n && offsets[r1 + 1].as_usize() - b0 <= BLOCK_BYTES {
            r1 += 1;
        }
        let b1 = offsets[r1].as_usize();
        buf.clear();
        buf.extend_from_slice(&data[b0..b1]);
        buf.make_ascii_lowercase();
        rel.clear();
        rel.extend(offsets[r0..=r1].iter().map(|o| o.as_usize() - b0));
        if !buf.is_ascii() {
            for r in r0..r1 {
                if !buf[rel[r - r0]..rel[r - r0 + 1]].is_ascii() {
                    exact[r] = true;
                }
            }
        }
        let row_of = |pos: usize| r0 + rel.partition_point(|&o| o <= pos) - 1;
        if overlapping {
            for m in ac.find_overlapping_iter(&buf) {
                let (s, e) = (m.start(), m.end());
                let row = row_of(s);
                let (rs, re) = (rel[row - r0], rel[row - r0 + 1]);
                let p = m.pattern().as_usize();
                if e > re
                    || exact[row]
                    || !boundary_ok(&buf, rs, re, s, e, first_term[p], last_term[p])
                {
                    continue;
                }
                if all {
                    seen[row] |= 1 << p.min(63);
                } else {
                    hit[row] = true;
                }
            }
        } else {
            let mut pos = 0;
            while pos < buf.len() {
                let Some(m) = ac.find(aho_corasick::Input::new(&buf).span(pos..buf.len())) else {
                    break;
                };
                let (s, e) = (m.start(), m.end());
                let p = m.pattern().as_usize();
                let row = row_of(s);
                let (rs, re) = (rel[row - r0], rel[row - r0 + 1]);
                if e <= re
                    && !exact[row]
                    && boundary_ok(&buf, rs, re, s, e, first_term[p], last_term[p])
                {
                    hit[row] = true;
                    // This row is decided: continue in the next one.
                    pos = re.max(s + 1);
                } else {
                    pos = s + 1;
                }
            }
        }
        r0 = r1;
    }
    for r in 0..n {
        if exact[r] {
            let hay = terms::fold(a.value(r));
            let one = |nd: &String| terms::has_term(&hay, nd, mode);
            hit[r] = if all {
                needles.iter().all(one)
            } else {
                needles.iter().any(one)
            };
        } else if all {
            hit[r] = if needles.len() > 64 {
                let hay = terms::fold(if a.is_null(r) { "" } else { a.value(r) });
                needles.iter().all(|nd| terms::has_term(&hay, nd, mode))
            } else {
                seen[r] == full
            };
        }
    }
    hit
}

/// Term boundaries of an ASCII occurrence [s, e) of a row spanning [rs, re) of `buf`: a
/// term character just outside an alphanumeric needle edge breaks it.
#[inline]
fn boundary_ok(
    buf: &[u8],
    rs: usize,
    re: usize,
    s: usize,
    e: usize,
    left: bool,
    right: bool,
) -> bool {
    (!left || s == rs || !buf[s - 1].is_ascii_alphanumeric())
        && (!right || e == re || !buf[e].is_ascii_alphanumeric())
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
        ]
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
        let arrays: Vec<Box<dyn Array>> = vec![
            Box::new(StringArray::from(h.clone())),
            Box::new(LargeStringArray::from(h.clone())),
            Box::new(StringViewArray::from(h.clone())),
            Box::new(h.clone().into_iter().collect::<DictionaryArray<Int8Type>>()),
            Box::new(StringArray::from(h.clone()).slice(2, 7)),
        ];
        for m in &matchers {
            for a in &arrays {
                let got = m.eval_array(a.as_ref()).unwrap();
                let sa = arrow::compute::cast(a.as_ref(), &DataType::Utf8).unwrap();
                let sa = sa.as_string::<i32>();
                for i in 0..a.len() {
                    let s = if sa.is_null(i) { "" } else { sa.value(i) };
                    assert_eq!(
                        got.value(i),
                        m.matches(s),
                        "{m:?} on {s:?} ({})",
                        a.data_type()
                    );
                }
            }
        }
    }
}
