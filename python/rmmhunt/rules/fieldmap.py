"""Field maps: from the field paths used in false-positive filters to table columns.

Scenario filters are written against neutral, ECS-like field paths
(``process.parent_process_name``, ``process.command_line``, ...). A :class:`FieldMap` turns them
into the column names of one Defender table. The defaults are below, one per table, and a map can
be overridden (:meth:`FieldMap.override`) or replaced entirely.

A field that the map does not know, or that maps to a column the table does not have, raises
:class:`~rmmhunt.rules.FieldMapError`. It is never turned into a silent ``false``.

Conventions of the defaults
---------------------------
* ``process.*`` is the process the event is about. In DeviceProcessEvents that is the *created*
  process (``FileName``, ``ProcessCommandLine``, ``FolderPath``, ...); its parent is the
  *initiating* process, so ``process.parent_*`` maps to ``InitiatingProcess*``. In
  DeviceNetworkEvents the process is the one that made the connection, the initiating process,
  so ``process.*`` maps to ``InitiatingProcess*`` and ``process.parent_*`` to
  ``InitiatingProcessParent*``.
* ``process.parent.<x>`` (ECS spelling) is accepted wherever ``process.parent_<x>`` is.
* ``user.*`` / ``account.*``: the account of the process.
* ``device.*`` / ``host.*``: the device. ``event.action``: ``ActionType``;
  ``event.report_id``: ``ReportId``.
* DeviceFileCertificateInfo has no process: ``file.*`` and ``certificate.*`` only.

The column lists (and Kusto types) of the three tables are those documented by Microsoft
(MicrosoftDocs/defender-docs, ``advanced-hunting-<table>-table.md``), plus the columns that the
Log Analytics / Sentinel copies add (``TimeGenerated``, ``TenantId``, ``SourceSystem``, ``Type``,
``MachineGroup``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping

from .errors import FieldMapError

__all__ = ["DEFAULT_FIELDS", "TABLE_COLUMNS", "FieldMap"]


def _columns(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in spec.split():
        name, _, kusto_type = item.partition(":")
        out[name] = kusto_type
    return out


#: Documented columns of each table, name -> Kusto type, in documented order.
TABLE_COLUMNS: dict[str, dict[str, str]] = {
    "DeviceProcessEvents": _columns(
        """
        Timestamp:datetime DeviceId:string DeviceName:string ActionType:string FileName:string
        FolderPath:string SHA1:string SHA256:string MD5:string FileSize:long
        ProcessVersionInfoCompanyName:string ProcessVersionInfoProductName:string
        ProcessVersionInfoProductVersion:string ProcessVersionInfoInternalFileName:string
        ProcessVersionInfoOriginalFileName:string ProcessVersionInfoFileDescription:string
        ProcessId:long ProcessCommandLine:string ProcessIntegrityLevel:string
        ProcessTokenElevation:string ProcessCreationTime:datetime AccountDomain:string
        AccountName:string AccountSid:string AccountUpn:string AccountObjectId:string LogonId:long
        InitiatingProcessAccountDomain:string InitiatingProcessAccountName:string
        InitiatingProcessAccountSid:string InitiatingProcessAccountUpn:string
        InitiatingProcessAccountObjectId:string InitiatingProcessLogonId:long
        InitiatingProcessIntegrityLevel:string InitiatingProcessTokenElevation:string
        InitiatingProcessSHA1:string InitiatingProcessSHA256:string InitiatingProcessMD5:string
        InitiatingProcessFileName:string InitiatingProcessFileSize:long
        InitiatingProcessVersionInfoCompanyName:string InitiatingProcessVersionInfoProductName:string
        InitiatingProcessVersionInfoProductVersion:string
        InitiatingProcessVersionInfoInternalFileName:string
        InitiatingProcessVersionInfoOriginalFileName:string
        InitiatingProcessVersionInfoFileDescription:string InitiatingProcessId:long
        InitiatingProcessCommandLine:string InitiatingProcessCreationTime:datetime
        InitiatingProcessFolderPath:string InitiatingProcessParentId:long
        InitiatingProcessParentFileName:string InitiatingProcessParentCreationTime:datetime
        InitiatingProcessSignerType:string InitiatingProcessSignatureStatus:string ReportId:long
        AppGuardContainerId:string AdditionalFields:string InitiatingProcessSessionId:long
        IsInitiatingProcessRemoteSession:bool InitiatingProcessRemoteSessionDeviceName:string
        InitiatingProcessRemoteSessionIP:string CreatedProcessSessionId:long
        IsProcessRemoteSession:bool ProcessRemoteSessionDeviceName:string
        ProcessRemoteSessionIP:string ProcessUniqueId:string InitiatingProcessUniqueId:string
        """
    ),
    "DeviceNetworkEvents": _columns(
        """
        Timestamp:datetime DeviceId:string DeviceName:string ActionType:string RemoteIP:string
        RemotePort:int RemoteUrl:string LocalIP:string LocalPort:int Protocol:string
        LocalIPType:string RemoteIPType:string InitiatingProcessSHA1:string
        InitiatingProcessSHA256:string InitiatingProcessMD5:string InitiatingProcessFileName:string
        InitiatingProcessFileSize:long InitiatingProcessVersionInfoCompanyName:string
        InitiatingProcessVersionInfoProductName:string
        InitiatingProcessVersionInfoProductVersion:string
        InitiatingProcessVersionInfoInternalFileName:string
        InitiatingProcessVersionInfoOriginalFileName:string
        InitiatingProcessVersionInfoFileDescription:string InitiatingProcessId:long
        InitiatingProcessCommandLine:string InitiatingProcessCreationTime:datetime
        InitiatingProcessFolderPath:string InitiatingProcessParentFileName:string
        InitiatingProcessParentId:long InitiatingProcessParentCreationTime:datetime
        InitiatingProcessAccountDomain:string InitiatingProcessAccountName:string
        InitiatingProcessAccountSid:string InitiatingProcessAccountUpn:string
        InitiatingProcessAccountObjectId:string InitiatingProcessIntegrityLevel:string
        InitiatingProcessTokenElevation:string ReportId:long AppGuardContainerId:string
        AdditionalFields:string InitiatingProcessSessionId:long
        IsInitiatingProcessRemoteSession:bool InitiatingProcessRemoteSessionDeviceName:string
        InitiatingProcessRemoteSessionIP:string
        """
    ),
    "DeviceFileCertificateInfo": _columns(
        """
        Timestamp:datetime DeviceId:string DeviceName:string SHA1:string IsSigned:bool
        SignatureType:string Signer:string SignerHash:string Issuer:string IssuerHash:string
        CertificateSerialNumber:string CrlDistributionPointUrls:string
        CertificateCreationTime:datetime CertificateExpirationTime:datetime
        CertificateCountersignatureTime:datetime IsTrusted:bool IsRootSignerMicrosoft:bool
        ReportId:long
        """
    ),
}

#: Columns that the Log Analytics / Sentinel copies of the tables add.
SENTINEL_COLUMNS: dict[str, str] = _columns(
    "TimeGenerated:datetime TenantId:string SourceSystem:string Type:string MachineGroup:string"
)

_DEVICE = {
    "device.id": "DeviceId",
    "device.name": "DeviceName",
    "host.id": "DeviceId",
    "host.name": "DeviceName",
    "event.report_id": "ReportId",
    "event.timestamp": "Timestamp",
}


def _process(prefix: str, *, created: bool) -> dict[str, str]:
    """Fields of one process whose columns start with ``prefix`` (``""`` for the created process
    of DeviceProcessEvents, whose columns have irregular names)."""
    if created:
        names = {
            "name": "FileName",
            "file_path": "FolderPath",
            "executable": "FolderPath",
            "command_line": "ProcessCommandLine",
            "pid": "ProcessId",
            "sha1": "SHA1",
            "sha256": "SHA256",
            "md5": "MD5",
            "file_size": "FileSize",
            "integrity_level": "ProcessIntegrityLevel",
            "token_elevation": "ProcessTokenElevation",
            "creation_time": "ProcessCreationTime",
            "company_name": "ProcessVersionInfoCompanyName",
            "product_name": "ProcessVersionInfoProductName",
            "product_version": "ProcessVersionInfoProductVersion",
            "internal_file_name": "ProcessVersionInfoInternalFileName",
            "original_file_name": "ProcessVersionInfoOriginalFileName",
            "file_description": "ProcessVersionInfoFileDescription",
        }
    else:
        names = {
            "name": f"{prefix}FileName",
            "file_path": f"{prefix}FolderPath",
            "executable": f"{prefix}FolderPath",
            "command_line": f"{prefix}CommandLine",
            "pid": f"{prefix}Id",
            "sha1": f"{prefix}SHA1",
            "sha256": f"{prefix}SHA256",
            "md5": f"{prefix}MD5",
            "file_size": f"{prefix}FileSize",
            "integrity_level": f"{prefix}IntegrityLevel",
            "token_elevation": f"{prefix}TokenElevation",
            "creation_time": f"{prefix}CreationTime",
            "company_name": f"{prefix}VersionInfoCompanyName",
            "product_name": f"{prefix}VersionInfoProductName",
            "product_version": f"{prefix}VersionInfoProductVersion",
            "internal_file_name": f"{prefix}VersionInfoInternalFileName",
            "original_file_name": f"{prefix}VersionInfoOriginalFileName",
            "file_description": f"{prefix}VersionInfoFileDescription",
            "signer_type": f"{prefix}SignerType",
            "signature_status": f"{prefix}SignatureStatus",
        }
    names["company"] = names["company_name"]
    names["hash.sha1"] = names["sha1"]
    names["hash.sha256"] = names["sha256"]
    names["hash.md5"] = names["md5"]
    return names


def _account(prefix: str) -> dict[str, str]:
    return {
        "name": f"{prefix}AccountName",
        "domain": f"{prefix}AccountDomain",
        "sid": f"{prefix}AccountSid",
        "upn": f"{prefix}AccountUpn",
        "object_id": f"{prefix}AccountObjectId",
    }


def _build_process_events() -> dict[str, str]:
    out = dict(_DEVICE)
    out["event.action"] = "ActionType"
    for key, col in _process("", created=True).items():
        out[f"process.{key}"] = col
    parent = _process("InitiatingProcess", created=False)
    parent["process_name"] = parent["name"]  # process.parent_process_name (the seed's spelling)
    for key, col in parent.items():
        if "." not in key:  # process.parent_sha1, not process.parent_hash.sha1
            out[f"process.parent_{key}"] = col
        if key != "process_name":  # process.parent.name, not process.parent.process_name
            out[f"process.parent.{key}"] = col
    grandparent = {
        "name": "InitiatingProcessParentFileName",
        "process_name": "InitiatingProcessParentFileName",
        "pid": "InitiatingProcessParentId",
        "creation_time": "InitiatingProcessParentCreationTime",
    }
    for key, col in grandparent.items():
        out[f"process.grandparent_{key}"] = col
        if key != "process_name":
            out[f"process.parent.parent.{key}"] = col
    for key, col in _account("").items():
        out[f"user.{key}"] = col
        out[f"account.{key}"] = col
        out[f"process.user.{key}"] = col
    for key, col in _account("InitiatingProcess").items():
        out[f"process.parent_user.{key}"] = col
        out[f"process.parent.user.{key}"] = col
    out["process.logon_id"] = "LogonId"
    out["process.parent_logon_id"] = "InitiatingProcessLogonId"
    return out


def _build_network_events() -> dict[str, str]:
    out = dict(_DEVICE)
    out["event.action"] = "ActionType"
    proc = _process("InitiatingProcess", created=False)
    del proc["signer_type"], proc["signature_status"]  # not columns of this table
    for key, col in proc.items():
        out[f"process.{key}"] = col
    parent = {
        "name": "InitiatingProcessParentFileName",
        "process_name": "InitiatingProcessParentFileName",
        "pid": "InitiatingProcessParentId",
        "creation_time": "InitiatingProcessParentCreationTime",
    }
    for key, col in parent.items():
        out[f"process.parent_{key}"] = col
        if key != "process_name":
            out[f"process.parent.{key}"] = col
    for key, col in _account("InitiatingProcess").items():
        out[f"user.{key}"] = col
        out[f"account.{key}"] = col
        out[f"process.user.{key}"] = col
    out.update(
        {
            "destination.ip": "RemoteIP",
            "destination.port": "RemotePort",
            "destination.url": "RemoteUrl",
            "destination.domain": "RemoteUrl",
            "destination.ip_type": "RemoteIPType",
            "remote.ip": "RemoteIP",
            "remote.port": "RemotePort",
            "remote.url": "RemoteUrl",
            "url": "RemoteUrl",
            "source.ip": "LocalIP",
            "source.port": "LocalPort",
            "source.ip_type": "LocalIPType",
            "local.ip": "LocalIP",
            "local.port": "LocalPort",
            "network.protocol": "Protocol",
        }
    )
    return out


def _build_certificate_info() -> dict[str, str]:
    out = dict(_DEVICE)
    out.update(
        {
            "file.sha1": "SHA1",
            "file.hash.sha1": "SHA1",
            "file.is_signed": "IsSigned",
            "file.signature_type": "SignatureType",
            "file.signer": "Signer",
            "certificate.signer": "Signer",
            "certificate.signer_hash": "SignerHash",
            "certificate.issuer": "Issuer",
            "certificate.issuer_hash": "IssuerHash",
            "certificate.serial_number": "CertificateSerialNumber",
            "certificate.crl_distribution_point_urls": "CrlDistributionPointUrls",
            "certificate.creation_time": "CertificateCreationTime",
            "certificate.expiration_time": "CertificateExpirationTime",
            "certificate.countersignature_time": "CertificateCountersignatureTime",
            "certificate.is_trusted": "IsTrusted",
            "certificate.is_root_signer_microsoft": "IsRootSignerMicrosoft",
        }
    )
    return out


#: The default field map of each table: field path -> column.
DEFAULT_FIELDS: dict[str, dict[str, str]] = {
    "DeviceProcessEvents": _build_process_events(),
    "DeviceNetworkEvents": _build_network_events(),
    "DeviceFileCertificateInfo": _build_certificate_info(),
}


def _check_defaults() -> None:
    # Every default must point at a documented column: a typo here would be a silent bug.
    for table, fields in DEFAULT_FIELDS.items():
        columns = TABLE_COLUMNS[table]
        for field, column in fields.items():
            if column not in columns:  # pragma: no cover - guarded by tests
                raise AssertionError(f"default field map {table}: {field} -> unknown {column}")


_check_defaults()


class FieldMap(Mapping[str, str]):
    """The field paths of one table and the columns they name.

    ``FieldMap.for_table("DeviceProcessEvents")`` gives the documented default;
    ``.override({...})`` returns a copy with some fields re-pointed or added. A ``FieldMap`` is a
    read-only ``Mapping[str, str]`` (field -> column).

    ``columns`` are the columns the table is known to have, name -> Kusto type (``None`` means
    "unknown": only the names given to :meth:`resolve` are checked then).
    """

    __slots__ = ("_columns", "_fields", "_table")

    def __init__(
        self,
        table: str,
        fields: Mapping[str, str],
        columns: Mapping[str, str] | None = None,
    ) -> None:
        self._table = table
        self._fields = dict(fields)
        self._columns = dict(columns) if columns is not None else None

    @classmethod
    def for_table(cls, table: str) -> FieldMap:
        """The default map of a documented table; the known columns are the documented ones plus
        those that Sentinel adds."""
        if table not in DEFAULT_FIELDS:
            known = ", ".join(sorted(DEFAULT_FIELDS))
            raise FieldMapError(
                f"no field map for table {table!r} (maps exist for {known}); "
                "build one with FieldMap(table, {field: column, ...})",
                field="",
                table=table,
            )
        columns = {**TABLE_COLUMNS[table], **SENTINEL_COLUMNS}
        return cls(table, DEFAULT_FIELDS[table], columns)

    @property
    def table(self) -> str:
        return self._table

    @property
    def columns(self) -> Mapping[str, str] | None:
        return None if self._columns is None else dict(self._columns)

    def override(
        self, fields: Mapping[str, str], *, columns: Mapping[str, str] | None = None
    ) -> FieldMap:
        """A copy in which ``fields`` replace or add entries; ``columns`` (name -> Kusto type)
        adds columns the table is known to have (e.g. custom columns of a Sentinel table)."""
        merged_columns = None
        if self._columns is not None or columns is not None:
            merged_columns = {**(self._columns or {}), **(columns or {})}
        return FieldMap(self._table, {**self._fields, **fields}, merged_columns)

    def resolve(self, field: str, present: Iterable[str] | None = None) -> str:
        """The column of ``field``. Raises :class:`FieldMapError` if the map does not know the
        field or if the column is not among ``present`` (the columns of the data at hand;
        defaults to the columns the map knows the table to have)."""
        column = self._fields.get(field)
        if column is None:
            close = difflib.get_close_matches(field, list(self._fields), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise FieldMapError(
                f"field {field!r} is not in the field map of {self._table}{hint}",
                field=field,
                table=self._table,
            )
        names: Iterable[str] | None = present if present is not None else self._columns
        if names is not None and column not in set(names):
            where = "the data given for" if present is not None else "the documented columns of"
            raise FieldMapError(
                f"field {field!r} maps to column {column!r}, which {where} "
                f"{self._table} does not include",
                field=field,
                table=self._table,
                column=column,
            )
        return column

    def column_type(self, column: str) -> str | None:
        """The Kusto type of ``column`` if known."""
        if self._columns is None:
            return None
        return self._columns.get(column)

    def __getitem__(self, field: str) -> str:
        return self._fields[field]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldMap):
            return NotImplemented
        return (self._table, self._fields, self._columns) == (
            other._table,
            other._fields,
            other._columns,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"FieldMap({self._table!r}, <{len(self._fields)} fields>)"

    def describe(self) -> str:
        """The map as an aligned two-column text table (for docs and notebooks)."""
        width = max((len(f) for f in self._fields), default=0)
        lines = [f"{self._table}:"]
        lines += [f"  {f.ljust(width)}  ->  {c}" for f, c in sorted(self._fields.items())]
        return "\n".join(lines)
