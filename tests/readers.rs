//! The file readers: Parquet, CSV (plain and Log Analytics export), JSON (API responses,
//! Streaming API records, JSON Lines), gzip, directories and globs, bad-row reports, strict
//! mode, and robustness against truncated or corrupt files. Fixtures are generated here.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Array, Int64Array, StringArray, StringDictionaryBuilder,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema as ArrowSchema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

use rmmhunt::column::{Chunk, Column};
use rmmhunt::source::{read, read_table, FileReport, FileTable, Format, ReadOptions};
use rmmhunt::table::{ScanRequest, TableProvider, TimeRange};
use rmmhunt::types::ticks;
use rmmhunt::{run_query, Catalog, ErrorKind, Value};

// ---------------------------------------------------------------------------------------
// helpers

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&p, content).unwrap();
    p
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn opts(table: Option<&str>) -> ReadOptions {
    ReadOptions {
        table: table.map(str::to_string),
        ..ReadOptions::default()
    }
}

fn one(path: &Path, table: Option<&str>) -> FileTable {
    read_table(&[s(path)], &opts(table)).unwrap_or_else(|e| panic!("{e}"))
}

fn catalog(tables: Vec<FileTable>) -> Catalog {
    let mut c: Catalog = HashMap::new();
    for t in tables {
        c.insert(t.name().to_string(), Arc::new(t) as Arc<dyn TableProvider>);
    }
    c
}

fn query(kql: &str, tables: Vec<FileTable>) -> Vec<Vec<serde_json::Value>> {
    let c = catalog(tables);
    run_query(kql, &c, ticks::UNIX_EPOCH)
        .unwrap_or_else(|e| panic!("{kql}: {e}"))
        .rows_json()
}

fn scan_all(t: &FileTable) -> Vec<Chunk> {
    let req = ScanRequest {
        needed: vec![true; t.columns().len()],
        time_range: None,
        prefilter: None,
    };
    t.scan(&req)
        .unwrap()
        .collect::<rmmhunt::Result<Vec<_>>>()
        .unwrap()
}

fn column_values(t: &FileTable, name: &str) -> Vec<Value> {
    let k = t
        .columns()
        .iter()
        .position(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no column {name}"));
    scan_all(t)
        .iter()
        .flat_map(|c| (0..c.len).map(move |i| c.columns[k].get(i)))
        .collect()
}

fn dt(text: &str) -> i64 {
    rmmhunt::kernels::time::parse_datetime(text).unwrap()
}

fn only_report(t: &FileTable) -> FileReport {
    let mut r = t.report().unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    r.remove(0)
}

/// A small DeviceProcessEvents Parquet file: `groups` row groups of `per_group` rows, group
/// g's timestamps on day g of June 2024. DeviceName is dictionary-encoded.
fn process_parquet(path: &Path, groups: usize, per_group: usize) {
    let fields = vec![
        Field::new(
            "Timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new(
            "DeviceName",
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            true,
        ),
        Field::new("FileName", DataType::Utf8, true),
        Field::new("ProcessId", DataType::Int64, true),
        Field::new("Extra", DataType::Int32, true),
    ];
    let schema = Arc::new(ArrowSchema::new(fields));
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(per_group))
        .build();
    let f = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(f, schema.clone(), Some(props)).unwrap();
    let june1_us = (dt("2024-06-01") - ticks::UNIX_EPOCH) / 10;
    for g in 0..groups {
        let n = per_group;
        let ts: Vec<i64> = (0..n)
            .map(|i| june1_us + g as i64 * 86_400_000_000 + i as i64 * 1_000_000)
            .collect();
        let mut dev = StringDictionaryBuilder::<Int32Type>::new();
        for i in 0..n {
            dev.append_value(format!("wks-{:02}", i % 7));
        }
        let files: Vec<String> = (0..n)
            .map(|i| {
                if i % 10 == 0 {
                    "AnyDesk.exe".into()
                } else {
                    format!("proc{i}.exe")
                }
            })
            .collect();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(dev.finish()),
            Arc::new(StringArray::from(files)),
            Arc::new(Int64Array::from_iter_values(
                (0..n as i64).map(|i| 1000 + i),
            )),
            Arc::new(Int32Array::from_iter_values((0..n as i32).map(|i| i % 3))),
        ];
        w.write(&RecordBatch::try_new(schema.clone(), cols).unwrap())
            .unwrap();
        w.flush().unwrap();
    }
    w.close().unwrap();
}

// ---------------------------------------------------------------------------------------
// Parquet

#[test]
fn parquet_reads_and_queries() {
    let d = tmp();
    let p = d.path().join("procs.parquet");
    process_parquet(&p, 3, 100);
    let t = one(&p, Some("DeviceProcessEvents"));
    assert_eq!(t.name(), "DeviceProcessEvents");
    let cols: Vec<&str> = t.columns().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        cols,
        ["Timestamp", "DeviceName", "FileName", "ProcessId", "Extra"]
    );
    let rows = query("DeviceProcessEvents | where FileName =~ 'anydesk.exe' | summarize n = count(), d = dcount(DeviceName)", vec![t]);
    assert_eq!(
        rows,
        vec![vec![serde_json::json!(30), serde_json::json!(7)]]
    );
}

#[test]
fn parquet_reads_only_needed_columns() {
    let d = tmp();
    let p = d.path().join("procs.parquet");
    process_parquet(&p, 1, 50);
    let t = one(&p, Some("DeviceProcessEvents"));
    let req = ScanRequest {
        needed: vec![false, true, false, false, false],
        time_range: None,
        prefilter: None,
    };
    let chunks: Vec<Chunk> = t
        .scan(&req)
        .unwrap()
        .collect::<rmmhunt::Result<_>>()
        .unwrap();
    let total: usize = chunks.iter().map(|c| c.len).sum();
    assert_eq!(total, 50);
    for c in &chunks {
        assert!(matches!(c.columns[0], Column::Pruned(_, _)));
        assert!(matches!(c.columns[1], Column::String(_)));
        assert!(matches!(c.columns[2], Column::Pruned(_, _)));
    }
    // No column at all (a count): rows still stream.
    let req = ScanRequest {
        needed: vec![false; 5],
        time_range: None,
        prefilter: None,
    };
    let total: usize = t.scan(&req).unwrap().map(|c| c.unwrap().len).sum();
    assert_eq!(total, 50);
}

#[test]
fn parquet_raw_arrow_keeps_dictionaries() {
    let d = tmp();
    let p = d.path().join("procs.parquet");
    process_parquet(&p, 2, 50);
    let t = one(&p, Some("DeviceProcessEvents"));
    let req = ScanRequest {
        needed: vec![false, true, true, false, false],
        time_range: None,
        prefilter: None,
    };
    let batches: Vec<RecordBatch> = t
        .scan_arrow(&req)
        .expect("parquet gives raw batches")
        .unwrap()
        .collect::<rmmhunt::Result<_>>()
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 100);
    for b in &batches {
        assert_eq!(b.num_columns(), 5);
        assert!(
            matches!(b.column(1).data_type(), DataType::Dictionary(..)),
            "{}",
            b.column(1).data_type()
        );
        // A string column the writer dictionary-encoded is read as a dictionary too
        // (its values are matched once, its strings never materialised per row).
        assert!(
            matches!(b.column(2).data_type(), DataType::Dictionary(..)),
            "{}",
            b.column(2).data_type()
        );
        // Unneeded columns: null placeholders of the right length, without buffers.
        assert_eq!(b.column(0).data_type(), &DataType::Null);
        assert_eq!(b.column(0).logical_null_count(), b.num_rows());
    }
    // CSV tables give no raw batches.
    let c = write(d.path(), "x.csv", "DeviceName\nw\n");
    assert!(one(&c, Some("DeviceProcessEvents"))
        .scan_arrow(&req)
        .is_none());
}

#[test]
fn parquet_streams_in_batches() {
    let d = tmp();
    let p = d.path().join("procs.parquet");
    process_parquet(&p, 2, 5000);
    let o = ReadOptions {
        table: Some("DeviceProcessEvents".into()),
        batch_rows: Some(1000),
        ..ReadOptions::default()
    };
    let t = read_table(&[s(&p)], &o).unwrap();
    let chunks = scan_all(&t);
    assert!(chunks.len() >= 10, "{} chunks", chunks.len());
    assert!(chunks.iter().all(|c| c.len <= 1000));
    assert_eq!(chunks.iter().map(|c| c.len).sum::<usize>(), 10_000);
}

#[test]
fn parquet_skips_row_groups_outside_the_time_window() {
    let d = tmp();
    let p = d.path().join("procs.parquet");
    process_parquet(&p, 5, 100);
    let t = one(&p, Some("DeviceProcessEvents"));
    let count = |range: Option<TimeRange>| -> usize {
        let req = ScanRequest {
            needed: vec![true; 5],
            time_range: range,
            prefilter: None,
        };
        t.scan(&req).unwrap().map(|c| c.unwrap().len).sum()
    };
    assert_eq!(count(None), 500);
    // Day 3 only (2024-06-03 00:00 .. 12:00): one row group.
    let r = TimeRange {
        column: 0,
        low: dt("2024-06-03"),
        high: dt("2024-06-03T12:00:00Z"),
    };
    assert_eq!(count(Some(r)), 100);
    // Days 2..4.
    let r = TimeRange {
        column: 0,
        low: dt("2024-06-02T00:00:30Z"),
        high: dt("2024-06-04T00:00:00Z"),
    };
    assert_eq!(count(Some(r)), 300);
    // Before everything.
    let r = TimeRange {
        column: 0,
        low: dt("2020-01-01"),
        high: dt("2020-02-01"),
    };
    assert_eq!(count(Some(r)), 0);
    // A window on a column without statistics in range semantics (not a datetime) is ignored.
    let r = TimeRange {
        column: 3,
        low: 0,
        high: 1,
    };
    assert_eq!(count(Some(r)), 500);
}

#[test]
fn parquet_corrupt_or_truncated_is_a_data_error_naming_the_file() {
    let d = tmp();
    let good = d.path().join("good.parquet");
    process_parquet(&good, 2, 100);
    let bytes = std::fs::read(&good).unwrap();
    let cut = write(d.path(), "cut.parquet", &bytes[..bytes.len() - 20]);
    let e = read(&[s(&cut)], &opts(Some("DeviceProcessEvents"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert!(e.message.contains("cut.parquet"), "{e}");
    let mut garbled = bytes.clone();
    for b in garbled.iter_mut().skip(8).take(600) {
        *b = 0x5a;
    }
    let bad = write(d.path(), "garbled.parquet", &garbled);
    match read(&[s(&bad)], &opts(Some("DeviceProcessEvents"))) {
        Err(e) => assert!(e.message.contains("garbled.parquet"), "{e}"),
        Ok(tables) => {
            let t = &tables[0];
            let req = ScanRequest {
                needed: vec![true; t.columns().len()],
                time_range: None,
                prefilter: None,
            };
            let r: rmmhunt::Result<Vec<Chunk>> = t.scan(&req).unwrap().collect();
            let e = r.unwrap_err();
            assert_eq!(e.kind, ErrorKind::Data);
            assert!(e.message.contains("garbled.parquet"), "{e}");
        }
    }
}

#[test]
fn parquet_gzip_and_typed_by_the_schema() {
    // Timestamp stored as text and ProcessId as int32: the table's schema types them.
    let d = tmp();
    let schema = Arc::new(ArrowSchema::new(vec![
        Field::new("Timestamp", DataType::Utf8, true),
        Field::new("ProcessId", DataType::Int32, true),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec![
                "2024-06-01T10:00:00Z",
                "garbage",
                "6/1/2024, 11:00:00.000 AM",
            ])),
            Arc::new(Int32Array::from(vec![1, 2, 3])),
        ],
    )
    .unwrap();
    let mut buf = Vec::new();
    let mut w = ArrowWriter::try_new(&mut buf, schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let p = write(d.path(), "DeviceProcessEvents.parquet.gz", gz(&buf));
    let t = one(&p, None);
    assert_eq!(t.name(), "DeviceProcessEvents");
    assert_eq!(t.columns()[0].1, rmmhunt::KqlType::DateTime);
    assert_eq!(t.columns()[1].1, rmmhunt::KqlType::Long);
    assert_eq!(
        column_values(&t, "Timestamp"),
        vec![
            Value::DateTime(dt("2024-06-01T10:00:00Z")),
            Value::Null,
            Value::DateTime(dt("2024-06-01T11:00:00Z"))
        ]
    );
    assert_eq!(
        column_values(&t, "ProcessId"),
        vec![Value::Long(1), Value::Long(2), Value::Long(3)]
    );
    let r = only_report(&t);
    assert_eq!((r.rows, r.bad_rows), (3, 1));
    assert_eq!(r.examples[0].row, 2);
    assert_eq!(r.examples[0].column.as_deref(), Some("Timestamp"));
    assert_eq!(r.format, "parquet (gzip)");
}

#[test]
fn bundled_sample_data_reads_by_file_name() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/rmmhunt/data/sample");
    let tables = read(&[s(&dir)], &ReadOptions::default()).unwrap();
    let mut names: Vec<&str> = tables.iter().map(|t| t.name()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "DeviceFileCertificateInfo",
            "DeviceNetworkEvents",
            "DeviceProcessEvents"
        ]
    );
    for t in &tables {
        for (name, ty) in t.columns() {
            if let Some(doc) = rmmhunt::source::schemas::column_type(t.name(), name) {
                assert_eq!(*ty, doc, "{}.{name}", t.name());
            }
        }
    }
    let rows = query("DeviceProcessEvents | count", tables);
    assert_eq!(rows, vec![vec![serde_json::json!(20000)]]);
}

// ---------------------------------------------------------------------------------------
// CSV

const PLAIN_CSV: &str = "Timestamp,DeviceName,ProcessId,FileName,Note\n\
2024-06-01T10:00:00Z,wks-01,100,AnyDesk.exe,first\n\
2024-06-01T10:05:00.1234567Z,wks-02,not-a-number,cmd.exe,\"quoted, with comma\"\n\
yesterday,wks-03,300,cmd.exe,third\n\
2024-06-01T10:15:00Z,wks-04,400,cmd.exe\n\
2024-06-01T10:20:00Z,wks-05,500,ScreenConnect.exe,fifth\n";

#[test]
fn csv_typed_by_the_table_schema_with_a_bad_row_report() {
    let d = tmp();
    let p = write(d.path(), "procs.csv", PLAIN_CSV);
    let t = one(&p, Some("DeviceProcessEvents"));
    let types: Vec<(&str, &str)> = t
        .columns()
        .iter()
        .map(|(n, t)| (n.as_str(), t.name()))
        .collect();
    // The file's column order.
    assert_eq!(
        types,
        [
            ("Timestamp", "datetime"),
            ("DeviceName", "string"),
            ("ProcessId", "long"),
            ("FileName", "string"),
            ("Note", "string")
        ]
    );
    assert_eq!(
        column_values(&t, "ProcessId"),
        vec![
            Value::Long(100),
            Value::Null,
            Value::Long(300),
            Value::Long(500)
        ]
    );
    assert_eq!(
        column_values(&t, "Note")[1],
        Value::String("quoted, with comma".into())
    );
    assert_eq!(
        column_values(&t, "Timestamp")[1],
        Value::DateTime(dt("2024-06-01T10:05:00.1234567Z"))
    );
    assert_eq!(column_values(&t, "Timestamp")[2], Value::Null);
    let r = only_report(&t);
    assert_eq!(r.rows, 4);
    assert_eq!(r.bad_rows, 3);
    assert_eq!(r.dropped_rows, 1);
    let summary: Vec<(Option<u64>, Option<&str>, bool)> = r
        .examples
        .iter()
        .map(|e| (e.line, e.column.as_deref(), e.kept))
        .collect();
    assert_eq!(
        summary,
        [
            (Some(3), Some("ProcessId"), true),
            (Some(4), Some("Timestamp"), true),
            (Some(5), None, false)
        ]
    );
    assert_eq!(r.examples[0].value, "not-a-number");
    assert!(
        r.examples[2]
            .reason
            .contains("4 fields where the header has 5"),
        "{}",
        r.examples[2].reason
    );
    assert!(
        r.to_string()
            .contains("line 4, column Timestamp: not a datetime"),
        "{r}"
    );
}

#[test]
fn csv_strict_is_an_error_naming_file_and_line() {
    let d = tmp();
    let p = write(d.path(), "procs.csv", PLAIN_CSV);
    let o = ReadOptions {
        table: Some("DeviceProcessEvents".into()),
        strict: true,
        ..ReadOptions::default()
    };
    let t = read_table(&[s(&p)], &o).unwrap();
    let c = catalog(vec![t]);
    let e = run_query("DeviceProcessEvents | count", &c, 0).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert!(
        e.message.contains("procs.csv")
            && e.message.contains("line 3")
            && e.message.contains("ProcessId"),
        "{e}"
    );
}

#[test]
fn csv_without_a_table_reads_strings() {
    let d = tmp();
    let p = write(d.path(), "x.csv", "a,b\n1,2024-01-01\n");
    let t = one(&p, Some("MyTable"));
    assert!(t
        .columns()
        .iter()
        .all(|(_, ty)| *ty == rmmhunt::KqlType::String));
    assert_eq!(
        query("MyTable | extend c = toint(a) + 1 | project c", vec![t]),
        vec![vec![serde_json::json!(2)]]
    );
}

#[test]
fn table_inferred_from_distinctive_columns() {
    let d = tmp();
    let p = write(
        d.path(),
        "export.csv",
        "Timestamp,DeviceName,RemoteUrl,RemotePort\n2024-06-01T00:00:00Z,w,x.com,443\n",
    );
    let t = one(&p, None);
    assert_eq!(t.name(), "DeviceNetworkEvents");
    assert_eq!(column_values(&t, "RemotePort"), vec![Value::Int(443)]);
    assert!(
        t.notes()
            .iter()
            .any(|n| n.contains("export.csv") && n.contains("DeviceNetworkEvents")),
        "{:?}",
        t.notes()
    );
    // Only columns every table has: no guess.
    let p = write(
        d.path(),
        "common.csv",
        "Timestamp,DeviceName\n2024-06-01T00:00:00Z,w\n",
    );
    assert!(read(&[s(&p)], &ReadOptions::default()).is_err());
}

#[test]
fn unknown_table_is_an_error_naming_the_file() {
    let d = tmp();
    let p = write(d.path(), "export.csv", "a,b\n1,2\n");
    let e = read(&[s(&p)], &ReadOptions::default()).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert!(
        e.message.contains("export.csv") && e.message.contains("which table"),
        "{e}"
    );
}

const PORTAL_CSV: &str = "\u{feff}TenantId,\"TimeGenerated [Local Time]\",\"Timestamp [UTC]\",DeviceName,ProcessId,AdditionalFields,SourceSystem,Type\n\
4f1c0c6e-0000-0000-0000-000000000000,\"6/1/2024, 12:43:21.994 PM\",\"6/1/2024, 10:43:21.994 AM\",wks-01,4242,\"{\"\"Command\"\":\"\"x\"\"}\",,DeviceProcessEvents\n\
4f1c0c6e-0000-0000-0000-000000000000,\"6/1/2024, 1:00:00.000 AM\",\"5/31/2024, 11:00:00.000 PM\",wks-02,,,,DeviceProcessEvents\n\
4f1c0c6e-0000-0000-0000-000000000000,\"6/1/2024, 1:00:00.000 AM\",\"5/31/2024, 11:00:00.000 PM\",wks-03,7,,,DeviceNetworkEvents\n";

#[test]
fn csv_log_analytics_portal_export() {
    let d = tmp();
    let p = write(d.path(), "query_data.csv", PORTAL_CSV);
    let t = one(&p, None);
    assert_eq!(t.name(), "DeviceProcessEvents");
    let types: HashMap<&str, &str> = t
        .columns()
        .iter()
        .map(|(n, t)| (n.as_str(), t.name()))
        .collect();
    assert_eq!(types["Timestamp"], "datetime");
    assert_eq!(types["TimeGenerated"], "datetime");
    assert_eq!(types["ProcessId"], "long");
    assert_eq!(types["TenantId"], "string");
    assert_eq!(types["AdditionalFields"], "string");
    assert_eq!(
        column_values(&t, "Timestamp"),
        vec![
            Value::DateTime(dt("2024-06-01T10:43:21.994Z")),
            Value::DateTime(dt("2024-05-31T23:00:00Z"))
        ]
    );
    // No timezone given: local time read as UTC, with a warning.
    assert_eq!(
        column_values(&t, "TimeGenerated")[0],
        Value::DateTime(dt("2024-06-01T12:43:21.994Z"))
    );
    assert_eq!(
        column_values(&t, "ProcessId"),
        vec![Value::Long(4242), Value::Null]
    );
    let r = only_report(&t);
    assert_eq!(r.format, "csv (Log Analytics export)");
    assert!(
        r.warnings
            .iter()
            .any(|w| w.contains("TimeGenerated") && w.contains("UTC")),
        "{r}"
    );
    assert_eq!(r.other_tables.get("DeviceNetworkEvents"), Some(&1));
    assert_eq!((r.rows, r.bad_rows), (2, 0));
    let rows = query("DeviceProcessEvents | where AdditionalFields has 'Command' | project AdditionalFields, TenantId", vec![one(&p, None)]);
    assert_eq!(
        rows,
        vec![vec![
            serde_json::json!("{\"Command\":\"x\"}"),
            serde_json::json!("4f1c0c6e-0000-0000-0000-000000000000")
        ]]
    );

    // With the exporter's zone, local times become UTC.
    let o = ReadOptions {
        timezone: Some("Europe/Berlin".into()),
        ..ReadOptions::default()
    };
    let t = read_table(&[s(&p)], &o).unwrap();
    assert_eq!(
        column_values(&t, "TimeGenerated")[0],
        Value::DateTime(dt("2024-06-01T10:43:21.994Z"))
    );
    assert!(only_report(&t).warnings.is_empty());
    let e = read(
        &[s(&p)],
        &ReadOptions {
            timezone: Some("Nowhere/Special".into()),
            ..ReadOptions::default()
        },
    )
    .unwrap_err();
    assert!(e.message.contains("Nowhere/Special"), "{e}");

    // The content names the table; asking for another one is a clear error.
    let e = read(&[s(&p)], &opts(Some("DeviceFileCertificateInfo"))).unwrap_err();
    assert!(
        e.message.contains("no rows of DeviceFileCertificateInfo")
            && e.message.contains("DeviceProcessEvents"),
        "{e}"
    );
}

#[test]
fn empty_files_give_empty_tables() {
    let d = tmp();
    // A header without rows: the table has the header's columns.
    let p = write(d.path(), "procs.csv", "Timestamp,DeviceName\n");
    let t = one(&p, Some("DeviceProcessEvents"));
    assert_eq!(t.columns().len(), 2);
    assert_eq!(
        query(
            "DeviceProcessEvents | where DeviceName == 'x' | count",
            vec![t]
        ),
        vec![vec![serde_json::json!(0)]]
    );
    // An empty file, with the table given: an empty table with the documented columns.
    let p = write(d.path(), "empty.json", "");
    let t = one(&p, Some("DeviceProcessEvents"));
    assert!(t
        .columns()
        .iter()
        .any(|(n, _)| n == "InitiatingProcessFileName"));
    assert!(
        t.notes().iter().any(|n| n.contains("empty")),
        "{:?}",
        t.notes()
    );
    assert_eq!(
        query("DeviceProcessEvents | count", vec![t]),
        vec![vec![serde_json::json!(0)]]
    );
    // Without a table, nothing to go on.
    assert!(read(&[s(&p)], &ReadOptions::default()).is_err());
}

#[test]
fn tsv_and_forced_format() {
    let d = tmp();
    let p = write(d.path(), "x.tsv", "DeviceName\tProcessId\nwks-1\t5\n");
    let t = one(&p, Some("DeviceProcessEvents"));
    assert_eq!(column_values(&t, "ProcessId"), vec![Value::Long(5)]);
    let p = write(d.path(), "x.data", "DeviceName,ProcessId\nwks-1,6\n");
    let o = ReadOptions {
        table: Some("DeviceProcessEvents".into()),
        format: Some(Format::Csv),
        ..ReadOptions::default()
    };
    let t = read_table(&[s(&p)], &o).unwrap();
    assert_eq!(column_values(&t, "ProcessId"), vec![Value::Long(6)]);
}

// ---------------------------------------------------------------------------------------
// JSON

const AH_API: &str = r#"{
  "Stats": {"ExecutionTime": 0.1},
  "Schema": [
    {"Name": "Timestamp", "Type": "DateTime"},
    {"Name": "DeviceName", "Type": "String"},
    {"Name": "ProcessId", "Type": "Int64"},
    {"Name": "Score", "Type": "Double"},
    {"Name": "Tags", "Type": "Object"}
  ],
  "Results": [
    {"Timestamp": "2024-06-01T10:00:00.1234567Z", "DeviceName": "wks-01", "ProcessId": 10, "Score": 0.5, "Tags": ["a", "b"]},
    {"Timestamp": "2024-06-01T11:00:00Z", "DeviceName": "wks-02", "ProcessId": "11", "Score": 1, "Tags": null},
    {"Timestamp": 12345, "DeviceName": "wks-03", "ProcessId": 12, "Score": null, "Tags": {"k": 1}}
  ]
}"#;

#[test]
fn json_advanced_hunting_api_response() {
    let d = tmp();
    let p = write(d.path(), "ah.json", AH_API);
    let t = one(&p, Some("DeviceProcessEvents"));
    let types: Vec<(&str, &str)> = t
        .columns()
        .iter()
        .map(|(n, t)| (n.as_str(), t.name()))
        .collect();
    assert_eq!(
        types,
        [
            ("Timestamp", "datetime"),
            ("DeviceName", "string"),
            ("ProcessId", "long"),
            ("Score", "real"),
            ("Tags", "dynamic")
        ]
    );
    assert_eq!(
        column_values(&t, "ProcessId"),
        vec![Value::Long(10), Value::Long(11), Value::Long(12)]
    );
    assert_eq!(
        column_values(&t, "Timestamp")[0],
        Value::DateTime(dt("2024-06-01T10:00:00.1234567Z"))
    );
    let r = only_report(&t);
    assert_eq!(r.format, "json (Advanced Hunting API)");
    assert_eq!((r.rows, r.bad_rows), (3, 1));
    assert_eq!(r.examples[0].line, Some(13), "{r}");
    assert_eq!(r.examples[0].column.as_deref(), Some("Timestamp"));
    let rows = query(
        "DeviceProcessEvents | where array_length(Tags) == 2 | project DeviceName",
        vec![t],
    );
    assert_eq!(rows, vec![vec![serde_json::json!("wks-01")]]);
}

#[test]
fn json_graph_run_hunting_query_response() {
    let d = tmp();
    let doc = r#"{"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.security.huntingQueryResults",
 "schema": [{"name": "Timestamp", "type": "DateTime"}, {"name": "RemotePort", "type": "Int32"}, {"name": "Custom", "type": "Int64"}],
 "results": [{"Timestamp": "2024-06-01T10:00:00Z", "RemotePort": 443, "Custom": 9}]}"#;
    let p = write(d.path(), "graph.json", doc);
    let t = one(&p, Some("DeviceNetworkEvents"));
    let types: Vec<(&str, &str)> = t
        .columns()
        .iter()
        .map(|(n, t)| (n.as_str(), t.name()))
        .collect();
    assert_eq!(
        types,
        [
            ("Timestamp", "datetime"),
            ("RemotePort", "int"),
            ("Custom", "long")
        ]
    );
    assert_eq!(column_values(&t, "RemotePort"), vec![Value::Int(443)]);
}

fn record(category: &str, ts: &str, device: &str, pid: serde_json::Value) -> String {
    serde_json::json!({
        "time": ts, "tenantId": "00000000-0000-0000-0000-000000000001", "operationName": "Publish",
        "category": category, "_TimeReceivedBySvc": ts,
        "properties": {"Timestamp": ts, "DeviceName": device, "ProcessId": pid, "MachineGroup": null, "AdditionalFields": "{\"x\":1}"}
    })
    .to_string()
}

#[test]
fn json_streaming_records_mixed_tables() {
    let d = tmp();
    let lines = [
        record(
            "AdvancedHunting-DeviceProcessEvents",
            "2024-06-01T10:00:00.123456Z",
            "wks-01",
            serde_json::json!(1),
        ),
        record(
            "AdvancedHunting-DeviceNetworkEvents",
            "2024-06-01T10:00:01.123456Z",
            "wks-02",
            serde_json::json!(2),
        ),
        "{broken".to_string(),
        String::new(),
        record(
            "AdvancedHunting-DeviceProcessEvents",
            "2024-06-01T10:00:02.123456Z",
            "wks-03",
            serde_json::json!("x"),
        ),
    ];
    let p = write(d.path(), "PT1H.json", lines.join("\n"));
    let tables = read(&[s(&p)], &ReadOptions::default()).unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["DeviceProcessEvents", "DeviceNetworkEvents"]);
    let procs = &tables[0];
    assert_eq!(
        column_values(procs, "DeviceName"),
        vec![
            Value::String("wks-01".into()),
            Value::String("wks-03".into())
        ]
    );
    assert_eq!(
        column_values(procs, "Timestamp")[0],
        Value::DateTime(dt("2024-06-01T10:00:00.123456Z"))
    );
    // Object keys: documented columns in the documentation's order, then the others.
    let cols: Vec<&str> = procs.columns().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        cols,
        [
            "Timestamp",
            "DeviceName",
            "ProcessId",
            "AdditionalFields",
            "MachineGroup"
        ]
    );
    // MachineGroup is undocumented and always null: a string column.
    assert!(procs
        .columns()
        .iter()
        .any(|(n, t)| n == "MachineGroup" && *t == rmmhunt::KqlType::String));
    let r = only_report(procs);
    assert_eq!(r.format, "jsonl (Streaming API records)");
    assert_eq!((r.rows, r.bad_rows, r.dropped_rows), (2, 2, 1));
    assert_eq!(r.other_tables.get("DeviceNetworkEvents"), Some(&1));
    assert_eq!(r.examples[0].line, Some(3));
    assert!(r.examples[0].reason.contains("not valid JSON"));
    assert_eq!(
        (r.examples[1].line, r.examples[1].column.as_deref()),
        (Some(5), Some("ProcessId"))
    );

    // Asking for one table gives only it, and says what else is there.
    let t = read_table(&[s(&p)], &opts(Some("DeviceNetworkEvents"))).unwrap();
    assert_eq!(
        column_values(&t, "DeviceName"),
        vec![Value::String("wks-02".into())]
    );
    assert!(
        t.notes().iter().any(|n| n.contains("DeviceProcessEvents")),
        "{:?}",
        t.notes()
    );

    // read_table refuses to guess between several.
    let e = read_table(&[s(&p)], &ReadOptions::default()).unwrap_err();
    assert!(e.message.contains("several tables"), "{e}");
}

#[test]
fn json_streaming_records_document_gzipped() {
    let d = tmp();
    let doc = format!(
        "{{\n  \"records\": [\n    {},\n    {}\n  ]\n}}\n",
        record(
            "AdvancedHunting-DeviceProcessEvents",
            "2024-06-01T10:00:00.1234567Z",
            "wks-01",
            serde_json::json!(7)
        ),
        record(
            "AdvancedHunting-DeviceProcessEvents",
            "not a time",
            "wks-02",
            serde_json::json!(8)
        ),
    );
    let p = write(d.path(), "message.json.gz", gz(doc.as_bytes()));
    let t = one(&p, None);
    assert_eq!(t.name(), "DeviceProcessEvents");
    assert_eq!(
        column_values(&t, "ProcessId"),
        vec![Value::Long(7), Value::Long(8)]
    );
    let r = only_report(&t);
    assert_eq!(r.format, "json (Streaming API records)");
    assert_eq!((r.rows, r.bad_rows), (2, 1));
    assert_eq!(r.examples[0].line, Some(4));
}

#[test]
fn json_lines_inferred_without_a_table() {
    let d = tmp();
    let text = "{\"When\": \"2024-06-01T10:00:00Z\", \"n\": 1, \"x\": 1.5, \"ok\": true, \"tags\": [1], \"s\": \"a\"}\n\
                {\"When\": \"2024-06-01T11:00:00Z\", \"n\": 2, \"x\": 2, \"ok\": false, \"tags\": {\"a\": 1}, \"s\": 5}\n\
                [1, 2]\n";
    let p = write(d.path(), "rows.jsonl", text);
    let t = one(&p, Some("Custom"));
    let types: Vec<(&str, &str)> = t
        .columns()
        .iter()
        .map(|(n, t)| (n.as_str(), t.name()))
        .collect();
    // Undocumented keys in order of first appearance.
    assert_eq!(
        types,
        [
            ("When", "datetime"),
            ("n", "long"),
            ("x", "real"),
            ("ok", "bool"),
            ("tags", "dynamic"),
            ("s", "string")
        ]
    );
    assert_eq!(
        column_values(&t, "s"),
        vec![Value::String("a".into()), Value::String("5".into())]
    );
    let r = only_report(&t);
    // A line holding an array is an array of rows: each number in it is a broken row.
    assert_eq!((r.rows, r.dropped_rows), (2, 2), "{r}");
    assert!(
        r.examples[0]
            .reason
            .contains("a JSON number, not an object"),
        "{r}"
    );
    assert_eq!(r.examples[0].line, Some(3));
    let rows = query(
        "Custom | where When > datetime(2024-06-01T10:30:00Z) | project n",
        vec![t],
    );
    assert_eq!(rows, vec![vec![serde_json::json!(2)]]);
}

#[test]
fn json_truncated_document_is_a_data_error() {
    let d = tmp();
    let p = write(d.path(), "ah.json", &AH_API[..AH_API.len() / 2]);
    let e = read(&[s(&p)], &opts(Some("DeviceProcessEvents"))).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert!(
        e.message.contains("ah.json") && e.message.contains("truncated"),
        "{e}"
    );
}

#[test]
fn json_strict_names_file_and_line() {
    let d = tmp();
    let p = write(
        d.path(),
        "rows.jsonl",
        "{\"ProcessId\": 1}\n{\"ProcessId\": \"one\"}\n",
    );
    let o = ReadOptions {
        table: Some("DeviceProcessEvents".into()),
        strict: true,
        ..ReadOptions::default()
    };
    let t = read_table(&[s(&p)], &o).unwrap();
    let c = catalog(vec![t]);
    let e = run_query("DeviceProcessEvents | count", &c, 0).unwrap_err();
    assert!(
        e.message.contains("rows.jsonl")
            && e.message.contains("line 2")
            && e.message.contains("ProcessId"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// Files, directories, globs, gzip, several files per table

#[test]
fn directories_globs_and_several_formats() {
    let d = tmp();
    let root = d.path();
    write(root, "a/one.csv", "DeviceName,ProcessId\nwks-1,1\n");
    write(
        root,
        "a/b/two.jsonl.gz",
        gz(b"{\"DeviceName\": \"wks-2\", \"FileName\": \"x.exe\"}\n"),
    );
    write(root, "a/.hidden.csv", "DeviceName\nnope\n");
    write(root, "a/readme.txt", "not data");
    let tables = read(&[s(&root.join("a"))], &opts(Some("DeviceProcessEvents"))).unwrap();
    assert_eq!(tables.len(), 1);
    let t = &tables[0];
    assert_eq!(t.paths().len(), 2);
    let cols: Vec<&str> = t.columns().iter().map(|(n, _)| n.as_str()).collect();
    // In order of appearance: b/two.jsonl.gz (directories are walked in name order), then one.csv.
    assert_eq!(cols, ["DeviceName", "FileName", "ProcessId"]);
    assert!(
        t.notes().iter().any(|n| n.contains("readme.txt")),
        "{:?}",
        t.notes()
    );
    let rows = query(
        "DeviceProcessEvents | order by DeviceName asc | project DeviceName, FileName, ProcessId",
        tables,
    );
    assert_eq!(
        rows,
        vec![
            vec![
                serde_json::json!("wks-1"),
                serde_json::json!(""),
                serde_json::json!(1)
            ],
            vec![
                serde_json::json!("wks-2"),
                serde_json::json!("x.exe"),
                serde_json::json!(null)
            ],
        ]
    );

    let pattern = format!("{}/a/**/*.gz", root.display());
    let t = read_table(&[pattern], &opts(Some("DeviceProcessEvents"))).unwrap();
    assert_eq!(t.paths().len(), 1);

    let e = read(
        &[format!("{}/nothing-*.csv", root.display())],
        &opts(Some("T")),
    )
    .unwrap_err();
    assert!(e.message.contains("no files match"), "{e}");
    let e = read(&[s(&root.join("missing.csv"))], &opts(Some("T"))).unwrap_err();
    assert!(e.message.contains("missing.csv"), "{e}");
}

#[test]
fn truncated_gzip_is_a_data_error_naming_the_file() {
    let d = tmp();
    let mut big = String::from("DeviceName,ProcessId\n");
    for i in 0..20_000 {
        big.push_str(&format!("wks-{i},{i}\n"));
    }
    let z = gz(big.as_bytes());
    let p = write(d.path(), "procs.csv.gz", &z[..z.len() / 2]);
    let r = read(&[s(&p)], &opts(Some("DeviceProcessEvents"))).and_then(|t| {
        let c = catalog(t);
        run_query("DeviceProcessEvents | count", &c, 0)
    });
    let e = r.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert!(
        e.message.contains("procs.csv.gz") && e.message.contains("gzip"),
        "{e}"
    );
}

#[test]
fn reports_are_kept_from_complete_scans() {
    let d = tmp();
    let p = write(d.path(), "procs.csv", PLAIN_CSV);
    let t = one(&p, Some("DeviceProcessEvents"));
    // A scan that needs one column still checks every value of the file.
    let req = ScanRequest {
        needed: vec![false, true, false, false, false],
        time_range: None,
        prefilter: None,
    };
    let n: usize = t.scan(&req).unwrap().map(|c| c.unwrap().len).sum();
    assert_eq!(n, 4);
    std::fs::remove_file(&p).unwrap();
    let r = only_report(&t);
    assert_eq!(r.bad_rows, 3);
}

#[test]
fn to_record_batch_gives_all_rows() {
    let d = tmp();
    let p = write(d.path(), "procs.csv", PLAIN_CSV);
    let t = one(&p, Some("DeviceProcessEvents"));
    let b = t.to_record_batch().unwrap();
    assert_eq!(b.num_rows(), 4);
    assert_eq!(b.num_columns(), 5);
    assert_eq!(
        b.schema()
            .field(0)
            .metadata()
            .get("kql_type")
            .map(String::as_str),
        Some("datetime")
    );
}

// ---------------------------------------------------------------------------------------
// Robustness: no input panics

fn read_everything(path: &Path, table: &str) {
    for strict in [false, true] {
        let o = ReadOptions {
            table: Some(table.into()),
            strict,
            ..ReadOptions::default()
        };
        let Ok(tables) = read(&[s(path)], &o) else {
            continue;
        };
        for t in &tables {
            let req = ScanRequest {
                needed: vec![true; t.columns().len()],
                time_range: None,
                prefilter: None,
            };
            if let Ok(stream) = t.scan(&req) {
                for c in stream {
                    if c.is_err() {
                        break;
                    }
                }
            }
            let _ = t.report();
        }
    }
}

#[test]
fn truncated_and_mangled_files_never_panic() {
    let d = tmp();
    let pq = d.path().join("src.parquet");
    process_parquet(&pq, 2, 30);
    let fixtures: Vec<(&str, Vec<u8>)> = vec![
        ("f.parquet", std::fs::read(&pq).unwrap()),
        ("f.csv", PLAIN_CSV.as_bytes().to_vec()),
        ("f2.csv", PORTAL_CSV.as_bytes().to_vec()),
        ("f.json", AH_API.as_bytes().to_vec()),
        (
            "f.jsonl",
            record(
                "AdvancedHunting-DeviceProcessEvents",
                "2024-06-01T10:00:00Z",
                "w",
                serde_json::json!(1),
            )
            .into_bytes(),
        ),
        ("f.csv.gz", gz(PLAIN_CSV.as_bytes())),
    ];
    for (name, bytes) in &fixtures {
        let step = (bytes.len() / 40).max(1);
        for cut in (0..bytes.len()).step_by(step) {
            let p = write(d.path(), name, &bytes[..cut]);
            read_everything(&p, "DeviceProcessEvents");
        }
        for k in (0..bytes.len()).step_by(step) {
            let mut m = bytes.clone();
            m[k] ^= 0xff;
            if k + 1 < m.len() {
                m[k + 1] = b'"';
            }
            let p = write(d.path(), name, &m);
            read_everything(&p, "DeviceProcessEvents");
        }
    }
    // Random binary junk under every extension.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let junk: Vec<u8> = (0..3000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    for name in ["j.parquet", "j.csv", "j.json", "j.jsonl", "j.gz"] {
        let p = write(d.path(), name, &junk);
        read_everything(&p, "DeviceProcessEvents");
        let mut par = b"PAR1".to_vec();
        par.extend_from_slice(&junk);
        par.extend_from_slice(b"\x10\x00\x00\x00PAR1");
        let p = write(d.path(), name, &par);
        read_everything(&p, "DeviceProcessEvents");
    }
}

/// `q`'s rows over the DeviceProcessEvents file `p` read whole into memory first.
fn in_memory(p: &Path, q: &str) -> Vec<Vec<serde_json::Value>> {
    let rb = one(p, Some("DeviceProcessEvents"))
        .to_record_batch()
        .unwrap();
    let mut c: Catalog = HashMap::new();
    c.insert(
        "DeviceProcessEvents".into(),
        Arc::new(rmmhunt::MemTable::new(rb.schema(), vec![rb])) as Arc<dyn TableProvider>,
    );
    run_query(q, &c, 0).unwrap().rows_json()
}

/// A prefilter runs inside the Parquet reader: only the rows it keeps come back (other
/// columns decoded for those rows only), the report still counts every row read, and a
/// query gives the same rows as over the data in memory.
#[test]
fn parquet_prefilter_decodes_kept_rows_only() {
    use rmmhunt::table::Prefilter;
    let d = tmp();
    let p = d.path().join("procs.parquet");
    process_parquet(&p, 3, 40);
    let t = one(&p, Some("DeviceProcessEvents"));
    let keep_anydesk = Prefilter {
        columns: vec![2],
        eval: Arc::new(|cols: &[Option<ArrayRef>], rows: usize| {
            let a = cols[2].as_ref().expect("FileName given");
            let a = arrow::compute::cast(a, &DataType::Utf8).unwrap();
            let s = a.as_any().downcast_ref::<StringArray>().unwrap();
            assert_eq!(arrow::array::Array::len(s), rows);
            Ok((0..rows)
                .map(|i| Some(s.value(i) == "AnyDesk.exe"))
                .collect())
        }),
        first: None,
    };
    let req = ScanRequest {
        needed: vec![true, true, true, true, false],
        time_range: None,
        prefilter: Some(keep_anydesk),
    };
    let batches: Vec<RecordBatch> = t
        .scan_arrow(&req)
        .unwrap()
        .unwrap()
        .collect::<rmmhunt::Result<_>>()
        .unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 12);
    let reports = t.report().unwrap();
    assert_eq!(reports[0].rows, 120);

    // Through the engine: the filter is pushed into the reader and still exact.
    let q = "DeviceProcessEvents | where FileName has 'anydesk' and Timestamp > datetime(2024-06-02) \
             | summarize n = count(), first = min(ProcessId) by DeviceName | order by DeviceName asc";
    let from_file = query(q, vec![one(&p, Some("DeviceProcessEvents"))]);
    assert_eq!(from_file, in_memory(&p, q));
    assert_eq!(from_file.len(), 4);
}

/// Many queries over a Parquet table in one pass: the shared prefilter (any member's
/// rows) runs in the reader, and each query still gets exactly its own result.
#[test]
fn parquet_many_queries_one_pass() {
    let d = tmp();
    let p = d.path().join("procs.parquet");
    process_parquet(&p, 3, 40);
    let c = catalog(vec![one(&p, Some("DeviceProcessEvents"))]);
    let texts = [
        "DeviceProcessEvents | where FileName has 'anydesk' | summarize n = count() by DeviceName | order by DeviceName asc",
        "DeviceProcessEvents | where DeviceName has 'wks-03' and Timestamp > datetime(2024-06-02) | count",
        "DeviceProcessEvents | where FileName hasprefix 'proc1' or DeviceName has 'wks-00' | summarize max(ProcessId)",
        "DeviceProcessEvents | where ProcessId > 1030 | count",
    ];
    let qs: Vec<rmmhunt::Query> = texts
        .iter()
        .map(|t| rmmhunt::Query::parse(t).unwrap())
        .collect();
    let refs: Vec<&rmmhunt::Query> = qs.iter().collect();
    let together = rmmhunt::Query::run_many(&refs, &c, ticks::UNIX_EPOCH, 2);
    for (q, r) in texts.iter().zip(together) {
        assert_eq!(
            r.unwrap().rows_json(),
            query(q, vec![one(&p, Some("DeviceProcessEvents"))]),
            "{q}"
        );
    }
    // Row groups decoded on several threads come back in file order (no sort here).
    let rb = one(&p, Some("DeviceProcessEvents"))
        .to_record_batch()
        .unwrap();
    let mut mem: Catalog = HashMap::new();
    mem.insert(
        "DeviceProcessEvents".into(),
        Arc::new(rmmhunt::MemTable::new(rb.schema(), vec![rb])) as Arc<dyn TableProvider>,
    );
    let q = rmmhunt::Query::parse(
        "DeviceProcessEvents | where FileName has 'anydesk' or DeviceName has 'wks-03' | project ProcessId, Timestamp",
    )
    .unwrap();
    let want = q
        .run_with_threads(&mem, ticks::UNIX_EPOCH, 1)
        .unwrap()
        .rows_json();
    assert!(want.len() > 20);
    for threads in [1, 2, 3] {
        let got = q
            .run_with_threads(&c, ticks::UNIX_EPOCH, threads)
            .unwrap()
            .rows_json();
        assert_eq!(got, want, "threads={threads}");
        let many = rmmhunt::Query::run_many(&[&q, &q], &c, ticks::UNIX_EPOCH, threads);
        for r in many {
            assert_eq!(r.unwrap().rows_json(), want, "run_many threads={threads}");
        }
    }
}

/// Over Parquet the string predicates run first and the time column decodes only for the
/// rows they keep; a query with no string test (or whose disjunction holds a time test,
/// which is no raw predicate) leaves no first stage. Each query gives the rows it gives in
/// memory, alone and in one pass with the others.
#[test]
fn parquet_strings_before_time_same_rows() {
    let d = tmp();
    let p = d.path().join("procs.parquet");
    process_parquet(&p, 3, 40);
    let texts = [
        "DeviceProcessEvents | where FileName has 'anydesk' and Timestamp > datetime(2024-06-02) | summarize n = count(), lo = min(Timestamp) by DeviceName | order by DeviceName asc",
        "DeviceProcessEvents | where FileName has 'anydesk' or Timestamp < datetime(2024-06-01 00:00:10) | count",
        "DeviceProcessEvents | where Timestamp between (datetime(2024-06-02)..datetime(2024-06-03)) and FileName !has 'anydesk' | count",
        "DeviceProcessEvents | where Timestamp > datetime(2024-06-02) and (FileName has 'proc1' or DeviceName has 'wks-00') | count",
        "DeviceProcessEvents | where DeviceName has 'wks-03' and FileName !has 'anydesk' and Timestamp > datetime(2024-06-02) | summarize n = count(), hi = max(ProcessId)",
        "DeviceProcessEvents | where Timestamp > datetime(2024-06-03) | count",
    ];
    let expected: Vec<_> = texts.iter().map(|q| in_memory(&p, q)).collect();
    for (q, want) in texts.iter().zip(&expected) {
        assert_eq!(
            &query(q, vec![one(&p, Some("DeviceProcessEvents"))]),
            want,
            "{q}"
        );
    }
    assert_eq!(expected[0].len(), 4);
    // Together, with and without the time-only query.
    for n in [5, 6] {
        let c = catalog(vec![one(&p, Some("DeviceProcessEvents"))]);
        let qs: Vec<rmmhunt::Query> = texts[..n]
            .iter()
            .map(|t| rmmhunt::Query::parse(t).unwrap())
            .collect();
        let refs: Vec<&rmmhunt::Query> = qs.iter().collect();
        for (i, r) in rmmhunt::Query::run_many(&refs, &c, ticks::UNIX_EPOCH, 1)
            .into_iter()
            .enumerate()
        {
            assert_eq!(&r.unwrap().rows_json(), &expected[i], "{}", texts[i]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Encodings, binary files, byte-string Parquet columns, line numbers

fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let mut units: Vec<u16> = Vec::new();
    if bom {
        units.push(0xfeff);
    }
    units.extend(text.encode_utf16());
    units
        .iter()
        .flat_map(|u| {
            if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            }
        })
        .collect()
}

#[test]
fn utf16_text_is_transcoded() {
    let d = tmp();
    let text = "Timestamp,DeviceName,ProcessId,FileName\r\n\
        2024-06-01T10:00:00Z,wks-1,5,caf\u{e9}.exe\r\n\
        2024-06-01T11:00:00Z,wks-\u{1F600},x,AnyDesk.exe\r\n";
    let cases = [
        ("le.csv", utf16(text, false, true), "UTF-16LE"),
        ("be.csv", utf16(text, true, true), "UTF-16BE"),
        ("nobom.csv", utf16(text, false, false), "UTF-16LE"),
        ("le.csv.gz", gz(&utf16(text, false, true)), "UTF-16LE"),
    ];
    for (name, bytes, enc) in cases {
        let p = write(d.path(), name, bytes);
        let t = one(&p, Some("DeviceProcessEvents"));
        assert_eq!(t.columns().len(), 4, "{name}: {:?}", t.columns());
        assert_eq!(
            column_values(&t, "DeviceName"),
            vec![
                Value::String("wks-1".into()),
                Value::String("wks-\u{1F600}".into())
            ],
            "{name}"
        );
        assert_eq!(
            column_values(&t, "FileName")[0],
            Value::String("caf\u{e9}.exe".into())
        );
        let r = only_report(&t);
        assert_eq!((r.rows, r.bad_rows), (2, 1), "{name}: {r}");
        assert!(r.format.contains(enc), "{name}: {}", r.format);
        // The bad value's line is the file's line.
        assert_eq!(r.examples[0].line, Some(3), "{name}: {r}");
        assert_eq!(r.examples[0].column.as_deref(), Some("ProcessId"));
    }
    // UTF-16 JSON Lines too.
    let jl = "{\"Timestamp\": \"2024-06-01T10:00:00Z\", \"DeviceName\": \"w\u{e9}\"}\n";
    let p = write(
        d.path(),
        "DeviceProcessEvents.jsonl",
        utf16(jl, false, true),
    );
    let t = one(&p, None);
    assert_eq!(
        column_values(&t, "DeviceName"),
        vec![Value::String("w\u{e9}".into())]
    );
    // An unpaired surrogate is replaced and reported, not dropped silently.
    let mut bytes = utf16("DeviceName,FileName\nwks-1,a", false, true);
    bytes.extend([0x00, 0xd8]);
    bytes.extend(utf16("b.exe\n", false, false));
    let p = write(d.path(), "surrogate.csv", bytes);
    let t = one(&p, Some("DeviceProcessEvents"));
    assert_eq!(
        column_values(&t, "FileName"),
        vec![Value::String("a\u{fffd}b.exe".into())]
    );
    let r = only_report(&t);
    assert_eq!(r.bad_rows, 1, "{r}");
    assert_eq!(r.examples[0].line, Some(2), "{r}");
}

#[test]
fn binary_and_utf32_files_are_refused_naming_the_file() {
    let d = tmp();
    let bytes: Vec<u8> = (0..=255u8).cycle().take(2000).collect();
    let mut zip = b"PK\x03\x04\x14\x00\x06\x00".to_vec();
    zip.extend(b"[Content_Types].xml".iter().cycle().take(300));
    let mut utf32 = b"\xff\xfe\x00\x00".to_vec();
    utf32.extend("a,b\n".chars().flat_map(|c| (c as u32).to_le_bytes()));
    for (name, content, says) in [
        (
            "random.bin",
            bytes.clone(),
            "not a CSV, JSON or Parquet file",
        ),
        (
            "random.csv",
            bytes.clone(),
            "not a CSV, JSON or Parquet file",
        ),
        (
            "random.json.gz",
            gz(&bytes),
            "not a CSV, JSON or Parquet file",
        ),
        ("book.csv", zip, "not a CSV, JSON or Parquet file"),
        ("wide.csv", utf32, "UTF-32 text: save it as UTF-8"),
    ] {
        let p = write(d.path(), name, content);
        let e = read(&[s(&p)], &opts(Some("DeviceProcessEvents"))).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Data, "{name}: {e}");
        assert!(e.message.contains(name), "{name}: {e}");
        assert!(e.message.contains(says), "{name}: {e}");
        // A forced text format does not read it either.
        let o = ReadOptions {
            format: Some(Format::Csv),
            ..opts(Some("DeviceProcessEvents"))
        };
        assert!(read(&[s(&p)], &o).is_err(), "{name}");
    }
    // A stray NUL inside a value of a text file is kept, as before.
    let p = write(
        d.path(),
        "nul.csv",
        "DeviceName,FileName\nwks-1,a\0b\nwks-2,c\nwks-3,d\nwks-4,e\n",
    );
    let t = one(&p, Some("DeviceProcessEvents"));
    assert_eq!(
        column_values(&t, "FileName")[0],
        Value::String("a\0b".into())
    );
}

#[test]
fn parquet_binary_string_columns_read_as_utf8() {
    use arrow::array::{BinaryArray, BinaryViewArray, LargeBinaryArray};
    let d = tmp();
    let schema = Arc::new(ArrowSchema::new(vec![
        Field::new("DeviceName", DataType::Binary, true),
        Field::new("FileName", DataType::LargeBinary, true),
        Field::new("FolderPath", DataType::BinaryView, true),
        Field::new("ProcessId", DataType::Int64, true),
    ]));
    let names: Vec<Option<&[u8]>> = vec![Some(b"wks-1"), Some(b"caf\xe9"), None];
    let files: Vec<Option<&[u8]>> = vec![Some(b"a.exe"), Some(b"b.exe"), Some(b"c.exe")];
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(BinaryArray::from(names)),
            Arc::new(LargeBinaryArray::from(files.clone())),
            Arc::new(BinaryViewArray::from(files)),
            Arc::new(Int64Array::from(vec![1, 2, 3])),
        ],
    )
    .unwrap();
    let p = d.path().join("DeviceProcessEvents.parquet");
    let mut w = ArrowWriter::try_new(std::fs::File::create(&p).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let t = one(&p, None);
    assert_eq!(
        column_values(&t, "DeviceName"),
        vec![
            Value::String("wks-1".into()),
            Value::String("caf\u{fffd}".into()),
            Value::String(String::new())
        ]
    );
    assert_eq!(
        column_values(&t, "FolderPath")[2],
        Value::String("c.exe".into())
    );
    assert_eq!(
        query(
            "DeviceProcessEvents | where FileName endswith '.exe' | summarize n = count(), d = max(DeviceName)",
            vec![one(&p, None)]
        ),
        vec![vec![serde_json::json!(3), serde_json::json!("wks-1")]]
    );
    let r = only_report(&t);
    assert_eq!((r.rows, r.bad_rows), (3, 1), "{r}");
    assert_eq!(r.examples[0].row, 2);
    assert_eq!(r.examples[0].column.as_deref(), Some("DeviceName"));
    assert!(r.examples[0].reason.contains("invalid UTF-8"), "{r}");
    // Raw Arrow scans (the engine's Parquet path) decode the same way.
    let rb = t.to_record_batch().unwrap();
    assert_eq!(rb.num_rows(), 3);
}

#[test]
fn parquet_binary_columns_not_documented_as_string_are_clear_errors() {
    use arrow::array::BinaryArray;
    let d = tmp();
    let schema = Arc::new(ArrowSchema::new(vec![
        Field::new("DeviceName", DataType::Utf8, true),
        Field::new("ProcessId", DataType::Binary, true),
        Field::new("Blob", DataType::Binary, true),
    ]));
    let bytes: Vec<Option<&[u8]>> = vec![Some(b"12"), Some(b"\x00\x01")];
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["wks-1", "wks-2"])),
            Arc::new(BinaryArray::from(bytes.clone())),
            Arc::new(BinaryArray::from(bytes)),
        ],
    )
    .unwrap();
    let p = d.path().join("DeviceProcessEvents.parquet");
    let mut w = ArrowWriter::try_new(std::fs::File::create(&p).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    // Queries that do not read the binary columns work.
    assert_eq!(
        query(
            "DeviceProcessEvents | where DeviceName == 'wks-2' | project DeviceName",
            vec![one(&p, None)]
        ),
        vec![vec![serde_json::json!("wks-2")]]
    );
    for (q, column) in [
        ("DeviceProcessEvents | project ProcessId", "ProcessId"),
        ("DeviceProcessEvents | project Blob", "Blob"),
    ] {
        let c = catalog(vec![one(&p, None)]);
        let e = run_query(q, &c, ticks::UNIX_EPOCH).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Data, "{e}");
        for part in ["DeviceProcessEvents.parquet", column, "Binary", "bytes"] {
            assert!(e.message.contains(part), "{q}: {part} not in {e}");
        }
        assert!(!e.message.contains("dynamic value"), "{e}");
    }
    // The report says what was not read.
    let r = only_report(&one(&p, None));
    assert!(
        r.warnings.iter().any(|w| w.contains("ProcessId")),
        "{:?}",
        r.warnings
    );
}

#[test]
fn csv_lines_are_file_lines_with_crlf() {
    let d = tmp();
    for (name, eol) in [("lf.csv", "\n"), ("crlf.csv", "\r\n")] {
        let text = [
            "Timestamp,DeviceName,ProcessId",
            "2024-06-01T10:00:00Z,caf\u{0}e,1",
            "2024-06-01T10:00:00Z,wks-2,x",
            "",
            "2024-06-01T10:00:00Z,\"two\nlines\",3",
            "2024-06-01T10:00:00Z,wks-4,y",
        ]
        .join(eol)
            + eol;
        // Invalid UTF-8 in row 1 (file line 2).
        let bytes = text.replace('\u{0}', "\u{1}").into_bytes();
        let bytes: Vec<u8> = bytes
            .into_iter()
            .map(|b| if b == 1 { 0xe9 } else { b })
            .collect();
        let p = write(d.path(), name, bytes);
        let t = one(&p, Some("DeviceProcessEvents"));
        let r = only_report(&t);
        let lines: Vec<(Option<u64>, Option<&str>)> = r
            .examples
            .iter()
            .map(|e| (e.line, e.column.as_deref()))
            .collect();
        assert_eq!(
            lines,
            [
                (Some(2), Some("DeviceName")),
                (Some(3), Some("ProcessId")),
                (Some(7), Some("ProcessId"))
            ],
            "{name}: {r}"
        );
    }
}
