//! Property tests: the `has` family against a small, obviously correct reference on
//! random Unicode strings, and identical results whatever the batch sizes and string
//! layouts of the input.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, DictionaryArray, Int64Array, LargeStringArray, StringArray, StringViewArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use proptest::prelude::*;
use rmmhunt::kernels::terms::{self, TermMatch};
use rmmhunt::{Catalog, MemTable, Query, TableProvider};

/// Simple (1:1) lower-case mapping, the reference for case-insensitive operators.
fn lower1(c: char) -> char {
    let mut l = c.to_lowercase();
    match (l.next(), l.next()) {
        (Some(x), None) => x,
        _ => c,
    }
}

/// The term rule of SEMANTICS.md §1.2, written directly over characters.
fn ref_has(hay: &str, needle: &str, cs: bool, mode: TermMatch) -> bool {
    let f = |s: &str| -> Vec<char> { s.chars().map(|c| if cs { c } else { lower1(c) }).collect() };
    let (h, n) = (f(hay), f(needle));
    if n.is_empty() {
        return true;
    }
    if n.len() > h.len() {
        return false;
    }
    for i in 0..=h.len() - n.len() {
        if h[i..i + n.len()] != n[..] {
            continue;
        }
        let j = i + n.len();
        let left = !n[0].is_alphanumeric() || i == 0 || !h[i - 1].is_alphanumeric();
        let right = !n[n.len() - 1].is_alphanumeric() || j == h.len() || !h[j].is_alphanumeric();
        let ok = match mode {
            TermMatch::Whole => left && right,
            TermMatch::Prefix => left,
            TermMatch::Suffix => right,
        };
        if ok {
            return true;
        }
    }
    false
}

fn ref_contains(hay: &str, needle: &str, cs: bool) -> bool {
    let f = |s: &str| -> String { s.chars().map(|c| if cs { c } else { lower1(c) }).collect() };
    f(hay).contains(&f(needle))
}

fn text() -> impl Strategy<Value = String> {
    let alphabet = vec![
        'a', 'b', 'A', 'B', 'é', 'É', 'ß', 'Σ', 'σ', 'ς', 'İ', 'ı', '_', '-', ' ', '.', '1', '2',
        '😀', '\u{301}', 'Ж', 'ж', '\t', '\u{212A}', 'k', '™',
    ];
    proptest::collection::vec(proptest::sample::select(alphabet), 0..12)
        .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn has_family_matches_reference(hay in text(), needle in text(), cs in any::<bool>()) {
        for mode in [TermMatch::Whole, TermMatch::Prefix, TermMatch::Suffix] {
            prop_assert_eq!(terms::has(&hay, &needle, cs, mode), ref_has(&hay, &needle, cs, mode), "{:?} {:?} {:?} cs={}", hay, needle, mode, cs);
        }
    }

    #[test]
    fn has_of_a_substring_matches_reference(hay in text(), a in 0usize..12, len in 0usize..6, cs in any::<bool>()) {
        let chars: Vec<char> = hay.chars().collect();
        let a = a.min(chars.len());
        let b = (a + len).min(chars.len());
        let needle: String = chars[a..b].iter().collect();
        prop_assert_eq!(terms::has(&hay, &needle, cs, TermMatch::Whole), ref_has(&hay, &needle, cs, TermMatch::Whole));
    }

    #[test]
    fn contains_family_matches_reference(hay in text(), needle in text(), cs in any::<bool>()) {
        prop_assert_eq!(terms::contains(&hay, &needle, cs), ref_contains(&hay, &needle, cs));
        let f = |s: &str| -> String { s.chars().map(|c| if cs { c } else { lower1(c) }).collect() };
        prop_assert_eq!(terms::starts_with(&hay, &needle, cs), f(&hay).starts_with(&f(&needle)));
        prop_assert_eq!(terms::ends_with(&hay, &needle, cs), f(&hay).ends_with(&f(&needle)));
        prop_assert_eq!(terms::equals(&hay, &needle, cs), f(&hay) == f(&needle));
    }
}

/// Mostly ASCII rows, the scanner's fast paths, with a non-ASCII row now and then.
fn mostly_ascii() -> impl Strategy<Value = String> {
    let alphabet = vec![
        'a', 'b', 'A', 'B', '_', '-', ' ', '.', '1', 'c', 'é', '™', 'k', '\u{212A}',
    ];
    prop_oneof![
        4 => proptest::collection::vec(proptest::sample::select(alphabet), 0..16)
            .prop_map(|v| v.into_iter().collect()),
        1 => text(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// One scanner over many needles reports exactly the (row, needle) pairs the
    /// reference term rule accepts: SIMD pairs (up to 6 needles), the automaton (more),
    /// ASCII and non-ASCII rows, nulls, both case modes.
    #[test]
    fn term_scanner_matches_reference(
        rows in proptest::collection::vec(proptest::option::weighted(0.9, mostly_ascii()), 0..40),
        needles in proptest::collection::vec((mostly_ascii(), 0usize..3), 1..12),
        cs in any::<bool>(),
    ) {
        use rmmhunt::kernels::termscan::TermScanner;
        let modes = [TermMatch::Whole, TermMatch::Prefix, TermMatch::Suffix];
        let needles: Vec<(String, TermMatch)> = needles
            .into_iter()
            .filter(|(n, _)| !n.is_empty())
            .map(|(n, m)| (n, modes[m]))
            .collect();
        prop_assume!(!needles.is_empty());
        let scanner = TermScanner::new(&needles, cs).unwrap();
        let array = StringArray::from(rows.clone());
        let got = scanner.scan(&array).unwrap().pairs;
        let mut want = Vec::new();
        for (r, row) in rows.iter().enumerate() {
            let hay = row.as_deref().unwrap_or("");
            for (k, (n, m)) in needles.iter().enumerate() {
                if ref_has(hay, n, cs, *m) {
                    want.push((r as u32, k as u32));
                }
            }
        }
        prop_assert_eq!(got, want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// `startswith`, `endswith`, `==`/`=~` with an ASCII needle over every row of a plain
    /// array (the byte loop, with or without a `k` in the needle, ASCII rows or not; for
    /// equality the lengths 32 rows at a time and the rest one by one) or over some of
    /// its rows (fetched ahead) select exactly the rows the reference accepts, negated
    /// or not.
    #[test]
    fn affix_rows_match_reference(
        rows in proptest::collection::vec(mostly_ascii(), 0..120),
        given in proptest::collection::vec(any::<bool>(), 120),
        needle in proptest::collection::vec(
            proptest::sample::select(vec!['a', 'b', 'A', 'B', 'k', 'K', '.', '1', ' ']),
            0..5,
        ).prop_map(|v| v.into_iter().collect::<String>()),
        kind in 0usize..3,
        cs in any::<bool>(),
        negated in any::<bool>(),
    ) {
        use rmmhunt::kernels::strmatch::{Kind, Matcher};
        let m = Matcher::new(
            match kind {
                0 => Kind::StartsWith(needle.clone()),
                1 => Kind::EndsWith(needle.clone()),
                _ => Kind::Equals(needle.clone()),
            },
            cs,
            negated,
        );
        let f = |s: &str| -> String { if cs { s.to_string() } else { s.chars().map(lower1).collect() } };
        let n = f(&needle);
        let want: Vec<u32> = (0..rows.len() as u32)
            .filter(|&r| {
                let h = f(&rows[r as usize]);
                let hit = match kind {
                    0 => h.starts_with(&n),
                    1 => h.ends_with(&n),
                    _ => h == n,
                };
                hit != negated
            })
            .collect();
        let array = StringArray::from(rows.clone());
        prop_assert_eq!(m.select_rows(&array, None), Some(want.clone()));
        let some: Vec<u32> = (0..rows.len() as u32).filter(|&r| given[r as usize]).collect();
        let want_some: Vec<u32> = want.into_iter().filter(|&r| given[r as usize]).collect();
        prop_assert_eq!(m.select_rows(&array, Some(&some)), Some(want_some));
    }
}

const FOUNDING: &str = "let Time_start = now(-5d);
let Time_end = now();
DeviceProcessEvents
| where Timestamp between (Time_start..Time_end)
| where ProcessVersionInfoCompanyName has_any ('ConnectWise','Continuum Managed','ScreenConnect')
| summarize FirstSeen=min(Timestamp), LastSeen=max(Timestamp), Report=make_set(ReportId), Count=count() by DeviceId, DeviceName";

const NOW_US: i64 = 1_717_200_000_000_000; // 2024-06-01T00:00:00Z

/// Timestamps (us), company names, device names, report ids.
type Rows = (Vec<i64>, Vec<Option<String>>, Vec<Option<String>>, Vec<i64>);

/// A small DeviceProcessEvents with hits, near misses, nulls and rows outside the window.
fn rows(n: usize) -> Rows {
    let companies = [
        Some("ConnectWise, Inc."),
        Some("Continuum Managed Services"),
        Some("ScreenConnect Software"),
        Some("ScreenConnectorz Ltd"),
        Some("Microsoft Corporation"),
        None,
        Some("connectwise"),
        Some("Continuum-Managed"),
        Some(""),
        Some("ÉCOLE ScreenConnect"),
    ];
    let mut ts = Vec::new();
    let mut co = Vec::new();
    let mut dev = Vec::new();
    let mut rid = Vec::new();
    for i in 0..n {
        // Every 13th row is outside the 5-day window; the window edges are included.
        let age_us = if i % 13 == 0 {
            6 * 86_400_000_000
        } else {
            (i as i64 * 7_919_000_000) % (5 * 86_400_000_000 + 1)
        };
        ts.push(NOW_US - age_us);
        co.push(companies[i % companies.len()].map(str::to_string));
        dev.push(if i % 17 == 0 {
            None
        } else {
            Some(format!("wks-{:02}", i % 7))
        });
        rid.push((i % 11) as i64);
    }
    (ts, co, dev, rid)
}

fn string_array(layout: &str, v: &[Option<String>]) -> ArrayRef {
    let refs: Vec<Option<&str>> = v.iter().map(|s| s.as_deref()).collect();
    match layout {
        "utf8" => Arc::new(StringArray::from(refs)),
        "large" => Arc::new(LargeStringArray::from(refs)),
        "view" => Arc::new(StringViewArray::from(refs)),
        _ => Arc::new(refs.into_iter().collect::<DictionaryArray<Int32Type>>()),
    }
}

/// `rows(n)` as a DeviceProcessEvents table of `batch`-row batches in one string layout.
fn catalog(layout: &str, batch: usize, n: usize) -> Catalog {
    let (ts, co, dev, rid) = rows(n);
    let mut batches = Vec::new();
    let mut schema = None;
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from(ts[start..end].to_vec()).with_timezone("UTC")),
            string_array(layout, &dev[start..end]),
            string_array(layout, &dev[start..end]),
            string_array(layout, &co[start..end]),
            Arc::new(Int64Array::from(rid[start..end].to_vec())),
        ];
        let s = Arc::new(Schema::new(vec![
            Field::new(
                "Timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("DeviceId", cols[1].data_type().clone(), true),
            Field::new("DeviceName", cols[2].data_type().clone(), true),
            Field::new(
                "ProcessVersionInfoCompanyName",
                cols[3].data_type().clone(),
                true,
            ),
            Field::new("ReportId", DataType::Int64, true),
        ]));
        batches.push(RecordBatch::try_new(s.clone(), cols).unwrap());
        schema = Some(s);
    }
    let mut catalog: Catalog = HashMap::new();
    catalog.insert(
        "DeviceProcessEvents".into(),
        Arc::new(MemTable::new(schema.unwrap(), batches)) as Arc<dyn TableProvider>,
    );
    catalog
}

/// The rows of `kql` over `catalog(layout, batch, n)` at the tests' fixed `now`, as JSON.
fn query_json(kql: &str, layout: &str, batch: usize, n: usize) -> Vec<Vec<serde_json::Value>> {
    let now = rmmhunt::kernels::time::parse_datetime("2024-06-01T00:00:00Z").unwrap();
    Query::parse(kql)
        .unwrap()
        .run(&catalog(layout, batch, n), now)
        .unwrap()
        .rows_json()
}

fn run(layout: &str, batch: usize, n: usize) -> Vec<String> {
    let catalog = catalog(layout, batch, n);
    let now = rmmhunt::kernels::time::parse_datetime("2024-06-01T00:00:00Z").unwrap();
    let r = Query::parse(FOUNDING).unwrap().run(&catalog, now).unwrap();
    assert_eq!(
        r.names,
        [
            "DeviceId",
            "DeviceName",
            "FirstSeen",
            "LastSeen",
            "Report",
            "Count"
        ]
    );
    let mut out: Vec<String> = r
        .rows_json()
        .into_iter()
        .map(|mut row| {
            if let serde_json::Value::Array(a) = &mut row[4] {
                a.sort_by_key(|v| v.as_i64());
            }
            serde_json::to_string(&row).unwrap()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn same_result_for_every_layout_and_batch_size() {
    let n = 500;
    let expected = run("utf8", n, n);
    assert!(!expected.is_empty());
    for layout in ["utf8", "large", "view", "dict"] {
        for batch in [1, 7, 64, 499, 500] {
            assert_eq!(
                run(layout, batch, n),
                expected,
                "layout {layout}, batch size {batch}"
            );
        }
    }
}

/// Conjuncts after a first one that keeps a tenth of the rows (between the row-by-row
/// and whole-array regimes: plain strings match each distinct value of the rows left
/// once), and after one that keeps most rows; counted per device against a direct loop.
#[test]
fn later_conjuncts_on_the_rows_left() {
    let n = 6000;
    let (_, co, dev, _) = rows(n);
    type Test = fn(&str, &str) -> bool;
    let cases: [(&str, Test); 3] = [
        (
            r#"ProcessVersionInfoCompanyName has "Microsoft" and DeviceName contains "S-0""#,
            |c, d| {
                ref_has(c, "Microsoft", false, TermMatch::Whole) && ref_contains(d, "S-0", false)
            },
        ),
        (
            r#"ProcessVersionInfoCompanyName has "Microsoft" and DeviceName !contains "s-03""#,
            |c, d| {
                ref_has(c, "Microsoft", false, TermMatch::Whole) && !ref_contains(d, "s-03", false)
            },
        ),
        (
            r#"ProcessVersionInfoCompanyName !has "Microsoft" and DeviceName has "wks""#,
            |c, d| {
                !ref_has(c, "Microsoft", false, TermMatch::Whole)
                    && ref_has(d, "wks", false, TermMatch::Whole)
            },
        ),
    ];
    for (filter, test) in cases {
        let mut want: Vec<(String, i64)> = Vec::new();
        for i in 0..n {
            let d = dev[i].clone().unwrap_or_default();
            if test(co[i].as_deref().unwrap_or(""), &d) {
                match want.iter_mut().find(|(k, _)| *k == d) {
                    Some((_, c)) => *c += 1,
                    None => want.push((d, 1)),
                }
            }
        }
        want.sort();
        assert!(!want.is_empty(), "{filter}");
        let kql =
            format!("DeviceProcessEvents | where {filter} | summarize Count=count() by DeviceName");
        for layout in ["utf8", "large", "view", "dict"] {
            for batch in [n, 2048] {
                let mut got: Vec<(String, i64)> = query_json(&kql, layout, batch, n)
                    .into_iter()
                    .map(|row| {
                        (
                            row[0].as_str().unwrap().to_string(),
                            row[1].as_i64().unwrap(),
                        )
                    })
                    .collect();
                got.sort();
                assert_eq!(got, want, "{filter} ({layout}, batches of {batch})");
            }
        }
    }
}

/// Groups keyed by strings (null and "" are one key: Kusto strings are never null) and
/// by a string and a long together, counted against a direct loop, for every layout
/// and batch size: the aggregation codes each chunk's keys by their distinct values and
/// must still merge groups across chunks.
#[test]
fn summarize_groups_match_a_direct_count() {
    let n = 3000;
    let (_, co, dev, rid) = rows(n);
    let key = |s: &Option<String>| s.clone().unwrap_or_default();
    let cases: [(&str, Vec<String>); 3] = [
        (
            "summarize c=count() by ProcessVersionInfoCompanyName",
            co.iter().map(key).collect(),
        ),
        (
            "summarize c=count() by DeviceName, ReportId",
            (0..n)
                .map(|i| format!("{}|{}", key(&dev[i]), rid[i]))
                .collect(),
        ),
        (
            "summarize c=count() by ReportId, ProcessVersionInfoCompanyName, DeviceName",
            (0..n)
                .map(|i| format!("{}|{}|{}", rid[i], key(&co[i]), key(&dev[i])))
                .collect(),
        ),
    ];
    for (summarize, keys) in cases {
        let mut want: HashMap<String, i64> = HashMap::new();
        for k in keys {
            *want.entry(k).or_default() += 1;
        }
        let mut want: Vec<(String, i64)> = want.into_iter().collect();
        want.sort();
        let kql = format!("DeviceProcessEvents | {summarize}");
        for layout in ["utf8", "large", "view", "dict"] {
            for batch in [n, 1000, 7] {
                let mut got: Vec<(String, i64)> = query_json(&kql, layout, batch, n)
                    .into_iter()
                    .map(|row| {
                        let parts: Vec<String> = row[..row.len() - 1]
                            .iter()
                            .map(|v| match v {
                                serde_json::Value::String(s) => s.clone(),
                                v => v.to_string(),
                            })
                            .collect();
                        (parts.join("|"), row[row.len() - 1].as_i64().unwrap())
                    })
                    .collect();
                got.sort();
                assert_eq!(got, want, "{summarize} ({layout}, batches of {batch})");
            }
        }
    }
}

/// `min`/`max` of a long folded group by group per chunk: the same as a direct loop.
#[test]
fn summarize_min_max_match_a_direct_loop() {
    let n = 3000;
    let (ts, co, _, rid) = rows(n);
    let mut want: HashMap<String, (i64, i64, i64)> = HashMap::new();
    for i in 0..n {
        // A long that varies by row, so that each group's extremes sit in different
        // chunks (ties too: the seconds repeat). `tolong` of a datetime counts ticks
        // from 0001-01-01, 62,135,596,800 s before the epoch.
        let v = rid[i] * 1000 + (ts[i] / 1_000_000 + 62_135_596_800) % 1000;
        let e = want
            .entry(co[i].clone().unwrap_or_default())
            .or_insert((0, i64::MAX, i64::MIN));
        *e = (e.0 + 1, e.1.min(v), e.2.max(v));
    }
    let mut want: Vec<(String, (i64, i64, i64))> = want.into_iter().collect();
    want.sort();
    let kql =
        "DeviceProcessEvents | extend v = ReportId * 1000 + tolong(Timestamp) / 10000000 % 1000 \
               | summarize c=count(), lo=min(v), hi=max(v) by ProcessVersionInfoCompanyName";
    for batch in [n, 1000, 7] {
        let mut got: Vec<(String, (i64, i64, i64))> = query_json(kql, "utf8", batch, n)
            .into_iter()
            .map(|row| {
                let int = |k: usize| row[k].as_i64().unwrap();
                (
                    row[0].as_str().unwrap().to_string(),
                    (int(1), int(2), int(3)),
                )
            })
            .collect();
        got.sort();
        assert_eq!(got, want, "batches of {batch}");
    }
}

/// Function calls over one string column run once per distinct value on large chunks
/// (`exec::eval`) and row by row on small ones: the same rows either way.
#[test]
fn per_value_evaluation_matches_the_row_loop() {
    let n = 3000;
    let queries = [
        "extend x = strlen(ProcessVersionInfoCompanyName), y = toupper(ProcessVersionInfoCompanyName) \
         | summarize c=count() by x, y",
        "where tolower(ProcessVersionInfoCompanyName) == \"connectwise, inc.\" or isempty(ProcessVersionInfoCompanyName) \
         | summarize c=count() by DeviceName",
        "where ProcessVersionInfoCompanyName matches regex \"^[A-Z].*[a-z]$\" | summarize c=count() by DeviceName",
        "extend e = extract(\"-(\\\\d)\", 1, DeviceName) | summarize c=count() by e",
    ];
    for kql in queries {
        let kql = format!("DeviceProcessEvents | {kql}");
        let run = |layout: &str, batch: usize| {
            let mut rows: Vec<String> = query_json(&kql, layout, batch, n)
                .iter()
                .map(|r| serde_json::to_string(r).unwrap())
                .collect();
            rows.sort();
            rows
        };
        // Batches of 7 rows stay below the per-value threshold: the row loop.
        let want = run("utf8", 7);
        assert!(want.len() > 1, "{kql}: {want:?}");
        for layout in ["utf8", "large", "dict"] {
            assert_eq!(run(layout, n), want, "{kql} ({layout})");
        }
    }
}

/// `dcount` and `make_set` of a string column folded per chunk (each group's distinct
/// values once, in row order) against a direct loop, over batches that split groups and
/// values across chunks: the same counts, and each set in first-seen order, also when
/// `make_set`'s size cap cuts it.
#[test]
fn summarize_dcount_and_make_set_match_a_direct_loop() {
    let n = 3000;
    let (_, co, dev, _) = rows(n);
    let mut sets: HashMap<String, Vec<String>> = HashMap::new();
    for i in 0..n {
        let set = sets.entry(dev[i].clone().unwrap_or_default()).or_default();
        let c = co[i].clone().unwrap_or_default();
        if !set.contains(&c) {
            set.push(c);
        }
    }
    let mut want: Vec<String> = sets
        .into_iter()
        .map(|(k, v)| {
            let capped: Vec<&String> = v.iter().take(4).collect();
            serde_json::to_string(&serde_json::json!([k, v.len(), v, capped])).unwrap()
        })
        .collect();
    want.sort();
    let kql = "DeviceProcessEvents | summarize d=dcount(ProcessVersionInfoCompanyName), \
               s=make_set(ProcessVersionInfoCompanyName), \
               c=make_set(ProcessVersionInfoCompanyName, 4) by DeviceName";
    for layout in ["utf8", "dict"] {
        for batch in [n, 1000, 7] {
            let mut got: Vec<String> = query_json(kql, layout, batch, n)
                .iter()
                .map(|row| serde_json::to_string(row).unwrap())
                .collect();
            got.sort();
            assert_eq!(got, want, "{layout}, batches of {batch}");
        }
    }
}

#[test]
fn founding_query_finds_exactly_the_term_matches() {
    // Groups: the null device (DeviceId "") and wks-00..wks-06; counts checked by a
    // direct row loop over the same data with the reference rule.
    let n = 500;
    let (ts, co, dev, _) = rows(n);
    let mut want: HashMap<String, i64> = HashMap::new();
    for i in 0..n {
        let in_window = ts[i] >= NOW_US - 5 * 86_400_000_000 && ts[i] <= NOW_US;
        let c = co[i].as_deref().unwrap_or("");
        let hit = ["ConnectWise", "Continuum Managed", "ScreenConnect"]
            .iter()
            .any(|nd| ref_has(c, nd, false, TermMatch::Whole));
        if in_window && hit {
            *want.entry(dev[i].clone().unwrap_or_default()).or_default() += 1;
        }
    }
    let got: HashMap<String, i64> = run("dict", 64, n)
        .iter()
        .map(|row| {
            let v: Vec<serde_json::Value> = serde_json::from_str(row).unwrap();
            (v[1].as_str().unwrap().to_string(), v[5].as_i64().unwrap())
        })
        .collect();
    assert_eq!(got, want);
}

/// Many needles over mostly distinct values: the scanner's distinct-value memo gives up
/// and the automaton pass over the buffer finishes; every (row, needle) still agrees
/// with the reference rule.
#[test]
fn term_scanner_many_needles_many_values() {
    use rmmhunt::kernels::termscan::TermScanner;
    let words = [
        "Connect",
        "wise",
        "ScreenConnect",
        "any",
        "desk",
        "AnyDesk",
        "x",
        "é",
        "\u{212A}",
        "-",
        "_",
        " ",
        ".",
        "com",
        "atera",
        "ATERA",
        "Ω",
    ];
    let mut seed: u64 = 7;
    let mut next = |m: usize| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize % m
    };
    let rows: Vec<Option<String>> = (0..3000)
        .map(|i| {
            if i % 97 == 0 {
                return None;
            }
            let mut s = String::new();
            for _ in 0..next(6) {
                s.push_str(words[next(words.len())]);
            }
            s.push_str(&format!(" {i}"));
            Some(s)
        })
        .collect();
    let modes = [TermMatch::Whole, TermMatch::Prefix, TermMatch::Suffix];
    let needles: Vec<(String, TermMatch)> = [
        "connect",
        "wise",
        "screenconnect",
        "anydesk",
        "desk",
        "com",
        "atera",
        "k",
        "é",
        "x.com",
        "any desk",
    ]
    .iter()
    .enumerate()
    .map(|(i, n)| (n.to_string(), modes[i % 3]))
    .collect();
    for cs in [false, true] {
        let scanner = TermScanner::new(&needles, cs).unwrap();
        let got = scanner
            .scan(&StringArray::from(rows.clone()))
            .unwrap()
            .pairs;
        let mut want = Vec::new();
        for (r, row) in rows.iter().enumerate() {
            let hay = row.as_deref().unwrap_or("");
            for (k, (n, m)) in needles.iter().enumerate() {
                if ref_has(hay, n, cs, *m) {
                    want.push((r as u32, k as u32));
                }
            }
        }
        assert!(want.len() > 500);
        assert_eq!(got, want, "cs={cs}");
    }
}

/// `isempty` and `isnotempty` of a string column run on the raw input (row lengths; a
/// null string is empty), over every row and over the rows another conjunct left,
/// against a direct loop, for each layout and batch size.
#[test]
fn isempty_on_raw_strings_matches_a_direct_loop() {
    let n = 3000;
    let (_, co, dev, _) = rows(n);
    let empty = |i: usize| co[i].as_deref().is_none_or(str::is_empty);
    let dev_of = |i: usize| dev[i].clone().unwrap_or_default();
    // (predicate, only devices ending in 3, empty wanted)
    let cases = [
        ("isempty(ProcessVersionInfoCompanyName)", false, true),
        ("isnotempty(ProcessVersionInfoCompanyName)", false, false),
        (
            "DeviceName endswith \"3\" and isempty(ProcessVersionInfoCompanyName)",
            true,
            true,
        ),
        (
            "DeviceName endswith \"3\" and isnotempty(ProcessVersionInfoCompanyName)",
            true,
            false,
        ),
    ];
    for (pred, dev3, want_empty) in cases {
        let keep = |i: usize| (!dev3 || dev_of(i).ends_with('3')) && empty(i) == want_empty;
        let mut counts: HashMap<String, i64> = HashMap::new();
        for i in (0..n).filter(|&i| keep(i)) {
            *counts.entry(dev_of(i)).or_default() += 1;
        }
        let mut want: Vec<String> = counts
            .into_iter()
            .map(|(d, c)| serde_json::to_string(&serde_json::json!([d, c])).unwrap())
            .collect();
        want.sort();
        assert!(!want.is_empty(), "{pred}");
        let kql = format!("DeviceProcessEvents | where {pred} | summarize c=count() by DeviceName");
        for layout in ["utf8", "large", "dict"] {
            for batch in [7, n] {
                let mut got: Vec<String> = query_json(&kql, layout, batch, n)
                    .iter()
                    .map(|r| serde_json::to_string(r).unwrap())
                    .collect();
                got.sort();
                assert_eq!(got, want, "{pred} ({layout}, batches of {batch})");
            }
        }
    }
}
