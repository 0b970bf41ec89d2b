"""Type stubs of the Rust extension module (built from src/python/)."""

from collections.abc import Mapping
from typing import Any

__version__: str

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

def query(kql: str, tables: Mapping[str, Any] | None = None, now: str | None = None) -> tuple[Any, list[str]]:
    """Run KQL; returns an Arrow table (PyCapsule stream) and the Kusto type of each column."""

def kql_string(s: str) -> str:
    """A KQL string literal whose value is exactly ``s``."""
