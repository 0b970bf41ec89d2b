"""Type stubs of the Rust extension module (built from src/python/)."""

from collections.abc import Mapping
from typing import Any, final

__version__: str

@final
class FileTable:
    """Files read as one table (lazy: scanned when a query runs)."""

    @property
    def table(self) -> str: ...
    @property
    def paths(self) -> list[str]: ...
    @property
    def columns(self) -> list[tuple[str, str]]: ...
    @property
    def notes(self) -> list[str]: ...
    @property
    def strict(self) -> bool: ...
    def report(self) -> list[dict[str, Any]]:
        """Per file: rows read, bad rows with the first examples (line, column, reason)."""
    def to_arrow(self) -> Any: ...

def read(
    paths: list[str],
    table: str | None = None,
    strict: bool = False,
    timezone: str | None = None,
    format: str | None = None,
    batch_rows: int | None = None,
) -> list[tuple[str, FileTable]]:
    """Open Parquet, CSV (incl. the Log Analytics portal export) and JSON files (Advanced
    Hunting and Graph API responses, the Streaming API's records, JSON Lines), gzip,
    directories and globs."""

@final
class Query:
    """A parsed KQL query; ``str()`` prints it back as valid KQL."""

    @property
    def tables(self) -> list[str]:
        """The tables the query reads, in order of appearance."""

    def explain(self, tables: Mapping[str, Any] | None = None, now: str | None = None) -> str:
        """The bound plan as an indented tree, naming the kernel of each filter."""

    def insert_where(self, predicate: str) -> Query:
        """A new query with ``| where predicate`` before the last summarize."""

    def insert_extend(self, name: str, expr: str) -> Query:
        """A new query with ``| extend name = expr`` before the last summarize."""

    def add_aggregates(self, items: list[tuple[str, str]]) -> Query:
        """A new query with ``name = aggregate`` items appended to the last summarize."""

    def set_let(self, name: str, expr: str) -> Query:
        """A new query whose ``let name = ...;`` has the given scalar value."""

def parse(kql: str) -> Query:
    """Parse KQL; raises KqlSyntaxError with line and column."""

def query(
    kql: str, tables: Mapping[str, Any] | None = None, now: str | None = None, threads: int | None = None
) -> tuple[Any, list[str]]:
    """Run KQL; returns an Arrow table (PyCapsule stream) and the Kusto type of each column."""

def query_many(
    kqls: list[str],
    tables: Mapping[str, Any] | None = None,
    now: str | None = None,
    threads: int | None = None,
) -> list[tuple[Any, list[str]] | BaseException]:
    """Run many queries in one pass over each table; per query, its result or its exception."""

def kql_string(s: str) -> str:
    """A KQL string literal whose value is exactly ``s``."""
