// Line charts on uPlot. Data stays columnar from the API to the canvas: [xs, ys1, ys2, ...].
// The store downsamples (at most 2 points per pixel and series, min/max per bucket); zooming
// asks the store again for the narrower range, down to raw points.
import uPlot from "uplot";
import { h, colour, fmtNum } from "./util.js";

// Test hooks (read by the browser tests and `make bench`): every chart, its loads and timings.
export const registry = (window.__rs ??= { charts: [], drawn: [] });

export function ema(ys, alpha) {
  if (!alpha) return ys;
  let last = 0;
  let n = 0;
  return ys.map((y) => {
    if (y === null || y === undefined) return null;
    last = last * alpha + (1 - alpha) * y;
    n += 1;
    return last / (1 - alpha ** n); // debiased, as TensorBoard does
  });
}

const X_LABEL = { step: "step", time: "wall time", relative: "seconds since start", index: "index" };

export class LineChart {
  // load({x_min, x_max, width}, chart) -> API curve answer ({xs, series, ys, mode, ...}).
  constructor(el, { title, load, x = "step", label = (key) => key, height = 260, logY = false, smoothing = 0,
                    lazy = false, onData = null, first = null, widthHint = 600 }) {
    // `first`: the answer to the first load, when the page asked for it already (in parallel with its own data).
    Object.assign(this, { el, title, load, x, label, height, logY, smoothing, onData, first, widthHint });
    this.u = null;
    this.range = null; // the zoom range asked for (API units), null = everything
    this.loads = 0;
    this.response = null;
    this.pending = 0;
    this.status = h("div", { class: "chart-status muted" });
    this.box = h("div", { class: "chart-canvas" });
    el.classList.add("chart");
    el.append(h("div", { class: "chart-head" }, h("span", { class: "chart-title" }, title ?? ""),
      h("button", { class: "small", title: "Show everything (double-click the chart does too)",
                    onclick: () => this.resetZoom() }, "reset zoom"), this.status), this.box);
    registry.charts.push(this);
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.box);
    if (lazy) {
      const seen = new IntersectionObserver((entries) => {
        if (entries.some((e) => e.isIntersecting)) { seen.disconnect(); this.reload(); }
      }, { rootMargin: "200px" });
      seen.observe(el);
    } else {
      this.reload();
    }
  }

  width() {
    // Before the page is laid out (charts in view ask at once), the page's estimate of the chart's width.
    return Math.max(200, Math.round(this.box.clientWidth || this.el.clientWidth || this.widthHint));
  }

  // Seconds for uPlot's time scales; steps and positions as they are.
  toChartX(v) { return this.x === "time" || this.x === "relative" ? v / 1000 : v; }
  fromChartX(v) { return this.x === "time" || this.x === "relative" ? v * 1000 : v; }

  async reload() {
    const ticket = ++this.pending;
    const started = performance.now();
    this.status.textContent = "loading…";
    let response;
    try {
      const first = this.first;
      this.first = null;
      response = await (first ?? this.load({ x_min: this.range?.[0], x_max: this.range?.[1], width: this.width() }, this));
    } catch (err) {
      if (ticket === this.pending) this.status.textContent = `error: ${err.message}`;
      return;
    }
    if (ticket !== this.pending) return; // a newer request (zoom, refresh) superseded this one
    this.loads += 1;
    this.response = response;
    this.draw();
    const points = response.xs.length;
    this.status.textContent = `${response.mode === "raw" ? "raw" : "min/max"} · ${points} points`;
    await new Promise((resolve) => requestAnimationFrame(resolve)); // the frame with the chart in it
    let max = -Infinity;
    for (const ys of response.ys) for (const v of ys) if (v !== null && v > max) max = v;
    // `at` counts from the navigation's start: the figure `make bench` reports.
    registry.drawn.push({ title: this.title, ms: performance.now() - started, at: performance.now(), points,
                          series: response.series.length, mode: response.mode, max, loads: this.loads });
    this.onData?.(response);
  }

  setX(x) { this.x = x; this.range = null; this.destroyPlot(); this.reload(); }
  setLogY(on) { this.logY = on; this.destroyPlot(); this.draw(); }
  setSmoothing(alpha) { this.smoothing = alpha; this.draw(); }
  resetZoom() { this.range = null; this.reload(); }
  zoom(min, max) { this.u?.setScale("x", { min: this.toChartX(min), max: this.toChartX(max) }); }

  data() {
    const r = this.response;
    const xs = this.x === "time" || this.x === "relative" ? r.xs.map((v) => v / 1000) : r.xs;
    const ys = r.ys.map((series) => {
      let out = ema(series, this.smoothing);
      if (this.logY) out = out.map((v) => (v !== null && v > 0 ? v : null));
      return out;
    });
    return [xs, ...ys];
  }

  destroyPlot() {
    this.u?.destroy();
    this.u = null;
  }

  draw() {
    if (!this.response) return;
    const data = this.data();
    const keys = this.response.series.join("\u0000");
    if (this.u && this.keys === keys) {
      this.ignoreScale = true;
      this.u.setData(data, this.range === null);
      if (this.range) this.u.setScale("x", { min: this.toChartX(this.range[0]), max: this.toChartX(this.range[1]) });
      this.ignoreScale = false;
      return;
    }
    this.destroyPlot();
    this.keys = keys;
    const many = this.response.series.length > 12;
    const opts = {
      width: this.width(),
      height: this.height,
      legend: { live: true, markers: { width: 2 } },
      cursor: { drag: { x: true, y: false, setScale: true }, bind: { dblclick: () => () => { this.resetZoom(); return null; } },
                points: { show: !many } },
      scales: { x: { time: this.x === "time" }, y: { distr: this.logY ? 3 : 1 } },
      axes: [{ label: X_LABEL[this.x] ?? this.x, labelSize: 20 }, { size: 60, values: (u, vals) => vals.map(fmtNum) }],
      series: [
        { label: X_LABEL[this.x] ?? this.x, value: this.x === "time" ? undefined : (u, v) => fmtNum(v) },
        ...this.response.series.map((key, i) => ({
          label: this.label(key), stroke: colour(i), width: many ? 1 : 1.5, spanGaps: true,
          points: { show: false }, value: (u, v) => fmtNum(v),
        })),
      ],
      hooks: {
        setScale: [(u, key) => {
          if (key !== "x" || this.ignoreScale) return;
          const { min, max } = u.scales.x;
          const xs = u.data[0];
          if (!xs.length || (this.range === null && min <= xs[0] && max >= xs[xs.length - 1])) return;
          if (this.range && Math.abs(this.toChartX(this.range[0]) - min) < 1e-9 &&
              Math.abs(this.toChartX(this.range[1]) - max) < 1e-9) return;
          clearTimeout(this.zoomTimer);
          this.zoomTimer = setTimeout(() => {
            this.range = [this.fromChartX(min), this.fromChartX(max)];
            this.reload();
          }, 120);
        }],
      },
    };
    this.ignoreScale = true;
    this.u = new uPlot(opts, data, this.box);
    if (this.range) this.u.setScale("x", { min: this.toChartX(this.range[0]), max: this.toChartX(this.range[1]) });
    this.ignoreScale = false;
    if (many) this.u.root.classList.add("many-series");
  }

  resize() {
    if (this.u) this.u.setSize({ width: this.width(), height: this.height });
  }

  destroy() {
    this.resizer.disconnect();
    this.destroyPlot();
    const i = registry.charts.indexOf(this);
    if (i >= 0) registry.charts.splice(i, 1);
  }
}
