"""pyarrow conversions that do not import pandas.

``pyarrow.table(obj)`` asks pandas whether ``obj`` is a DataFrame before it looks for the Arrow
PyCapsule interface, and that question imports pandas: about 50 MB of memory and a third of a
second on first use, for a result of ten rows. Objects that export an Arrow stream are read as a
stream instead.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow


def to_pyarrow_table(data: Any) -> pyarrow.Table:
    """``data`` (a pyarrow Table or RecordBatch, or anything exporting an Arrow stream or
    array) as a ``pyarrow.Table``, zero-copy where pyarrow allows."""
    import pyarrow as pa

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    from_stream = getattr(pa.RecordBatchReader, "from_stream", None)  # pyarrow >= 15
    if from_stream is not None and hasattr(data, "__arrow_c_stream__"):
        return from_stream(data).read_all()
    return pa.table(data)


def string_array(values: list[str | None]) -> pyarrow.Array:
    """Python strings (None: null) as a string array, built from buffers."""
    import pyarrow as pa

    encoded = [b"" if v is None else v.encode() for v in values]
    data = b"".join(encoded)
    if len(data) >= 2**31:  # past 32-bit offsets: let pyarrow chunk it
        return pa.array(values, pa.string())
    offsets = array("i", [0])
    end = 0
    for e in encoded:
        end += len(e)
        offsets.append(end)
    validity = None
    if any(v is None for v in values):
        bits = bytearray((len(values) + 7) // 8)
        for i, v in enumerate(values):
            if v is not None:
                bits[i // 8] |= 1 << (i % 8)
        validity = pa.py_buffer(bytes(bits))
    return pa.Array.from_buffers(
        pa.string(), len(values), [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data)]
    )
