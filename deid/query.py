"""Reading the output tables without Spark: Arrow through deltalake, or SQL through DuckDB.

`table()` is the way to read a Delta table into Arrow in a Python process. deltalake's own
`DeltaTable.to_pyarrow_table()` (and `to_pyarrow_dataset()` by default) reads every Parquet file through a
filesystem written in Python; Arrow's worker threads release those Python objects after the scan has returned,
and when that happens while the interpreter shuts down the process aborts (`terminate called without an active
exception`, exit status 134) although its work was done. Measured with the pinned deltalake 1.6.6 and pyarrow
26.0.1, and with every pair from pyarrow 21 to 26 and deltalake 1.5 to 1.6: 5 to 16 aborts in 20 fresh processes.
Here deltalake still plans the read (the live files from the log, partition values, schema, statistics, protocol
checks) but the files are read by Arrow's C++ filesystem, so no Python object is ever released on an Arrow thread.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import pyarrow as pa


def dataset(path: str | Path, storage_options: dict | None = None, filesystem=None):
    """A pyarrow Dataset of the table's current version. Local paths and file:// URIs work as they are; for an
    object store pass a configured pyarrow filesystem (pyarrow.fs.S3FileSystem ...), rooted here at the table."""
    import pyarrow.fs as pafs
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaProtocolError
    delta = DeltaTable(str(path), storage_options=storage_options)
    if filesystem is None:
        filesystem, root = pafs.FileSystem.from_uri(delta.table_uri)
    else:
        root = delta.table_uri.split("://", 1)[-1]
    try:
        return delta.to_pyarrow_dataset(filesystem=pafs.SubTreeFileSystem(root.rstrip("/"), filesystem))
    except DeltaProtocolError as exc:   # deletion vectors, column mapping: Arrow alone cannot apply them
        raise DeltaProtocolError(f"{exc} -- read this table with SQL instead: "
                                 f"deid.query.duckdb().sql(\"SELECT ... FROM delta_scan('{path}')\")") from None


def table(path: str | Path, columns: list[str] | None = None, filter=None, storage_options: dict | None = None,
          filesystem=None) -> pa.Table:
    """The table (or the named columns, rows matching an Arrow filter expression or DNF filter list) as Arrow:
    what `DeltaTable(path).to_pyarrow_table(columns=...)` returns, without the abort at exit."""
    if filter is not None and not isinstance(filter, pa.compute.Expression):
        from pyarrow.parquet import filters_to_expression
        filter = filters_to_expression(filter)
    return dataset(path, storage_options, filesystem).to_table(columns=columns, filter=filter)


def duckdb():
    """A DuckDB connection that can `SELECT ... FROM delta_scan('data/note_deid_l3')` offline."""
    import duckdb as _duckdb
    version = _duckdb.__version__
    ext = resources.files("duckdb_extension_delta") / "extensions" / f"v{version}" / "delta.duckdb_extension"
    con = _duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{ext}'")
    return con
