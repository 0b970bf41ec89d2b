"""The exception hierarchy of rmmhunt.

Every error the engine raises is a :class:`RmmhuntError`; each kind also derives from
the matching built-in, so ordinary ``except ValueError`` clauses keep working. Errors
that point into a query carry ``line`` and ``column`` (1-based) and render a caret
under the problem in ``str(error)``.
"""

from __future__ import annotations


class RmmhuntError(Exception):
    """Base class of every rmmhunt error."""

    message: str
    line: int | None
    column: int | None

    def __init__(self, text: str = "", *, line: int | None = None, column: int | None = None) -> None:
        super().__init__(text)
        self.message = text
        self.line = line
        self.column = column


class KqlSyntaxError(RmmhuntError, ValueError):
    """The query text is not valid KQL."""


class KqlSemanticError(RmmhuntError, ValueError):
    """Valid KQL that does not make sense here: unknown table or column, type mismatch."""


class UnsupportedError(RmmhuntError, NotImplementedError):
    """Valid KQL that rmmhunt does not run yet. Never silently approximated."""


class DataError(RmmhuntError, ValueError):
    """Input data that cannot be read or converted."""


class InternalError(RmmhuntError, RuntimeError):
    """A bug in rmmhunt: please report it with the query that triggered it."""


__all__ = [
    "RmmhuntError",
    "KqlSyntaxError",
    "KqlSemanticError",
    "UnsupportedError",
    "DataError",
    "InternalError",
]
