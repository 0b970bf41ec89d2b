//! Many queries in one pass (`Query::run_many`, issue #4): every query gets exactly the
//! result it gets alone, one query's error stays its own, and each table is scanned once
//! for all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::{ArrayRef, DictionaryArray, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use rmmhunt::table::{BatchStream, ChunkStream, ScanRequest};
use rmmhunt::{Catalog, MemTable, Query, TableProvider};

/// A table that counts how often it is scanned.
struct Counting {
    inner: MemTable,
    scans: AtomicUsize,
}

impl TableProvider for Counting {
    fn schema(&self) -> rmmhunt::Result<rmmhunt::plan::Schema> {
        self.inner.schema()
    }
    fn scan(&self, req: &ScanRequest) -> rmmhunt::Result<ChunkStream<'_>> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        self.inner.scan(req)
    }
    fn scan_arrow(&self, req: &ScanRequest) -> Option<rmmhunt::Result<BatchStream<'_>>> {
        self.scans.fetch_add(1, Ordering::SeqCst);
        self.inner.scan_arrow(req)
    }
}

const NOW: &str = "2024-06-01T00:00:00Z";
const NOW_US: i64 = 1_717_200_000_000_000;

fn events(n: usize, dictionary: bool) -> (SchemaRef, Vec<RecordBatch>) {
    let companies = [
        Some("ConnectWise, Inc."),
        Some("AnyDesk Software GmbH"),
        Some("philandro Software GmbH"),
        Some("Atera Networks Ltd."),
        Some("Microsoft Corporation"),
        None,
        Some("ScreenConnectorz"),
        Some("Splashtop Inc."),
        Some("ÉCOLE ScreenConnect"),
        Some("TeamViewer Germany GmbH"),
    ];
    let products = [
        Some("ScreenConnect"),
        Some("AnyDesk"),
        Some("Windows"),
        Some("Atera Agent"),
        None,
        Some("Splashtop Streamer"),
        Some("TeamViewer"),
    ];
    let files = [
        "anydesk.exe",
        "svchost.exe",
        "AteraAgent.exe",
        "teamviewer.exe",
        "cmd.exe",
    ];
    let mut batches = Vec::new();
    let mut schema = None;
    let batch = 997;
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let strings = |f: &dyn Fn(usize) -> Option<String>| -> ArrayRef {
            let v: Vec<Option<String>> = idx.iter().map(|&i| f(i)).collect();
            if dictionary {
                Arc::new(
                    v.iter()
                        .map(|s| s.as_deref())
                        .collect::<DictionaryArray<Int32Type>>(),
                )
            } else {
                Arc::new(StringArray::from(v))
            }
        };
        let cols: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampMicrosecondArray::from(
                    idx.iter()
                        .map(|&i| NOW_US - (i as i64 * 3_600_000_000) % (8 * 86_400_000_000))
                        .collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            strings(&|i| Some(format!("dev-{}", i % 23))),
            strings(&|i| companies[(i * 7) % companies.len()].map(str::to_string)),
            strings(&|i| products[(i * 3) % products.len()].map(str::to_string)),
            strings(&|i| Some(files[i % files.len()].to_string())),
            Arc::new(Int64Array::from(
                idx.iter().map(|&i| i as i64).collect::<Vec<_>>(),
            )),
        ];
        let s = Arc::new(Schema::new(vec![
            Field::new(
                "Timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("DeviceName", cols[1].data_type().clone(), true),
            Field::new(
                "ProcessVersionInfoCompanyName",
                cols[2].data_type().clone(),
                true,
            ),
            Field::new(
                "ProcessVersionInfoProductName",
                cols[3].data_type().clone(),
                true,
            ),
            Field::new("FileName", cols[4].data_type().clone(), true),
            Field::new("ReportId", DataType::Int64, true),
        ]));
        batches.push(RecordBatch::try_new(s.clone(), cols).unwrap());
        schema = Some(s);
    }
    (schema.unwrap(), batches)
}

const WINDOW: &str = "let Time_start = now(-5d); let Time_end = now();\n";

fn queries() -> Vec<String> {
    let body = [
        // Shapes of the pack's rules: has / has_any, conjunctions over columns,
        // disjunctions, negation, in, startswith, case-sensitive, no string filter.
        "where ProcessVersionInfoCompanyName has_any ('ConnectWise','Continuum Managed','ScreenConnect')",
        "where ProcessVersionInfoCompanyName has_any ('anydesk software', 'philandro software') and ProcessVersionInfoProductName has 'anydesk'",
        "where ProcessVersionInfoCompanyName has 'Atera Networks'",
        "where ProcessVersionInfoCompanyName has_any ('Splashtop') and (ProcessVersionInfoProductName has 'Streamer' or FileName has 'splashtop')",
        "where ProcessVersionInfoProductName has 'TeamViewer' and ProcessVersionInfoCompanyName !has 'Microsoft'",
        "where FileName in~ ('ANYDESK.EXE', 'teamviewer.exe')",
        "where FileName startswith 'atera' and ProcessVersionInfoCompanyName has 'Atera'",
        "where ProcessVersionInfoCompanyName has_cs 'ScreenConnect'",
        "where ProcessVersionInfoCompanyName hasprefix 'screenconn'",
        "where ProcessVersionInfoCompanyName has_all ('anydesk', 'software')",
        "where ProcessVersionInfoCompanyName has 'école'",
        "where ProcessVersionInfoCompanyName !has 'GmbH' and FileName has 'exe'",
        "where ReportId % 101 == 0",
        "where ProcessVersionInfoCompanyName has 'Atera' or ProcessVersionInfoProductName has 'TeamViewer' or FileName hasprefix 'anyd'",
        "where ProcessVersionInfoProductName has 'AnyDesk' or FileName =~ 'CMD.EXE'",
        // More than the SIMD pass's needles on the product column: it matches each
        // distinct value once, and the later product tests of other queries join it
        // (alone, in a disjunction next to a test that cannot, all of a list).
        "where ProcessVersionInfoProductName has_any ('Agent', 'Streamer', 'Windows', 'Remote', 'Viewer', 'Desk', 'Screen')",
        "where ProcessVersionInfoCompanyName has 'Splashtop' and ProcessVersionInfoProductName has 'splashtop streamer'",
        "where ProcessVersionInfoCompanyName has 'GmbH' and ProcessVersionInfoProductName has_all ('team', 'viewer')",
        "where ProcessVersionInfoCompanyName has 'GmbH' and (ProcessVersionInfoProductName has 'Atera' or FileName endswith '.EXE')",
        "where ProcessVersionInfoCompanyName has 'Software' and ProcessVersionInfoProductName !has 'AnyDesk'",
    ];
    let mut out: Vec<String> = body
        .iter()
        .map(|b| {
            format!(
                "{WINDOW}T\n| where Timestamp between (Time_start..Time_end)\n| {b}\n\
                 | summarize FirstSeen=min(Timestamp), LastSeen=max(Timestamp), \
                 Report=make_set(ReportId), Count=count() by DeviceName"
            )
        })
        .collect();
    // Not a summarize; a plain filter; a count.
    out.push("T | where ProcessVersionInfoCompanyName has 'ConnectWise' | project ReportId, DeviceName | order by ReportId asc".into());
    out.push("T | where FileName has 'cmd' | count".into());
    out
}

fn catalog(n: usize, dictionary: bool) -> (Catalog, Arc<Counting>) {
    let (schema, batches) = events(n, dictionary);
    let t = Arc::new(Counting {
        inner: MemTable::new(schema, batches),
        scans: AtomicUsize::new(0),
    });
    let mut c: Catalog = HashMap::new();
    c.insert("T".into(), t.clone() as Arc<dyn TableProvider>);
    (c, t)
}

#[test]
fn many_queries_in_one_pass_equal_each_alone() {
    let now = rmmhunt::kernels::time::parse_datetime(NOW).unwrap();
    for dictionary in [false, true] {
        let (catalog, table) = catalog(20_000, dictionary);
        let texts = queries();
        let parsed: Vec<Query> = texts.iter().map(|q| Query::parse(q).unwrap()).collect();
        let alone: Vec<_> = parsed
            .iter()
            .map(|q| q.run_with_threads(&catalog, now, 1).unwrap().rows_json())
            .collect();
        for threads in [1, 2] {
            table.scans.store(0, Ordering::SeqCst);
            let refs: Vec<&Query> = parsed.iter().collect();
            let together = Query::run_many(&refs, &catalog, now, threads);
            assert_eq!(
                table.scans.load(Ordering::SeqCst),
                1,
                "one scan of T for {} queries",
                texts.len()
            );
            for ((q, a), t) in texts.iter().zip(&alone).zip(together) {
                let t = t.unwrap().rows_json();
                assert_eq!(&t, a, "dictionary={dictionary} threads={threads}\n{q}");
            }
        }
        // The queries are not trivially empty.
        assert!(alone.iter().filter(|r| !r.is_empty()).count() >= 16);
    }
}

#[test]
fn one_query_error_stays_its_own() {
    let now = rmmhunt::kernels::time::parse_datetime(NOW).unwrap();
    let (catalog, _) = catalog(2_000, false);
    let good = Query::parse("T | where FileName has 'anydesk' | count").unwrap();
    let unknown = Query::parse("T | where NoSuchColumn has 'x' | count").unwrap();
    let missing = Query::parse("Nope | count").unwrap();
    let out = Query::run_many(&[&good, &unknown, &good, &missing], &catalog, now, 2);
    assert_eq!(out.len(), 4);
    let n = out[0].as_ref().unwrap().rows_json();
    assert!(out[1]
        .as_ref()
        .unwrap_err()
        .message
        .contains("NoSuchColumn"));
    assert_eq!(out[2].as_ref().unwrap().rows_json(), n);
    assert!(out[3].as_ref().unwrap_err().message.contains("Nope"));
    assert_eq!(n, good.run(&catalog, now).unwrap().rows_json());
}
