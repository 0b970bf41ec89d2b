"""Errors and warnings of the rules layer.

Each error derives from the package base class (``rmmhunt.errors.RmmhuntError``) and from the
matching built-in, so an ordinary ``except ValueError`` or ``except LookupError`` also works.
Errors carry their location as attributes (file, line, column, field) as well as in the message;
callers never need to parse the text.
"""

from __future__ import annotations

try:  # the package's hierarchy; Exception until rmmhunt.errors exists
    from rmmhunt.errors import RmmhuntError as _Base
except ImportError:  # pragma: no cover - depends on the state of the package
    _Base = Exception  # type: ignore[misc,assignment,unused-ignore]

__all__ = [
    "ExclusionSyntaxError",
    "FieldMapError",
    "RuleError",
    "RuleRepairWarning",
    "UnknownRuleError",
]


class RuleError(ValueError, _Base):
    """A rule file or rule value is invalid: bad YAML, a missing or ill-typed field.

    ``file`` is the path (or ``"<string>"``), ``line`` the 1-based line (``None`` when the rule
    was not read from text), ``field`` the dotted path of the field, e.g.
    ``requiredDataConnectors[0].dataTypes``.
    """

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.column = column
        self.field = field
        where = file or "<rule>"
        if line is not None:
            where += f":{line}"
            if column is not None:
                where += f":{column}"
        text = f"{where}: "
        if field:
            text += f"field '{field}': "
        super().__init__(text + problem)


class UnknownRuleError(LookupError, _Base):
    """No bundled rule has the id, name or file name asked for."""


class ExclusionSyntaxError(ValueError, _Base):
    """A false-positive filter does not parse.

    ``column`` is 1-based within ``line`` (1-based) of ``text``; ``str(err)`` shows the filter with
    a caret under the problem.
    """

    def __init__(self, message: str, text: str, offset: int) -> None:
        self.message = message
        self.text = text
        self.offset = offset
        before = text[:offset]
        self.line = before.count("\n") + 1
        line_start = before.rfind("\n") + 1
        self.column = offset - line_start + 1
        line_end = text.find("\n", offset)
        if line_end == -1:
            line_end = len(text)
        source_line = text[line_start:line_end]
        # Keep the caret under the right character: tabs stay tabs in the padding.
        pad = "".join("\t" if ch == "\t" else " " for ch in text[line_start:offset])
        where = (
            f"column {self.column}" if self.line == 1 else f"line {self.line}, column {self.column}"
        )
        self.snippet = f"  {source_line}\n  {pad}^"
        super().__init__(f"{message} at {where}\n{self.snippet}")


class FieldMapError(ValueError, _Base):
    """A filter names a field that the table's field map does not know, or whose column the
    table (as given) does not have. Never turned into a silent ``false``."""

    def __init__(self, message: str, *, field: str, table: str, column: str | None = None) -> None:
        self.field = field
        self.table = table
        # The column name here; RmmhuntError's `column` is a position in query text.
        self.column = column  # type: ignore[assignment]
        super().__init__(message)


class RuleRepairWarning(UserWarning):
    """A rule file was loaded only after repairing a known defect (named in the message)."""
