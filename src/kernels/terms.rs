//! The string-matching rules of Kusto, each owned by exactly one function here:
//! the term rule behind `has` and its family, simple Unicode case mapping behind every
//! case-insensitive operator, and substring/prefix/suffix/equality tests. Every kernel
//! (per row, per dictionary value, whole buffer) calls these; none re-implements them.
//!
//! Sources: SEMANTICS.md §1.2 (terms: maximal runs of Unicode alphanumerics, `_` is a
//! separator, a needle's non-alphanumeric edges impose no boundary, `has ""` is true),
//! §1.3 (simple 1:1 case mapping, no normalisation: `ß` != `ss`, `É` == `é`).

use std::borrow::Cow;

/// A character that belongs to a term: Unicode alphanumeric; `_` is not.
#[inline]
pub fn is_term_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Simple (1:1) case mapping of one character, as case-insensitive operators compare.
#[inline]
pub fn fold_char(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// Whether a string of `bytes` bytes can fold to an ASCII text of `ascii_len` bytes:
/// only ASCII characters and KELVIN SIGN (3 bytes, to `k`) fold to ASCII, so such a
/// string has between `ascii_len` and three times that many bytes.
pub fn may_fold_to_ascii_len(bytes: usize, ascii_len: usize) -> bool {
    bytes >= ascii_len && bytes <= 3 * ascii_len
}

/// `s` with every character case-mapped; borrowed when nothing changes.
pub fn fold(s: &str) -> Cow<'_, str> {
    if s.bytes().all(|b| !b.is_ascii_uppercase() && b.is_ascii()) {
        return Cow::Borrowed(s);
    }
    if s.is_ascii() {
        return Cow::Owned(s.to_ascii_lowercase());
    }
    Cow::Owned(s.chars().map(fold_char).collect())
}

/// KELVIN SIGN, the one non-ASCII character whose case mapping is ASCII (`k`).
pub const KELVIN: &[u8] = "\u{212A}".as_bytes();

/// Whether comparing a row's bytes with an ASCII `needle` ignoring ASCII case decides
/// `fold(row)` against the needle's fold for every row, ASCII or not: true when the
/// needle holds no `k`. A non-ASCII character folds to a non-ASCII one (no needle byte)
/// except KELVIN SIGN, which folds to `k`; so without a `k` every character of a
/// matching row's compared part is ASCII, and its bytes are its fold's.
pub fn ascii_case_is_exact(needle: &[u8]) -> bool {
    needle.is_ascii() && !needle.iter().any(|b| b.eq_ignore_ascii_case(&b'k'))
}

/// Whether `fold(s)` starts with `needle` (ASCII, any case), or equals it when `whole`,
/// without building the fold: an ASCII character folds to its ASCII lowercase, KELVIN
/// SIGN to `k`, and every other character to a non-ASCII one, which no needle byte
/// equals (checked over all of Unicode in the tests). `s` is valid UTF-8.
pub fn folded_starts_with(s: &[u8], needle: &[u8], whole: bool) -> bool {
    let mut i = 0;
    for &want in needle {
        let (got, width) = match s.get(i) {
            Some(&c) if c.is_ascii() => (c.to_ascii_lowercase(), 1),
            Some(_) if s[i..].starts_with(KELVIN) => (b'k', KELVIN.len()),
            _ => return false,
        };
        if got != want.to_ascii_lowercase() {
            return false;
        }
        i += width;
    }
    !whole || i == s.len()
}

/// Whether `fold(s)` ends with `needle` (ASCII, any case): `folded_starts_with` from
/// the other end (a KELVIN SIGN is recognised by its three bytes ending at a position).
pub fn folded_ends_with(s: &[u8], needle: &[u8]) -> bool {
    let mut i = s.len();
    for &want in needle.iter().rev() {
        let (got, width) = match i.checked_sub(1).map(|j| s[j]) {
            Some(c) if c.is_ascii() => (c.to_ascii_lowercase(), 1),
            Some(_) if s[..i].ends_with(KELVIN) => (b'k', KELVIN.len()),
            _ => return false,
        };
        if got != want.to_ascii_lowercase() {
            return false;
        }
        i -= width;
    }
    true
}

/// Which edges of an occurrence must fall on term boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TermMatch {
    /// `has`: both edges.
    Whole,
    /// `hasprefix`: the left edge.
    Prefix,
    /// `hassuffix`: the right edge.
    Suffix,
}

/// The term rule: does `hay` contain `needle` as a term (or term prefix/suffix)?
/// Both strings must already be case-mapped alike (or not at all, for `_cs`).
pub fn has_term(hay: &str, needle: &str, mode: TermMatch) -> bool {
    let Some(first) = needle.chars().next() else {
        return true;
    };
    let last = needle.chars().next_back().unwrap_or(first);
    let check_left = is_term_char(first) && mode != TermMatch::Suffix;
    let check_right = is_term_char(last) && mode != TermMatch::Prefix;
    let mut from = 0;
    while let Some(pos) = memchr::memmem::find(&hay.as_bytes()[from..], needle.as_bytes()) {
        let i = from + pos;
        let j = i + needle.len();
        let left_ok = !check_left
            || hay[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !is_term_char(c));
        let right_ok = !check_right || hay[j..].chars().next().is_none_or(|c| !is_term_char(c));
        if left_ok && right_ok {
            return true;
        }
        // Advance by one character (occurrences may overlap).
        from = i + hay[i..].chars().next().map_or(1, char::len_utf8);
        if from > hay.len() {
            break;
        }
    }
    false
}

/// `has` / `has_cs` (and `hasprefix`/`hassuffix`) on raw strings.
pub fn has(hay: &str, needle: &str, cs: bool, mode: TermMatch) -> bool {
    if cs {
        has_term(hay, needle, mode)
    } else {
        has_term(&fold(hay), &fold(needle), mode)
    }
}

pub fn contains(hay: &str, needle: &str, cs: bool) -> bool {
    if cs {
        hay.contains(needle)
    } else if hay.is_ascii() && needle.is_ascii() {
        ascii_find_ci(hay.as_bytes(), needle.as_bytes())
    } else {
        fold(hay).contains(&*fold(needle))
    }
}

pub fn starts_with(hay: &str, needle: &str, cs: bool) -> bool {
    if cs {
        hay.starts_with(needle)
    } else if hay.is_ascii() && needle.is_ascii() {
        hay.len() >= needle.len()
            && hay.as_bytes()[..needle.len()].eq_ignore_ascii_case(needle.as_bytes())
    } else if needle.is_ascii() {
        folded_starts_with(hay.as_bytes(), needle.as_bytes(), false)
    } else {
        fold(hay).starts_with(&*fold(needle))
    }
}

pub fn ends_with(hay: &str, needle: &str, cs: bool) -> bool {
    if cs {
        hay.ends_with(needle)
    } else if hay.is_ascii() && needle.is_ascii() {
        hay.len() >= needle.len()
            && hay.as_bytes()[hay.len() - needle.len()..].eq_ignore_ascii_case(needle.as_bytes())
    } else if needle.is_ascii() {
        folded_ends_with(hay.as_bytes(), needle.as_bytes())
    } else {
        fold(hay).ends_with(&*fold(needle))
    }
}

/// `==` (cs) and `=~` (case-insensitive).
pub fn equals(a: &str, b: &str, cs: bool) -> bool {
    if cs {
        a == b
    } else if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.chars().map(fold_char).eq(b.chars().map(fold_char))
    }
}

fn ascii_find_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.len() > hay.len() {
        return false;
    }
    let (lo, up) = (
        needle[0].to_ascii_lowercase(),
        needle[0].to_ascii_uppercase(),
    );
    let last_start = hay.len() - needle.len();
    for i in memchr::memchr2_iter(lo, up, &hay[..=last_start]) {
        if hay[i..i + needle.len()].eq_ignore_ascii_case(needle) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `has` measurements from the real engine (SEMANTICS.md §1.2, EMU-K2S r1/r3-string-ops)
    /// and the documented example (DOCS datatypes-string-operators.md, docs issue #1005).
    #[test]
    fn has_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("alpha-beta", "alpha", true),
            ("alpha_beta", "alpha", true),
            ("alpha beta", "alpha", true),
            ("alphabeta", "alpha", false),
            ("ПриветМир", "привет", false),
            ("Привет Мир", "привет", true),
            ("МИР привет", "привет", true),
            ("naïve", "naïve", true),
            ("NAÏVE", "naïve", true),
            ("naive", "naïve", false),
            ("café résumé", "café", true),
            ("cafe resume", "café", false),
            ("12.34.56", "34", true),
            ("123456", "34", false),
            ("foo\\bar", "bar", true),
            ("foobar", "bar", false),
            ("Hello\tWorld", "World", true),
            ("v1.2.3", "1", false),
            ("1_2_3", "2.3", false),
            ("version=1.2.3", "2.3", true),
            ("a b", " ", true),
            ("ab", " ", false),
            ("anything", "", true),
            ("", "", true),
            ("KustoExplorerQueryRun", "Explorer", false),
            ("https://management.azure.com/subscriptions/00/resourcegroups/test.rg000001?api-version=2021", "/resourcegroups/test.rg000001?", true),
            ("North America", "North America", true),
            ("Continuum Managed Services LLC", "Continuum Managed", true),
            ("ContinuumManaged", "Continuum Managed", false),
            ("Continuum  Managed", "Continuum Managed", false),
            ("cmd.exe", ".exe", true),
            ("x.exe.bak", ".exe", true),
            ("a.exex", ".exe", false),
            ("ConnectWise, Inc.", "connectwise", true),
            ("ScreenConnectorz Ltd", "ScreenConnect", false),
            ("Straße", "STRASSE", false),
        ];
        for (hay, needle, want) in cases {
            assert_eq!(
                has(hay, needle, false, TermMatch::Whole),
                *want,
                "{hay:?} has {needle:?}"
            );
        }
    }

    #[test]
    fn has_cs_and_affixes() {
        assert!(has("hello world", "hello", true, TermMatch::Whole));
        assert!(!has("HELLO", "hello", true, TermMatch::Whole));
        assert!(has("category", "cat", false, TermMatch::Prefix));
        assert!(!has("scatter", "cat", false, TermMatch::Prefix));
        for (hay, want) in [
            ("end.", true),
            ("end ", true),
            ("end", true),
            ("ending", false),
            ("the end", true),
        ] {
            assert_eq!(has(hay, "end", false, TermMatch::Suffix), want, "{hay}");
        }
    }

    /// Simple case mapping (EMU-K2S): É~é fold, ß != ss, no width folding.
    #[test]
    fn case_mapping() {
        assert!(equals("CAFÉ", "café", false));
        assert!(!equals("strasse", "straße", false));
        assert!(equals("Straße", "straße", false));
        assert!(!equals("ＦＵＬＬ", "full", false));
        assert!(contains("Hello World", "O W", false));
        assert!(contains("x😀y", "😀", false));
        assert!(contains("anything", "", false));
        assert!(starts_with("ÉCOLE", "éc", false));
        assert!(ends_with("file.EXE", ".exe", false));
    }

    /// The fold-free affix tests agree with `fold` then compare (SEMANTICS.md §1.3: simple
    /// case mapping), on rows mixing ASCII, KELVIN SIGN (folds to `k`), characters whose
    /// fold is non-ASCII or several characters (`İ` stays itself), and truncated needles.
    #[test]
    fn fold_free_affixes() {
        let rows = [
            "",
            "k",
            "K",
            "\u{212A}",
            "\u{212A}\u{212A}",
            "Microsoft® Windows® Operating System",
            "MICROSOFT® WINDOWS®",
            "\u{212A}onnect\u{212A}",
            "İk",
            "kİ",
            "ÉCOLE k",
            "straße",
            "x\u{212A}",
            "ab\u{212A}c",
        ];
        let needles = [
            "",
            "k",
            "K",
            "kk",
            "microsoft",
            "Microsoft® W",
            "konnectk",
            "x",
            "xk",
            "abkc",
            "bkc",
            "i",
            "ik",
            "e k",
            "k ",
        ];
        for row in rows {
            let folded = fold(row);
            for needle in needles.iter().filter(|n| n.is_ascii()) {
                let lower = needle.to_ascii_lowercase();
                let (b, n) = (row.as_bytes(), needle.as_bytes());
                let case = format!("{row:?} / {needle:?}");
                assert_eq!(
                    folded_starts_with(b, n, false),
                    folded.starts_with(&lower),
                    "{case}"
                );
                assert_eq!(folded_starts_with(b, n, true), *folded == lower, "{case}");
                assert_eq!(folded_ends_with(b, n), folded.ends_with(&lower), "{case}");
                if ascii_case_is_exact(n) {
                    let ascii =
                        |part: Option<&[u8]>| part.is_some_and(|p| p.eq_ignore_ascii_case(n));
                    assert_eq!(
                        ascii(b.get(..n.len())),
                        folded.starts_with(&lower),
                        "{case}"
                    );
                    assert_eq!(ascii(Some(b)), *folded == lower, "{case}");
                    let tail = b.len().checked_sub(n.len()).map(|i| &b[i..]);
                    assert_eq!(ascii(tail), folded.ends_with(&lower), "{case}");
                }
            }
        }
        // Every needle that holds a `k` either case needs the fold; no other does.
        for (needle, exact) in [
            ("level", true),
            ("pdq-connect-agent.exe", true),
            ("", true),
            ("kaseya", false),
            ("AnyDesK", false),
            ("é", false),
        ] {
            assert_eq!(ascii_case_is_exact(needle.as_bytes()), exact, "{needle}");
        }
    }
}
