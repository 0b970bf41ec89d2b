"""Field maps: documented defaults per table, overrides, and errors that are never silent."""

from __future__ import annotations

import importlib.resources
import json

import pytest
from rmmhunt.rules import FieldMap, FieldMapError
from rmmhunt.rules.fieldmap import DEFAULT_FIELDS, SENTINEL_COLUMNS, TABLE_COLUMNS

TABLES = ["DeviceProcessEvents", "DeviceNetworkEvents", "DeviceFileCertificateInfo"]


@pytest.mark.parametrize(
    ("table", "field", "column"),
    [
        # the four, and the seed's fields
        ("DeviceProcessEvents", "process.parent_process_name", "InitiatingProcessFileName"),
        ("DeviceProcessEvents", "process.command_line", "ProcessCommandLine"),
        ("DeviceProcessEvents", "process.file_path", "FolderPath"),
        ("DeviceProcessEvents", "process.name", "FileName"),
        # the other obvious ones
        ("DeviceProcessEvents", "process.parent_command_line", "InitiatingProcessCommandLine"),
        ("DeviceProcessEvents", "process.parent.command_line", "InitiatingProcessCommandLine"),
        ("DeviceProcessEvents", "process.parent_file_path", "InitiatingProcessFolderPath"),
        ("DeviceProcessEvents", "process.sha1", "SHA1"),
        ("DeviceProcessEvents", "process.hash.sha256", "SHA256"),
        ("DeviceProcessEvents", "process.md5", "MD5"),
        ("DeviceProcessEvents", "process.parent_sha256", "InitiatingProcessSHA256"),
        ("DeviceProcessEvents", "process.company_name", "ProcessVersionInfoCompanyName"),
        ("DeviceProcessEvents", "process.product_name", "ProcessVersionInfoProductName"),
        ("DeviceProcessEvents", "process.original_file_name", "ProcessVersionInfoOriginalFileName"),
        (
            "DeviceProcessEvents",
            "process.parent_company_name",
            "InitiatingProcessVersionInfoCompanyName",
        ),
        (
            "DeviceProcessEvents",
            "process.grandparent_process_name",
            "InitiatingProcessParentFileName",
        ),
        ("DeviceProcessEvents", "user.name", "AccountName"),
        ("DeviceProcessEvents", "account.name", "AccountName"),
        ("DeviceProcessEvents", "user.upn", "AccountUpn"),
        ("DeviceProcessEvents", "process.parent_user.name", "InitiatingProcessAccountName"),
        ("DeviceProcessEvents", "device.name", "DeviceName"),
        ("DeviceProcessEvents", "host.name", "DeviceName"),
        ("DeviceProcessEvents", "device.id", "DeviceId"),
        ("DeviceProcessEvents", "event.action", "ActionType"),
        # network events: the process is the one that made the connection
        ("DeviceNetworkEvents", "process.name", "InitiatingProcessFileName"),
        ("DeviceNetworkEvents", "process.command_line", "InitiatingProcessCommandLine"),
        ("DeviceNetworkEvents", "process.file_path", "InitiatingProcessFolderPath"),
        ("DeviceNetworkEvents", "process.parent_process_name", "InitiatingProcessParentFileName"),
        ("DeviceNetworkEvents", "process.company_name", "InitiatingProcessVersionInfoCompanyName"),
        ("DeviceNetworkEvents", "user.name", "InitiatingProcessAccountName"),
        ("DeviceNetworkEvents", "destination.ip", "RemoteIP"),
        ("DeviceNetworkEvents", "url", "RemoteUrl"),
        ("DeviceNetworkEvents", "source.ip", "LocalIP"),
        ("DeviceNetworkEvents", "network.protocol", "Protocol"),
        ("DeviceNetworkEvents", "device.name", "DeviceName"),
        # certificates
        ("DeviceFileCertificateInfo", "file.sha1", "SHA1"),
        ("DeviceFileCertificateInfo", "certificate.signer", "Signer"),
        ("DeviceFileCertificateInfo", "certificate.issuer", "Issuer"),
        ("DeviceFileCertificateInfo", "certificate.serial_number", "CertificateSerialNumber"),
        ("DeviceFileCertificateInfo", "device.name", "DeviceName"),
    ],
)
def test_defaults(table: str, field: str, column: str) -> None:
    fm = FieldMap.for_table(table)
    assert fm[field] == column
    assert fm.resolve(field) == column


@pytest.mark.parametrize("table", TABLES)
def test_every_default_names_a_documented_column(table: str) -> None:
    for field, column in DEFAULT_FIELDS[table].items():
        assert column in TABLE_COLUMNS[table], (field, column)


def test_columns_agree_with_the_packaged_schema() -> None:
    path = importlib.resources.files("rmmhunt") / "data" / "schemas.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    for table in TABLES:
        documented = {c["name"]: c["type"] for c in schema["tables"][table]["columns"]}
        assert TABLE_COLUMNS[table] == documented


def test_sentinel_columns_are_known() -> None:
    fm = FieldMap.for_table("DeviceProcessEvents")
    assert fm.columns is not None
    for name in SENTINEL_COLUMNS:
        assert name in fm.columns
    assert fm.column_type("ReportId") == "long"
    assert fm.column_type("FileName") == "string"


def test_unknown_field_is_an_error_with_suggestions() -> None:
    fm = FieldMap.for_table("DeviceProcessEvents")
    with pytest.raises(FieldMapError) as info:
        fm.resolve("process.comand_line")
    assert "process.command_line" in str(info.value)
    assert info.value.field == "process.comand_line"
    assert info.value.table == "DeviceProcessEvents"
    assert isinstance(info.value, ValueError)


def test_a_column_missing_from_the_data_is_an_error() -> None:
    fm = FieldMap.for_table("DeviceProcessEvents")
    with pytest.raises(FieldMapError, match="FolderPath") as info:
        fm.resolve("process.file_path", present=["FileName", "DeviceId"])
    assert info.value.column == "FolderPath"
    assert fm.resolve("process.file_path", present=["FolderPath"]) == "FolderPath"


def test_fields_absent_from_a_table_are_errors() -> None:
    with pytest.raises(FieldMapError):
        FieldMap.for_table("DeviceFileCertificateInfo").resolve("process.name")
    with pytest.raises(FieldMapError):
        FieldMap.for_table("DeviceProcessEvents").resolve("destination.ip")


def test_override() -> None:
    base = FieldMap.for_table("DeviceProcessEvents")
    over = base.override(
        {"process.parent_process_name": "InitiatingProcessParentFileName", "custom.tag": "Tag_s"},
        columns={"Tag_s": "string"},
    )
    assert over["process.parent_process_name"] == "InitiatingProcessParentFileName"
    assert over.resolve("custom.tag") == "Tag_s"
    assert base["process.parent_process_name"] == "InitiatingProcessFileName"  # unchanged
    assert over != base and over.table == base.table
    # re-pointing at a column the table does not have is caught
    bad = base.override({"process.name": "NoSuchColumn"})
    with pytest.raises(FieldMapError, match="NoSuchColumn"):
        bad.resolve("process.name")


def test_custom_map_and_unknown_table() -> None:
    fm = FieldMap("MyTable", {"a.b": "Col"})
    assert fm.resolve("a.b") == "Col"  # no known columns: only the data can refuse it
    with pytest.raises(FieldMapError):
        fm.resolve("a.b", present=["Other"])
    with pytest.raises(FieldMapError, match="no field map for table"):
        FieldMap.for_table("SigninLogs")


def test_mapping_protocol_and_describe() -> None:
    fm = FieldMap.for_table("DeviceProcessEvents")
    assert "process.name" in fm and len(fm) == len(list(fm))
    text = fm.describe()
    assert text.startswith("DeviceProcessEvents:")
    assert "process.parent_process_name" in text and "InitiatingProcessFileName" in text
    with pytest.raises(TypeError):
        hash(fm)
