"""Querying the output tables without Spark: DuckDB with the Delta extension that its PyPI wheel ships."""
from __future__ import annotations

from importlib import resources


def duckdb():
    """A DuckDB connection that can `SELECT ... FROM delta_scan('data/note_deid_l3')` offline."""
    import duckdb as _duckdb
    version = _duckdb.__version__
    ext = resources.files("duckdb_extension_delta") / "extensions" / f"v{version}" / "delta.duckdb_extension"
    con = _duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{ext}'")
    return con
