"""Azure ML's notebook widget: ``RunDetails(run).show()`` shows a run's status, values and curves in Jupyter.

- When ``runstream server`` answers at the workspace's ``server`` address
  (``RUNSTREAM_SERVER``, default http://127.0.0.1:5000), the widget is an
  ``<iframe>`` of the run's page there: live charts, zoom, logs, images.
- Otherwise it is self-contained HTML: the header, tags, properties, the values
  table and one inline SVG line chart per curve (downsampled in the store to
  at most two points per pixel, min/max per bucket, like the UI's), images
  inlined as ``data:`` URIs. Nothing is loaded from anywhere. While the run is
  running, :meth:`RunDetails.show` redraws it every ``refresh_s`` seconds.

IPython is needed only by :meth:`RunDetails.show`; :meth:`RunDetails.get_html`
works anywhere.
"""

from __future__ import annotations

import base64
import html
import threading
import time
import urllib.request
from typing import Any
from urllib.parse import quote

from store import curves, run_view

__all__ = ["RunDetails"]

_WIDTH, _HEIGHT = 420, 140
_MAX_CHARTS = 24
_MAX_IMAGE_BYTES = 2 * 1024 * 1024


class RunDetails:
    """``RunDetails(run).show()``: the run in a notebook (iframe of ``runstream server``, else inline HTML)."""

    def __init__(self, run: Any, *, server: str | None = None, refresh_s: float = 5.0, height: int = 720) -> None:
        self.run = run
        settings = run.experiment.workspace.settings
        self.server = (server if server is not None else settings.server).rstrip("/")
        self.refresh_s = refresh_s
        self.height = height

    # -- where it is drawn --------------------------------------------------------------------------

    def server_answers(self, timeout_s: float = 0.5) -> bool:
        """True when a ``runstream server`` answers at :attr:`server`."""
        try:
            with urllib.request.urlopen(f"{self.server}/health", timeout=timeout_s) as response:
                return bool(response.status == 200)
        except (OSError, ValueError):
            return False

    def iframe_html(self) -> str:
        src = html.escape(f"{self.server}/#/run/{quote(self.run.id, safe='')}", quote=True)
        return (f'<iframe src="{src}" width="100%" height="{int(self.height)}" '
                'style="border:1px solid #dde1ea;border-radius:6px"></iframe>')

    def _repr_html_(self) -> str:
        return self.iframe_html() if self.server_answers() else self.get_html()

    def show(self) -> None:
        """Display the widget in Jupyter; self-contained HTML refreshes itself while the run runs."""
        try:
            from IPython.display import HTML, display  # type: ignore[import-not-found]
        except ImportError as exc:
            raise RuntimeError("RunDetails.show() needs IPython (a Jupyter notebook); "
                               "RunDetails(run).get_html() returns the HTML") from exc
        if self.server_answers():
            display(HTML(self.iframe_html()))
            return
        handle = display(HTML(self.get_html()), display_id=True)
        if self._status() == "Running" and handle is not None:
            threading.Thread(target=self._follow, args=(handle, HTML), daemon=True,
                             name="runstream-run-details").start()

    def _follow(self, handle: Any, html_type: Any) -> None:
        while True:
            time.sleep(self.refresh_s)
            try:
                page = self.get_html()
            except Exception:  # a notebook widget must never raise from its thread; the next tick retries
                continue
            handle.update(html_type(page))
            if self._status() != "Running":
                return

    def _status(self) -> str:
        return str(self.run.get_status())

    # -- self-contained HTML ------------------------------------------------------------------------

    def get_html(self) -> str:
        """The run as one self-contained HTML fragment (no scripts, no external requests)."""
        reader = self.run.experiment.workspace.reader()
        now_ms = time.time() * 1000
        with reader.queries() as reads:
            d = run_view.run_details(reads, self.run.id, now_ms=now_ms)
            metrics = run_view.run_metrics(reads, self.run.id, d.experiment)
            charts = []
            for m in [m for m in metrics if m.chart in ("curve", "list")][:_MAX_CHARTS]:
                if m.chart == "curve":
                    c = curves.scalar_curves(reads, [self.run.id], m.name, width=_WIDTH)
                    charts.append((m.name, c.xs, c.ys[self.run.id]))
                else:
                    c = curves.list_curve(reads, self.run.id, m.name, width=_WIDTH)
                    charts.append((m.name, c.xs, c.ys["value"]))
            pictures = []
            im = run_view.images(reads, [self.run.id])
            last: dict[str, int] = {}
            for i, name in enumerate(im.name):
                last[name] = i
            for name, i in last.items():
                try:
                    data, content_type = run_view.read_file(reads, self.run.id, im.path[i])
                except LookupError:
                    continue
                if len(data) <= _MAX_IMAGE_BYTES:
                    pictures.append((name, content_type, data))
        return _page(d, metrics, charts, pictures)


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


_COLOURS = {"Running": "#1f7fbf", "Completed": "#2e8b57", "Failed": "#c0392b", "Canceled": "#8a8f99"}


def _page(d: Any, metrics: list[Any], charts: list[tuple[str, list[float], list[float | None]]],
          pictures: list[tuple[str, str, bytes]]) -> str:
    colour = _COLOURS.get(d.status, "#8a8f99")
    parts = [
        '<div style="font:13px system-ui,sans-serif;color:#1d2330">',
        f'<div style="font-size:16px;font-weight:600">{_esc(d.display_name or d.run_id)} '
        f'<span style="background:{colour};color:#fff;border-radius:9px;padding:0 8px;font-size:12px">'
        f'{_esc(d.status)}</span></div>',
        f'<div style="color:#6b7385">{_esc(d.run_id)} · experiment {_esc(d.experiment)}</div>',
    ]
    if d.error:
        parts.append(f'<pre style="white-space:pre-wrap;border-left:4px solid #c0392b;background:#fff4f2;'
                     f'padding:6px">{_esc(d.error)}</pre>')
    rows = [(k, v) for k, v in d.tags.items()] + [(k, v) for k, v in d.properties.items()]
    rows += [(m.name, m.last) for m in metrics if m.chart == "value"]
    if rows:
        parts.append('<table style="border-collapse:collapse;margin:6px 0">' + "".join(
            f'<tr><td style="padding:1px 10px 1px 0;color:#6b7385">{_esc(k)}</td><td>{_esc(v)}</td></tr>'
            for k, v in rows) + "</table>")
    parts.append('<div style="display:flex;flex-wrap:wrap;gap:10px">')
    for name, xs, ys in charts:
        parts.append(_svg(name, xs, ys))
    for name, content_type, data in pictures:
        uri = f"data:{_esc(content_type)};base64,{base64.b64encode(data).decode('ascii')}"
        parts.append(f'<figure style="margin:0"><img src="{uri}" style="max-width:{_WIDTH}px;max-height:{_HEIGHT * 2}px;'
                     f'image-rendering:pixelated"><figcaption>{_esc(name)}</figcaption></figure>')
    parts.append("</div></div>")
    return "".join(parts)


def _svg(name: str, xs: list[float], ys: list[float | None]) -> str:
    """One line chart as inline SVG: the curve, its y range and its x range."""
    points = [(x, y) for x, y in zip(xs, ys) if y is not None]
    head = f'<div><div style="font-weight:600">{_esc(name)}</div>'
    if not points:
        return head + '<div style="color:#6b7385">no points</div></div>'
    x0, x1 = points[0][0], points[-1][0]
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    sx = (_WIDTH - 2) / (x1 - x0) if x1 > x0 else 0.0
    sy = (_HEIGHT - 2) / (y1 - y0) if y1 > y0 else 0.0
    path = " ".join(f"{1 + (x - x0) * sx:.1f},{_HEIGHT - 1 - (y - y0) * sy:.1f}" for x, y in points)
    return (head + f'<svg width="{_WIDTH}" height="{_HEIGHT}" style="background:#fff;border:1px solid #dde1ea">'
            f'<polyline fill="none" stroke="#1f5fbf" stroke-width="1.2" points="{path}"/></svg>'
            f'<div style="color:#6b7385;font-size:11px">y {y0:.4g} … {y1:.4g} · x {x0:.6g} … {x1:.6g}</div></div>')
