"""Curves for charts, downsampled in the store: one bounded answer per chart.

A chart asks for one metric of one or more runs over an x range, with its
pixel ``width``. The answer holds at most ``2 * width`` points per series:

- **raw** when every series has at most ``2 * width`` points in the range
  (zoomed in far enough, or a short curve): the points themselves;
- **minmax** otherwise: the range is cut into at most ``width`` buckets of
  equal x width (``intDiv(x - lo, w)``), and each bucket gives its minimum and
  its maximum, in the order they were logged along x. A single spike among a
  million points is therefore always drawn. Every series of an overlay shares
  one bucket grid, so the answer is one x array and one y array per run
  (``[xs, ys1, ys2, ...]``, uPlot's shape): bucket ``b`` owns the two slots
  ``lo + (b + 1/4) w`` and ``lo + (b + 3/4) w``. Slots empty in every series
  are left out.

Zooming is a new, finer query over the narrower range, down to raw points.

A chart takes one pass for the extent of all its series together (none on a
zoom: its range is the grid), then one query that buckets every series on that
grid and formats each bucket's two values as JSON text, so the server only
joins text. When every series turns out to have at most ``2 * width`` points,
a last query fetches them raw.

Only ``min``, ``max``, ``argMin``, ``argMax`` and ``intDiv`` are used: they work
on ClickHouse 18.16 and chDB alike, and a duplicate row (before
ReplacingMergeTree merges it away) cannot change them. ``largestTriangleThreeBuckets``
(chDB only) is deliberately not used: it keeps the visual shape but does not
promise to keep every extreme, and it yields per-series x values that an
overlay cannot share. Raw points are deduplicated with ``LIMIT 1 BY`` the
message identity.

Three kinds of curves:

- :func:`scalar_curves`: ``run.log`` series of one or more runs; x is the
  step, the wall time (epoch ms) or the time since each run started (ms).
- :func:`list_curve`: a ``log_list`` metric of one run; x is the element's
  position (every call's elements, one after the other, in logging order).
- :func:`column_curve`: two numeric columns of a ``log_row`` / ``log_table``
  metric of one run, y against x, in x order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._sqlparts import Reads, in_array, in_array_params

__all__ = ["X_AXES", "MAX_WIDTH", "MAX_RUNS", "QUERIES", "Curves", "scalar_curves", "list_curve", "column_curve"]

X_AXES = ("step", "time", "relative")
"""x of a scalar curve: the step, the wall time (epoch ms), or ms since the run's start."""

MAX_WIDTH = 4000
"""Largest pixel width honoured (so at most 8,000 points per series)."""

MAX_RUNS = 500
"""Most runs one overlay may ask for."""

_MANY_SERIES = 10
_MIN_BUCKETS = 50


@dataclass(frozen=True, slots=True)
class Curves:
    """One chart's data, columnar: ``xs`` and, per series, its y values aligned with it (null = no value there).

    The y values come as JSON array text (``ys_json``), which is what the API sends: a hundred-run
    overlay holds ~10^5 numbers, and the engine formats them far faster than Python could.
    :attr:`ys` decodes them.
    """

    mode: str
    """``"raw"`` (the points themselves) or ``"minmax"`` (two slots per bucket: its min and max)."""
    xs: list[float]
    series: tuple[str, ...]
    """Series keys: run ids (``"value"`` for one-run kinds)."""
    ys_json: tuple[str, ...]
    """Per series (same order), its y values as a JSON array as long as ``xs``: exact in raw mode,
    float32's shortest form (~7 significant digits, all a chart can draw) in minmax mode."""
    bucket: float
    """Width of one bucket in x units (0 in raw mode)."""
    x_min: float | None
    x_max: float | None
    """The x extent asked for (the zoom range), else the data's; None when there is no data."""
    points: dict[str, int]
    """Series key -> drawable points in the range at the source (an upper bound until merges drop duplicates)."""

    @property
    def ys(self) -> dict[str, list[float | None]]:
        """Series key -> y values (None = no value at that x)."""
        return {k: json.loads(text) for k, text in zip(self.series, self.ys_json)}


def _width(width: int) -> int:
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ValueError(f"width must be a positive int, got {width!r}")
    return min(width, MAX_WIDTH)


def _json_number(expr: str) -> str:
    """SQL: a finite Float64 as JSON number text, rounded to float32 (shortest form) unless float32 cannot hold it."""
    return f"if(abs({expr}) < 1e38, toString(toFloat32({expr})), toString({expr}))"


@dataclass(frozen=True, slots=True)
class _Source:
    """One kind of curve: where its points are and how x, y and the series are computed (fixed SQL)."""

    name: str
    source: str
    """``{db}.table WHERE ...``: the points of every series asked for."""
    x: str
    y: str
    key: str
    """The series' index in the ``keys`` asked for, a UInt32 (grouping by an integer is far cheaper
    than by a run id string)."""
    dedup: str
    """The message identity, for ``LIMIT 1 BY``."""
    integer_x: bool
    drawable: str = "1"
    """Which points are drawn."""

    def queries(self) -> dict[str, str]:
        # Integer x is bounded by Int64 parameters: comparing an Int64 column with a Float64 takes
        # ClickHouse's slow exact path on every row.
        bound = "Int64" if self.integer_x else "Float64"
        where = (f"{self.source} AND {self.x} >= {{r_lo:{bound}}} AND {self.x} <= {{r_hi:{bound}}} "
                 f"AND {self.drawable} AND isFinite({self.y})")
        if self.integer_x:
            bucket = f"intDiv(toInt64({self.x}) - {{b_lo:Int64}}, {{b_w:Int64}})"
        else:  # x == hi would open one bucket past the last: it joins the last one
            bucket = f"least(toInt64(floor(({self.x} - {{b_lo:Float64}}) / {{b_w:Float64}})), {{b_last:Int64}})"
        # Per bucket, its min and max in x order: ``first`` is whichever was logged at the smaller x.
        min_first = f"argMin({self.x}, {self.y}) <= argMax({self.x}, {self.y})"
        first = f"if({min_first}, min({self.y}), max({self.y}))"
        second = f"if({min_first}, max({self.y}), min({self.y}))"
        return {
            # The extent of every series together (one pass over x, no grouping), for the grid.
            f"{self.name}_extent": f"SELECT min({self.x}), max({self.x}), count() FROM {where}",
            f"{self.name}_raw": f"SELECT {self.key} AS k, {self.x} AS px, {self.y} AS py FROM {where} "
                                f"ORDER BY k, px, {self.dedup} LIMIT 1 BY k, {self.dedup}",
            # Per series: its buckets in order, each bucket's two slots as JSON text ("first,second"),
            # and its drawable points.
            f"{self.name}_buckets": (
                "SELECT k, arraySort(groupArray(b)), arraySort((s, j) -> j, groupArray(t), groupArray(b)), sum(n) "
                f"FROM (SELECT {self.key} AS k, {bucket} AS b, "
                f"concat({_json_number(first)}, ',', {_json_number(second)}) AS t, count() AS n "
                f"FROM {where} GROUP BY k, b) GROUP BY k"),
        }


_FAR = 1.7e308
"""The range bounds of a float x when none is asked for (finite: both engines parse it)."""
_FAR_INT = 4 * 10**18
"""The same for an integer x (inside Int64 either way)."""


def _downsample(reads: Reads, src: _Source, params: Mapping[str, Any], *, width: int, x_min: float | None,
                x_max: float | None, keys: Sequence[str]) -> Curves:
    """Min/max buckets on one grid shared by every series of ``keys``, or raw points when every
    series has few enough."""
    width = _width(width)
    budget = 2 * width
    series = tuple(str(k) for k in keys)
    points = dict.fromkeys(series, 0)
    empty = Curves("raw", [], series, ("[]",) * len(series), 0.0, x_min, x_max, points)
    if src.integer_x:
        args = dict(params, r_lo=-_FAR_INT if x_min is None else math.ceil(x_min),
                    r_hi=_FAR_INT if x_max is None else math.floor(x_max))
    else:
        args = dict(params, r_lo=-_FAR if x_min is None else float(x_min), r_hi=_FAR if x_max is None else float(x_max))
    if x_min is not None and x_max is not None:
        lo, hi = float(x_min), float(x_max)  # a zoom: its range is the grid, no extent pass
    else:
        ext_lo, ext_hi, count = reads.fetch(f"{src.name}_extent", args)[0]
        if not count:
            return empty
        lo = float(ext_lo) if x_min is None else float(x_min)
        hi = float(ext_hi) if x_max is None else float(x_max)
        if count <= budget:  # few points in all: no series can need buckets
            rows = reads.fetch(f"{src.name}_raw", args)
            for k, _px, _py in rows:
                points[series[int(k)]] += 1
            return _raw(rows, series, points, lo, hi)
    # Overlays of many runs get half as many buckets (still two points per bucket): the lines
    # overlap anyway, and the answer stays near a megabyte for a hundred runs.
    buckets = width if len(keys) <= _MANY_SERIES else max(_MIN_BUCKETS, width // 2)
    range_lo, range_hi = lo, hi
    if src.integer_x:
        lo, hi = math.floor(lo), math.ceil(hi)
        w: float = max(1, math.ceil((hi - lo + 1) / buckets))
        n_buckets = int((hi - lo) // w) + 1
        args.update(b_lo=int(lo), b_w=int(w))
    else:
        w = (hi - lo) / buckets if hi > lo else 1.0
        n_buckets = buckets
        args.update(b_lo=lo, b_w=w, b_last=n_buckets - 1)
    rows = reads.fetch(f"{src.name}_buckets", args)
    if not rows:
        return empty
    points.update({series[int(r[0])]: int(r[3]) for r in rows})
    wide_zoom = src.integer_x and x_min is not None and x_max is not None and hi - lo + 1 > budget
    if max(points.values()) <= budget and not wide_zoom:
        return _raw(reads.fetch(f"{src.name}_raw", args), series, points, range_lo, range_hi)
    # Slots empty in every series are left out; a series with every kept bucket (the usual case)
    # is its buckets' text joined, with no number passing through Python.
    kept = sorted(set().union(*(r[1] for r in rows)))
    if len(kept) > n_buckets:  # a bucket past the grid would be a bug in the SQL above
        raise RuntimeError(f"{src.name}: {len(kept)} buckets on a grid of {n_buckets}")
    texts = dict.fromkeys(series, "[" + ",".join(["null,null"] * len(kept)) + "]")
    for k, bs, pairs, _n in rows:
        if len(bs) == len(kept):
            texts[series[int(k)]] = "[" + ",".join(pairs) + "]"
        else:
            by_bucket = dict(zip(bs, pairs))
            texts[series[int(k)]] = "[" + ",".join(by_bucket.get(b, "null,null") for b in kept) + "]"
    xs = [lo + (b + slot) * w for b in kept for slot in (0.25, 0.75)]
    return Curves("minmax", xs, series, tuple(texts[k] for k in series), float(w), lo, hi, points)


def _raw(rows: list[tuple[Any, ...]], series: tuple[str, ...], points: dict[str, int], lo: float,
         hi: float) -> Curves:
    """Raw points of every series on the union of their x values."""
    per: dict[str, dict[float, float]] = {k: {} for k in series}
    for k, px, py in rows:
        per[series[int(k)]][float(px)] = float(py)
    xs = sorted({px for values in per.values() for px in values})
    ys = tuple(json.dumps([per[k].get(px) for px in xs], allow_nan=False, separators=(",", ":")) for k in series)
    return Curves("raw", xs, series, ys, 0.0, lo, hi, points)


_SCALAR_SOURCE = (
    "{db}.metric_scalars WHERE " + in_array("experiment", "experiments") + " AND name = {name:String} AND "
    + in_array("run_id", "runs")
)
_RUN_INDEX = "transform(run_id, {runs:Array(String)}, {run_index:Array(UInt32)}, toUInt32(0))"
_SCALAR_X = {
    "step": "step",
    "time": "time_ms",
    "relative": "(time_ms - transform(run_id, {runs:Array(String)}, {run_starts:Array(Int64)}, toInt64(0)))",
}
_SCALAR = {x: _Source(f"ui_scalar_{x}", _SCALAR_SOURCE, expr, "value", _RUN_INDEX, "writer_id, seq, idx", True,
                      "is_text = 0") for x, expr in _SCALAR_X.items()}
_LIST = _Source(
    "ui_list", "{db}.metric_rows WHERE run_id = {run:String} AND name = {name:String} AND kind = 'list'",
    "(transform(concat(writer_id, ':', toString(seq)), {e_keys:Array(String)}, {e_offsets:Array(Int64)}, "
    "toInt64(0)) + toInt64(row_idx))", "col_numbers[1]", "toUInt32(0)", "writer_id, seq, row_idx", True,
    "col_is_text[1] = 0")
_XI, _YI = "indexOf(col_names, {xcol:String})", "indexOf(col_names, {ycol:String})"
_COLUMNS = _Source(
    "ui_columns",
    f"{{db}}.metric_rows WHERE run_id = {{run:String}} AND name = {{name:String}} AND {_XI} > 0 AND {_YI} > 0 "
    f"AND col_is_text[{_XI}] = 0 AND col_is_text[{_YI}] = 0 AND isFinite(col_numbers[{_XI}])",
    f"col_numbers[{_XI}]", f"col_numbers[{_YI}]", "toUInt32(0)", "writer_id, seq, row_idx", False)

QUERIES: Mapping[str, str] = MappingProxyType({
    "ui_run_homes": "SELECT run_id, any(experiment), min(start_ms) FROM {db}.runs WHERE "
                    + in_array("run_id", "runs") + " GROUP BY run_id",
    "ui_list_events": (
        "SELECT writer_id, seq, uniqExact(row_idx), min(created_ms) AS c FROM {db}.metric_rows "
        "WHERE run_id = {run:String} AND name = {name:String} AND kind = 'list' "
        "GROUP BY writer_id, seq ORDER BY c, writer_id, seq"),
    **{name: sql for src in (*_SCALAR.values(), _LIST, _COLUMNS) for name, sql in src.queries().items()},
})
"""This module's read queries by name (part of :data:`store.ui_queries.UI_QUERIES`)."""


def scalar_curves(reads: Reads, runs: Sequence[str], name: str, *, x: str = "step", width: int = 1000,
                  x_min: float | None = None, x_max: float | None = None) -> Curves:
    """Metric ``name`` (``run.log``) of ``runs`` on one shared grid; series keyed by run id.

    Unknown runs and runs without the metric get empty series (all None).
    ``x_min``/``x_max`` bound the range (inclusive, x units: steps or epoch/relative ms).
    """
    if x not in _SCALAR:
        raise ValueError(f"x must be one of {X_AXES}, got {x!r}")
    runs = list(dict.fromkeys(runs))
    if not runs or len(runs) > MAX_RUNS:
        raise ValueError(f"ask for 1 to {MAX_RUNS} runs, got {len(runs)}")
    homes = {str(r[0]): (str(r[1]), int(r[2])) for r in reads.fetch("ui_run_homes", in_array_params("runs", runs))}
    experiments = sorted({e for e, _start in homes.values()})
    if not experiments:
        return Curves("raw", [], tuple(runs), ("[]",) * len(runs), 0.0, x_min, x_max, dict.fromkeys(runs, 0))
    params: dict[str, Any] = {
        **in_array_params("runs", runs), **in_array_params("experiments", experiments), "name": name,
        "run_index": list(range(len(runs))), "run_starts": [homes.get(r, ("", 0))[1] for r in runs],
    }
    return _downsample(reads, _SCALAR[x], params, width=width, x_min=x_min, x_max=x_max, keys=runs)


def list_curve(reads: Reads, run: str, name: str, *, width: int = 1000, x_min: float | None = None,
               x_max: float | None = None) -> Curves:
    """A ``log_list`` metric of ``run``: element values against their position (series ``"value"``).

    Several calls (and the chunks a long list is sent in) follow one another in
    logging order, so position ``i`` is the ``i``-th element logged.
    """
    events = reads.fetch("ui_list_events", {"run": run, "name": name})
    offsets, total = [], 0
    for _writer, _seq, n, _c in events:
        offsets.append(total)
        total += int(n)
    params = {"run": run, "name": name, "e_keys": [f"{w}:{s}" for w, s, _n, _c in events], "e_offsets": offsets}
    return _downsample(reads, _LIST, params, width=width, x_min=x_min, x_max=x_max, keys=["value"])


def column_curve(reads: Reads, run: str, name: str, x_column: str, y_column: str, *, width: int = 1000,
                 x_min: float | None = None, x_max: float | None = None) -> Curves:
    """Column ``y_column`` against ``x_column`` of a ``log_row``/``log_table`` metric (series ``"value"``).

    Rows where either cell is missing or text are skipped.
    """
    params = {"run": run, "name": name, "xcol": x_column, "ycol": y_column}
    return _downsample(reads, _COLUMNS, params, width=width, x_min=x_min, x_max=x_max, keys=["value"])
