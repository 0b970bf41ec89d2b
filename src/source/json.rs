//! JSON in the shapes Defender data leaves Microsoft's services:
//! - the Advanced Hunting API response `{"Schema": [{"Name", "Type"}], "Results": [...]}`
//!   and the Graph `runHuntingQuery` response `{"schema": [{"name", "type"}], "results": [...]}`;
//! - the Streaming API / storage-account export `{"records": [{"time", "tenantId",
//!   "category": "AdvancedHunting-DeviceProcessEvents", "properties": {...}}]}`, as whole
//!   documents or one record per line, the table taken from `category`;
//! - plain JSON Lines (one row object per line) and arrays of row objects.
//!
//! Files with one JSON value per line are streamed line by line; a whole document (one
//! value spread over several lines) is read into memory (API responses hold at most
//! 100,000 rows; Event Hub messages are small).

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, Read};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value as J};

use crate::column::Chunk;
use crate::error::{Error, Result};
use crate::source::report::{FileReport, Loc, Tracker};
use crate::source::values::{json_kind_name, Kind, Zone};
use crate::source::{
    schemas, FileState, Found, Input, Mode, Part, PartReader, Probe, RowColumns, SrcType, Target,
};
use crate::types::KqlType;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// One JSON value per line.
    Lines,
    /// One JSON value over the whole file.
    Document,
}

pub(crate) struct JsonFile {
    layout: Layout,
}

/// A row's table named by its content: `AdvancedHunting-DeviceProcessEvents` -> `DeviceProcessEvents`.
fn table_of_category(category: &str) -> String {
    let c = category.trim();
    let name = if c.len() > 16 && c[..16].eq_ignore_ascii_case("AdvancedHunting-") {
        &c[16..]
    } else {
        c
    };
    schemas::canonical_table(name)
        .map(str::to_string)
        .unwrap_or_else(|| name.to_string())
}

/// The Kusto type of an API `Schema` type name (`DateTime`, `Int64`, `Object`...).
fn api_type(name: &str) -> Option<KqlType> {
    Some(match name.to_ascii_lowercase().as_str() {
        "datetime" | "date" | "system.datetime" => KqlType::DateTime,
        "string" | "system.string" => KqlType::String,
        "int32" | "int" | "int16" | "uint16" | "byte" | "system.int32" => KqlType::Int,
        "int64" | "long" | "uint32" | "uint64" | "system.int64" => KqlType::Long,
        "boolean" | "bool" | "sbyte" | "system.boolean" => KqlType::Bool,
        "double" | "real" | "single" | "float" | "decimal" | "system.double" => KqlType::Real,
        "object" | "dynamic" | "system.object" => KqlType::Dynamic,
        "guid" | "uniqueid" | "system.guid" => KqlType::Guid,
        "timespan" | "time" | "system.timespan" => KqlType::TimeSpan,
        _ => return None,
    })
}

#[derive(Deserialize)]
struct ApiColumn {
    #[serde(rename = "Name", alias = "name")]
    name: String,
    #[serde(rename = "Type", alias = "type", default)]
    ty: String,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "Schema", alias = "schema", default)]
    schema: Option<Vec<ApiColumn>>,
    #[serde(rename = "Results", alias = "results", borrow, default)]
    results: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    records: Option<Vec<&'a RawValue>>,
}

type ApiSchema = Arc<Vec<(String, Option<KqlType>)>>;

/// What a pass over a JSON file yields.
enum Event {
    Row {
        loc: Loc,
        table: Option<String>,
        row: Map<String, J>,
        api: Option<ApiSchema>,
    },
    Broken {
        loc: Loc,
        text: String,
        reason: String,
    },
}

fn schema_of(v: &J) -> Option<ApiSchema> {
    let cols = v.as_array()?;
    let mut out = Vec::new();
    for c in cols {
        let name = c.get("Name").or_else(|| c.get("name"))?.as_str()?;
        let ty = c
            .get("Type")
            .or_else(|| c.get("type"))
            .and_then(|t| t.as_str())
            .and_then(api_type);
        out.push((name.to_string(), ty));
    }
    Some(Arc::new(out))
}

/// How items are to be read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ItemKind {
    /// Anything: an API response, a `records` document, a record, a row, an array of those.
    Any,
    /// A Streaming API record or a row.
    Record,
    /// A row of an API response.
    ApiRow,
}

/// Expands one JSON value into row events.
struct Expander {
    row: u64,
}

impl Expander {
    fn loc(&mut self, line: u64) -> Loc {
        self.row += 1;
        Loc {
            line: Some(line),
            row: self.row,
        }
    }

    fn broken(&mut self, line: u64, v: &J, reason: String, out: &mut VecDeque<Event>) {
        let loc = self.loc(line);
        out.push_back(Event::Broken {
            loc,
            text: v.to_string(),
            reason,
        });
    }

    fn expand(
        &mut self,
        v: J,
        line: u64,
        kind: ItemKind,
        api: Option<&ApiSchema>,
        out: &mut VecDeque<Event>,
    ) {
        let mut map = match v {
            J::Object(map) => map,
            J::Array(items) if kind == ItemKind::Any => {
                for item in items {
                    self.expand(item, line, ItemKind::Record, None, out);
                }
                return;
            }
            other => {
                let reason = format!("a JSON {}, not an object", json_kind_name(&other));
                self.broken(line, &other, reason, out);
                return;
            }
        };
        if kind == ItemKind::ApiRow {
            let loc = self.loc(line);
            out.push_back(Event::Row {
                loc,
                table: None,
                row: map,
                api: api.cloned(),
            });
            return;
        }
        if kind == ItemKind::Any {
            let key = |m: &Map<String, J>, a: &str, b: &str| {
                if m.contains_key(a) {
                    a.to_string()
                } else {
                    b.to_string()
                }
            };
            let (rk, sk) = (
                key(&map, "Results", "results"),
                key(&map, "Schema", "schema"),
            );
            if matches!(map.get(&rk), Some(J::Array(_))) && map.contains_key(&sk) {
                let api = map.get(&sk).and_then(schema_of);
                if let Some(J::Array(rows)) = map.remove(&rk) {
                    for r in rows {
                        self.expand(r, line, ItemKind::ApiRow, api.as_ref(), out);
                    }
                }
                return;
            }
            if matches!(map.get("records"), Some(J::Array(_))) {
                if let Some(J::Array(records)) = map.remove("records") {
                    for r in records {
                        self.expand(r, line, ItemKind::Record, None, out);
                    }
                }
                return;
            }
        }
        let loc = self.loc(line);
        let is_record = matches!(
            (map.get("category"), map.get("properties")),
            (Some(J::String(_)), Some(J::Object(_)))
        );
        match (is_record, map.remove("properties")) {
            (true, Some(J::Object(p))) => {
                let table = map
                    .get("category")
                    .and_then(|c| c.as_str())
                    .map(table_of_category);
                out.push_back(Event::Row {
                    loc,
                    table,
                    row: p,
                    api: None,
                });
            }
            (_, props) => {
                if let Some(p) = props {
                    map.insert("properties".to_string(), p);
                }
                out.push_back(Event::Row {
                    loc,
                    table: None,
                    row: map,
                    api: None,
                })
            }
        }
    }
}

/// A pass over a JSON file, event by event.
enum Source {
    Lines {
        input: Input,
        rdr: Box<dyn BufRead + Send>,
        line: u64,
        buf: Vec<u8>,
    },
    Document {
        text: String,
        items: Vec<(usize, usize)>,
        kind: ItemKind,
        api: Option<ApiSchema>,
        newlines: Vec<usize>,
        next: usize,
    },
    Done,
}

struct Events {
    source: Source,
    expander: Expander,
    queue: VecDeque<Event>,
}

fn line_of(newlines: &[usize], offset: usize) -> u64 {
    newlines.partition_point(|&p| p < offset) as u64 + 1
}

/// The byte offset of `inner` within `outer` (a sub-slice of it).
fn offset_in(outer: &str, inner: &str) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

impl Events {
    fn open(input: &Input, layout: Layout) -> Result<Events> {
        let source = match layout {
            Layout::Lines => Source::Lines {
                input: input.clone(),
                rdr: input.open()?,
                line: 0,
                buf: Vec::new(),
            },
            Layout::Document => {
                let mut bytes = Vec::new();
                input
                    .open()?
                    .read_to_end(&mut bytes)
                    .map_err(|e| input.io_error(e))?;
                let text = String::from_utf8(bytes).map_err(|e| {
                    Error::data(format!(
                        "{}: not UTF-8 text (byte {})",
                        input.display,
                        e.utf8_error().valid_up_to()
                    ))
                })?;
                document(input, text)?
            }
        };
        Ok(Events {
            source,
            expander: Expander { row: 0 },
            queue: VecDeque::new(),
        })
    }

    fn next(&mut self) -> Result<Option<Event>> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(Some(e));
            }
            match &mut self.source {
                Source::Done => return Ok(None),
                Source::Lines {
                    input,
                    rdr,
                    line,
                    buf,
                } => {
                    buf.clear();
                    let n = rdr.read_until(b'\n', buf).map_err(|e| input.io_error(e))?;
                    if n == 0 {
                        self.source = Source::Done;
                        continue;
                    }
                    *line += 1;
                    let l = *line;
                    let mut bytes = &buf[..];
                    if l == 1 {
                        bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
                    }
                    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
                        continue;
                    }
                    match serde_json::from_slice::<J>(bytes) {
                        Ok(v) => self
                            .expander
                            .expand(v, l, ItemKind::Any, None, &mut self.queue),
                        Err(e) => {
                            let loc = self.expander.loc(l);
                            let text = String::from_utf8_lossy(bytes).trim_end().to_string();
                            self.queue.push_back(Event::Broken {
                                loc,
                                text,
                                reason: format!("not valid JSON ({e})"),
                            });
                        }
                    }
                }
                Source::Document {
                    text,
                    items,
                    kind,
                    api,
                    newlines,
                    next,
                } => {
                    let Some(&(start, end)) = items.get(*next) else {
                        self.source = Source::Done;
                        continue;
                    };
                    *next += 1;
                    let line = line_of(newlines, start);
                    let slice = text.get(start..end).unwrap_or("");
                    match serde_json::from_str::<J>(slice) {
                        Ok(v) => {
                            self.expander
                                .expand(v, line, *kind, api.as_ref(), &mut self.queue)
                        }
                        Err(e) => {
                            let loc = self.expander.loc(line);
                            self.queue.push_back(Event::Broken {
                                loc,
                                text: slice.to_string(),
                                reason: format!("not valid JSON ({e})"),
                            });
                        }
                    }
                }
            }
        }
    }
}

fn document(input: &Input, text: String) -> Result<Source> {
    let bad = |e: serde_json::Error| {
        Error::data(format!(
            "{}: not a valid JSON document (line {}, column {}): {e}; is the file truncated?",
            input.display,
            e.line(),
            e.column()
        ))
    };
    let newlines: Vec<usize> = memchr::memchr_iter(b'\n', text.as_bytes()).collect();
    let body = text.trim_start_matches('\u{feff}');
    let trimmed = body.trim_start();
    let (items, kind, api): (Vec<(usize, usize)>, ItemKind, Option<ApiSchema>) = if trimmed
        .starts_with('[')
    {
        let raw: Vec<&RawValue> = serde_json::from_str(body).map_err(bad)?;
        let items = raw
            .iter()
            .map(|r| {
                (
                    offset_in(&text, r.get()),
                    offset_in(&text, r.get()) + r.get().len(),
                )
            })
            .collect();
        (items, ItemKind::Record, None)
    } else {
        let env: Envelope<'_> = serde_json::from_str(body).map_err(bad)?;
        let span = |r: &&RawValue| {
            (
                offset_in(&text, r.get()),
                offset_in(&text, r.get()) + r.get().len(),
            )
        };
        match (env.schema, env.results, env.records) {
            (schema, Some(results), _) => {
                let api = schema.map(|s| {
                    Arc::new(
                        s.into_iter()
                            .map(|c| (c.name, api_type(&c.ty)))
                            .collect::<Vec<_>>(),
                    )
                });
                (results.iter().map(span).collect(), ItemKind::ApiRow, api)
            }
            (_, _, Some(records)) => (records.iter().map(span).collect(), ItemKind::Record, None),
            _ => {
                let start = offset_in(&text, trimmed);
                (vec![(start, text.len())], ItemKind::Record, None)
            }
        }
    };
    Ok(Source::Document {
        text,
        items,
        kind,
        api,
        newlines,
        next: 0,
    })
}

/// Whether the file holds one JSON value per line (else one document).
fn layout_of(input: &Input) -> Result<Layout> {
    let mut rdr = input.open()?;
    let mut seen = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = rdr
            .read_until(b'\n', &mut buf)
            .map_err(|e| input.io_error(e))?;
        if n == 0 {
            return Ok(Layout::Document);
        }
        let line = buf.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&buf);
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        // A line that is a whole object: JSON Lines. A pretty-printed document's first lines
        // (`{`, `"Schema": [`) are not; a broken first line of a JSON Lines file is allowed
        // if the next one is whole.
        let first = line.iter().find(|b| !b.is_ascii_whitespace()).copied();
        if first == Some(b'{') && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok() {
            return Ok(Layout::Lines);
        }
        seen += 1;
        if seen >= 2 {
            return Ok(Layout::Document);
        }
    }
}

type Columns = Vec<(String, SrcType)>;

/// Per table (None: rows naming no table): its columns and how their values look.
#[derive(Default)]
struct Survey {
    tables: Vec<(Option<String>, Columns, HashMap<String, usize>)>,
    saw_api: bool,
    saw_records: bool,
}

impl Survey {
    fn table(
        &mut self,
        table: Option<String>,
    ) -> &mut (Option<String>, Columns, HashMap<String, usize>) {
        let i = match self.tables.iter().position(|(t, _, _)| *t == table) {
            Some(i) => i,
            None => {
                self.tables.push((table, Vec::new(), HashMap::new()));
                self.tables.len() - 1
            }
        };
        &mut self.tables[i]
    }

    fn column(
        entry: &mut (Option<String>, Columns, HashMap<String, usize>),
        name: &str,
        src: SrcType,
    ) {
        let (_, cols, index) = entry;
        match index.get(name) {
            Some(&i) => {
                if let (Some((_, SrcType::Json(old))), SrcType::Json(k)) = (cols.get_mut(i), &src) {
                    *old = old.merge(*k);
                }
            }
            None => {
                index.insert(name.to_string(), cols.len());
                cols.push((name.to_string(), src));
            }
        }
    }

    fn row(
        &mut self,
        table: Option<String>,
        keys: impl IntoIterator<Item = (impl AsRef<str>, Kind)>,
        api: Option<&ApiSchema>,
    ) {
        self.saw_api |= api.is_some();
        self.saw_records |= table.is_some();
        let entry = self.table(table);
        if let Some(api) = api {
            for (name, ty) in api.iter() {
                Survey::column(
                    entry,
                    name,
                    ty.map_or(SrcType::Json(Kind::Unknown), SrcType::Typed),
                );
            }
        }
        for (k, kind) in keys {
            Survey::column(entry, k.as_ref(), SrcType::Json(kind));
        }
    }
}

/// What the survey needs of one JSON Lines item, read without building its values.
#[derive(Default)]
struct Glance<'de> {
    category: Option<String>,
    top: Vec<(Cow<'de, str>, Kind)>,
    properties: Option<Vec<(Cow<'de, str>, Kind)>>,
    /// An API response or a `records` document: read it whole instead.
    nested: bool,
}

/// The [`Kind`] of a JSON value, and the value itself when it is a string.
struct Peek(Kind, Option<String>);
/// A `properties` value: an object's keys and kinds, or just a kind.
struct Props<'de>(std::result::Result<Vec<(Cow<'de, str>, Kind)>, Kind>);

/// An object key, borrowed from the input where it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Key<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

struct PeekVisitor;

impl<'de> serde::de::Visitor<'de> for PeekVisitor {
    type Value = Peek;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Peek, E> {
        Ok(Peek(Kind::Bool, None))
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Peek, E> {
        Ok(Peek(Kind::Long, None))
    }
    fn visit_u64<E>(self, v: u64) -> std::result::Result<Peek, E> {
        Ok(Peek(
            if i64::try_from(v).is_ok() {
                Kind::Long
            } else {
                Kind::Real
            },
            None,
        ))
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Peek, E> {
        Ok(Peek(Kind::Real, None))
    }
    fn visit_str<E>(self, v: &str) -> std::result::Result<Peek, E> {
        Ok(Peek(Kind::of_str(v), Some(v.to_string())))
    }
    fn visit_unit<E>(self) -> std::result::Result<Peek, E> {
        Ok(Peek(Kind::Unknown, None))
    }
    fn visit_none<E>(self) -> std::result::Result<Peek, E> {
        Ok(Peek(Kind::Unknown, None))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Peek, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Peek(Kind::Dynamic, None))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Peek, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Peek(Kind::Dynamic, None))
    }
}

impl<'de> Deserialize<'de> for Peek {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Peek, D::Error> {
        d.deserialize_any(PeekVisitor)
    }
}

impl<'de> Deserialize<'de> for Props<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Props<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Props<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Props<'de>, A::Error> {
                let mut keys = Vec::new();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    let Peek(kind, _) = map.next_value()?;
                    keys.push((k, kind));
                }
                Ok(Props(Ok(keys)))
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Props<'de>, E> {
                let _ = v;
                Ok(Props(Err(Kind::Bool)))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Props<'de>, E> {
                let _ = v;
                Ok(Props(Err(Kind::Long)))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Props<'de>, E> {
                Ok(Props(Err(if i64::try_from(v).is_ok() {
                    Kind::Long
                } else {
                    Kind::Real
                })))
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Props<'de>, E> {
                let _ = v;
                Ok(Props(Err(Kind::Real)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Props<'de>, E> {
                Ok(Props(Err(Kind::of_str(v))))
            }
            fn visit_unit<E>(self) -> std::result::Result<Props<'de>, E> {
                Ok(Props(Err(Kind::Unknown)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Props<'de>, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Props(Err(Kind::Dynamic)))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Glance<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(
        d: D,
    ) -> std::result::Result<Glance<'de>, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Glance<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Glance<'de>, A::Error> {
                let mut g = Glance::default();
                while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
                    match k.as_ref() {
                        "records" | "Results" | "results" => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            g.nested = true;
                        }
                        "properties" => match map.next_value::<Props>()?.0 {
                            Ok(keys) => {
                                g.properties = Some(keys);
                                g.top.push((k, Kind::Dynamic));
                            }
                            Err(kind) => g.top.push((k, kind)),
                        },
                        _ => {
                            let Peek(kind, text) = map.next_value()?;
                            if k == "category" {
                                g.category = text;
                            }
                            g.top.push((k, kind));
                        }
                    }
                }
                Ok(g)
            }
        }
        d.deserialize_map(V)
    }
}

pub(crate) fn probe(input: &Input) -> Result<Probe> {
    let layout = layout_of(input)?;
    let file = JsonFile { layout };
    let mut survey = Survey::default();
    if layout == Layout::Lines {
        // Each line at a glance (keys and the kinds of their values); lines that are not
        // plain rows or records are read whole.
        let mut rdr = input.open()?;
        let mut buf = Vec::new();
        let mut expander = Expander { row: 0 };
        let mut queue = VecDeque::new();
        loop {
            buf.clear();
            if rdr
                .read_until(b'\n', &mut buf)
                .map_err(|e| input.io_error(e))?
                == 0
            {
                break;
            }
            match serde_json::from_slice::<Glance>(&buf) {
                Ok(g) if !g.nested => match (g.category, g.properties) {
                    (Some(c), Some(props)) => survey.row(Some(table_of_category(&c)), props, None),
                    _ => survey.row(None, g.top, None),
                },
                _ => {
                    if let Ok(v) = serde_json::from_slice::<J>(&buf) {
                        expander.expand(v, 0, ItemKind::Any, None, &mut queue);
                    }
                }
            }
            while let Some(ev) = queue.pop_front() {
                if let Event::Row {
                    table, row, api, ..
                } = ev
                {
                    let keys: Vec<(String, Kind)> =
                        row.iter().map(|(k, v)| (k.clone(), Kind::of(v))).collect();
                    survey.row(table, keys, api.as_ref());
                }
            }
        }
    } else {
        let mut events = Events::open(input, layout)?;
        while let Some(ev) = events.next()? {
            if let Event::Row {
                table, row, api, ..
            } = ev
            {
                let keys: Vec<(String, Kind)> =
                    row.iter().map(|(k, v)| (k.clone(), Kind::of(v))).collect();
                survey.row(table, keys, api.as_ref());
            }
        }
    }
    let Survey {
        tables,
        saw_api,
        saw_records,
    } = survey;
    let found = tables
        .into_iter()
        .map(|(table, columns, _)| Found {
            table,
            columns,
            ordered: saw_api,
        })
        .collect();
    let mut format = String::from(if layout == Layout::Lines {
        "jsonl"
    } else {
        "json"
    });
    if saw_api {
        format.push_str(" (Advanced Hunting API)");
    } else if saw_records {
        format.push_str(" (Streaming API records)");
    }
    Ok(Probe {
        format,
        found,
        state: FileState::Json(Arc::new(file)),
    })
}

struct JsonReader {
    /// Whether this part reads the rows whose content names no table.
    unnamed: bool,
    events: Events,
    cols: RowColumns,
    tracker: Tracker,
    table: String,
    batch_rows: usize,
    done: bool,
}

pub(crate) fn reader<'a>(
    part: &'a Part,
    file: Arc<JsonFile>,
    targets: Vec<Target>,
    mode: Mode,
) -> Result<Box<dyn PartReader + 'a>> {
    let events = Events::open(&part.input, file.layout)?;
    let tracker = Tracker::new(&part.input.display, &part.format, &part.table, mode.strict);
    let cols = RowColumns::new(targets, |_| Zone::Utc, mode);
    Ok(Box::new(JsonReader {
        unnamed: part.unnamed,
        events,
        cols,
        tracker,
        table: part.table.clone(),
        batch_rows: mode.batch_rows,
        done: false,
    }))
}

impl JsonReader {
    fn take(&mut self, ev: Event) -> Result<()> {
        match ev {
            Event::Broken { loc, text, reason } => self.tracker.broken_row(loc, &text, &reason),
            Event::Row {
                loc, table, row, ..
            } => {
                // Rows whose content names no table belong to the part read for them.
                match table {
                    Some(t) if !self.unnamed && crate::source::canonical(&t) == self.table => {}
                    None if self.unnamed => {}
                    Some(t) => {
                        self.tracker.other_table(&crate::source::canonical(&t));
                        return Ok(());
                    }
                    None => {
                        self.tracker.other_table("(rows naming no table)");
                        return Ok(());
                    }
                }
                for (t, b) in self.cols.targets.iter().zip(self.cols.builders.iter_mut()) {
                    let Some(b) = b.as_mut() else { continue };
                    let v = row.get(&t.name);
                    if let Err(p) = b.push_json(v) {
                        let text = match v {
                            Some(J::String(s)) => s.clone(),
                            Some(v) => v.to_string(),
                            None => String::new(),
                        };
                        self.tracker.bad_value(loc, &t.name, &text, &p)?;
                    }
                }
                self.cols.rows += 1;
                self.tracker.report.rows += 1;
                Ok(())
            }
        }
    }
}

impl PartReader for JsonReader {
    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        if self.done {
            return Ok(None);
        }
        while self.cols.rows < self.batch_rows {
            match self.events.next()? {
                Some(ev) => self.take(ev)?,
                None => {
                    self.done = true;
                    break;
                }
            }
        }
        Ok(Some(self.cols.finish().0))
    }

    fn into_report(self: Box<Self>) -> FileReport {
        self.tracker.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_name_tables() {
        assert_eq!(
            table_of_category("AdvancedHunting-DeviceProcessEvents"),
            "DeviceProcessEvents"
        );
        assert_eq!(
            table_of_category("advancedhunting-devicenetworkevents"),
            "DeviceNetworkEvents"
        );
        assert_eq!(
            table_of_category("AdvancedHunting-EmailEvents"),
            "EmailEvents"
        );
    }

    #[test]
    fn glance_reads_keys_and_kinds() {
        let line = br#"{"category": "AdvancedHunting-DeviceProcessEvents", "properties": {"Device\u004eame": "w", "ProcessId": 5, "T": "2024-06-01T00:00:00Z", "X": [1]}}"#;
        let g: Glance<'_> = serde_json::from_slice(line).unwrap();
        assert_eq!(
            g.category.as_deref(),
            Some("AdvancedHunting-DeviceProcessEvents")
        );
        let props: Vec<(String, Kind)> = g
            .properties
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k.into_owned(), v))
            .collect();
        assert_eq!(
            props,
            [
                ("DeviceName".to_string(), Kind::String),
                ("ProcessId".to_string(), Kind::Long),
                ("T".to_string(), Kind::DateTime),
                ("X".to_string(), Kind::Dynamic)
            ]
        );
        assert!(serde_json::from_slice::<Glance<'_>>(b"[1, 2]").is_err());
        assert!(
            serde_json::from_slice::<Glance<'_>>(br#"{"records": []}"#)
                .unwrap()
                .nested
        );
    }

    #[test]
    fn api_types() {
        assert_eq!(api_type("DateTime"), Some(KqlType::DateTime));
        assert_eq!(api_type("Int64"), Some(KqlType::Long));
        assert_eq!(api_type("Object"), Some(KqlType::Dynamic));
        assert_eq!(api_type("Whatever"), None);
    }
}
