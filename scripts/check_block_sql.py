#!/usr/bin/env python3
"""Reads a Strata block with DuckDB alone, following docs/format/block.md.

    python3 scripts/check_block_sql.py BLOCK_DIR [--print-sql]

BLOCK_DIR holds one block's meta.json, series.parquet and samples.parquet (a
FILESYSTEM bucket's `<tenant>/<ULID>/` directory, or a copy of one). Prints every
sample, one per line:

    labels_json <TAB> t <TAB> bits

- labels_json: the series' labels as a JSON object, keys sorted, no spaces, non-ASCII
  left as UTF-8 (Python `json.dumps(d, sort_keys=True, separators=(",", ":"),
  ensure_ascii=False)`, which matches serde_json's compact output of a sorted map);
- t: the timestamp in ms, decimal;
- bits: the value's IEEE-754 bits as 16 lowercase hex digits (so NaN payloads such as
  Prometheus's stale marker 7ff0000000000002, and -0.0, 8000000000000000, are exact).

Lines are sorted by labels_json (UTF-8 byte order), then by t numerically.

Before printing, checks the block against its meta.json (sample and series counts,
time bounds, every sample row inside its series' row span); on a mismatch it
prints why to stderr and exits 1. Exits 77 (the "skipped" code) when DuckDB is not
installed, 2 on bad usage or unreadable files, 0 otherwise.
"""

import json
import os
import sys

# The view of docs/format/block.md ("Reading a block with SQL"), with BLOCK_DIR
# substituted. Keep the two identical.
SQL = """
CREATE OR REPLACE VIEW series AS
  SELECT * FROM read_parquet('BLOCK_DIR/series.parquet');

CREATE OR REPLACE VIEW samples AS
  SELECT
    r.series_id,
    r.labels,
    r.t_start + (s.file_row_number - r.first_row::BIGINT) * r.t_step + s.t_residual AS t,
    CASE
      WHEN s.v_raw IS NOT NULL THEN s.v_raw
      ELSE s.v_mantissa::DOUBLE
           / [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
              1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22][s.v_scale + 1]
    END AS v
  FROM read_parquet('BLOCK_DIR/samples.parquet', file_row_number = true) AS s
  JOIN series AS r USING (series_id);
"""

# Rows of samples.parquet outside their series' [first_row, first_row + num_rows).
SPAN_CHECK = """
SELECT count(*)
FROM read_parquet('BLOCK_DIR/samples.parquet', file_row_number = true) AS s
LEFT JOIN series AS r USING (series_id)
WHERE r.series_id IS NULL
   OR s.file_row_number < r.first_row::BIGINT
   OR s.file_row_number >= r.first_row::BIGINT + r.num_rows
"""


def fail(code, msg):
    print(f"check_block_sql: {msg}", file=sys.stderr)
    sys.exit(code)


def labels_json(entries):
    # DuckDB returns a MAP as a dict, or (through Arrow) as a list of (key, value).
    d = dict(entries.items() if isinstance(entries, dict) else entries)
    return json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_arrow(rel):
    for name in ("to_arrow_table", "fetch_arrow_table", "arrow"):
        f = getattr(rel, name, None)
        if f is not None:
            return f()
    raise AttributeError("no Arrow export in this DuckDB")


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1 or any(a not in ("--print-sql",) for a in argv if a.startswith("--")):
        fail(2, "usage: check_block_sql.py BLOCK_DIR [--print-sql]")
    block = os.path.abspath(args[0])
    if "--print-sql" in argv:
        print(SQL.replace("BLOCK_DIR", block))
        return 0
    try:
        import duckdb
    except ImportError as e:
        fail(77, f"duckdb not installed ({e}); scripts/install-deps.sh installs it")
    for f in ("meta.json", "series.parquet", "samples.parquet"):
        if not os.path.isfile(os.path.join(block, f)):
            fail(2, f"{block}: no {f}")
    with open(os.path.join(block, "meta.json"), encoding="utf-8") as fh:
        meta = json.load(fh)

    quoted = block.replace("'", "''")
    con = duckdb.connect()
    for stmt in SQL.replace("BLOCK_DIR", quoted).split(";"):
        if stmt.strip():
            con.execute(stmt)

    problems = []
    if meta.get("version") != 1:
        problems.append(f"meta.json version {meta.get('version')!r}, this script reads version 1")
    (outside,) = con.execute(SPAN_CHECK.replace("BLOCK_DIR", quoted)).fetchone()
    if outside:
        problems.append(f"{outside} sample rows lie outside their series' row span")

    # Labels once per series; samples as (series_id, t, v).
    labels = {sid: labels_json(ls) for sid, ls in con.execute("SELECT series_id, labels FROM series").fetchall()}
    rel = con.sql("SELECT series_id, t, v FROM samples")
    try:
        import pyarrow as pa

        tbl = to_arrow(rel)
        sids = tbl.column("series_id").to_pylist()
        ts = tbl.column("t").to_pylist()
        # The doubles' bits straight from the Arrow buffer: no float conversion on the way.
        bits = [format(b, "016x") for b in tbl.column("v").combine_chunks().view(pa.uint64()).to_pylist()]
    except ImportError:
        import struct

        rows = rel.fetchall()
        sids = [r[0] for r in rows]
        ts = [r[1] for r in rows]
        bits = [struct.pack(">d", r[2]).hex() for r in rows]

    stats = meta.get("stats", {})
    if stats.get("num_samples") != len(ts):
        problems.append(f"{len(ts)} samples, meta.json says {stats.get('num_samples')}")
    if stats.get("num_series") != len(labels):
        problems.append(f"{len(labels)} series, meta.json says {stats.get('num_series')}")
    if ts and (min(ts) < meta.get("min_time", min(ts)) or max(ts) >= meta.get("max_time", max(ts) + 1)):
        problems.append(
            f"samples span [{min(ts)}, {max(ts)}], outside meta.json's [{meta.get('min_time')}, {meta.get('max_time')})"
        )
    if problems:
        fail(1, f"{block}: " + "; ".join(problems))

    out = sorted(zip((labels[s] for s in sids), ts, bits), key=lambda r: (r[0].encode("utf-8"), r[1]))
    w = sys.stdout.buffer
    for lj, t, b in out:
        w.write(f"{lj}\t{t}\t{b}\n".encode("utf-8"))
    w.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
