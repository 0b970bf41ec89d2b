//! The documented columns and Kusto types of the Defender tables the rule pack reads
//! (`DeviceProcessEvents`, `DeviceNetworkEvents`, `DeviceFileCertificateInfo`), embedded
//! from the package's `data/schemas.json` so the Rust core and the Python package agree.

use std::sync::OnceLock;

use serde::Deserialize;

use crate::plan::Schema;
use crate::types::KqlType;

static SCHEMAS_JSON: &str = include_str!("../../python/rmmhunt/data/schemas.json");

#[derive(Deserialize)]
struct File {
    tables: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Table {
    columns: Vec<ColumnDef>,
}

#[derive(Deserialize)]
struct ColumnDef {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

fn load() -> Vec<(String, Schema)> {
    let Ok(file) = serde_json::from_str::<File>(SCHEMAS_JSON) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, table) in file.tables {
        let Ok(table) = serde_json::from_value::<Table>(table) else {
            continue;
        };
        let schema: Schema = table
            .columns
            .into_iter()
            .map(|c| {
                let ty = KqlType::from_name(&c.ty.to_ascii_lowercase()).unwrap_or(KqlType::String);
                (c.name, ty)
            })
            .collect();
        out.push((name, schema));
    }
    out
}

fn all() -> &'static [(String, Schema)] {
    static TABLES: OnceLock<Vec<(String, Schema)>> = OnceLock::new();
    TABLES.get_or_init(load)
}

/// The names of the tables whose schema rmmhunt knows.
pub fn known_tables() -> Vec<&'static str> {
    all().iter().map(|(n, _)| n.as_str()).collect()
}

/// The documented columns of `table` (exact name), in the documentation's order.
pub fn table_schema(table: &str) -> Option<&'static Schema> {
    all().iter().find(|(n, _)| n == table).map(|(_, s)| s)
}

/// The known table spelled `name` in any case (`deviceprocessevents` ->
/// `DeviceProcessEvents`).
pub fn canonical_table(name: &str) -> Option<&'static str> {
    all()
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(n, _)| n.as_str())
}

/// The documented type of `column` in `table`, if both are known.
pub fn column_type(table: &str, column: &str) -> Option<KqlType> {
    table_schema(table)?
        .iter()
        .find(|(n, _)| n == column)
        .map(|(_, t)| *t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_schemas_parse() {
        let names = known_tables();
        for t in [
            "DeviceProcessEvents",
            "DeviceNetworkEvents",
            "DeviceFileCertificateInfo",
        ] {
            assert!(names.contains(&t), "{t} missing from {names:?}");
        }
        assert_eq!(
            column_type("DeviceProcessEvents", "Timestamp"),
            Some(KqlType::DateTime)
        );
        assert_eq!(
            column_type("DeviceProcessEvents", "ProcessId"),
            Some(KqlType::Long)
        );
        assert_eq!(
            column_type("DeviceNetworkEvents", "RemotePort"),
            Some(KqlType::Int)
        );
        assert_eq!(
            canonical_table("devicenetworkevents"),
            Some("DeviceNetworkEvents")
        );
        assert_eq!(canonical_table("Nope"), None);
    }
}
