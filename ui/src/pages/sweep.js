// Sweep view: a leaderboard by a chosen metric and goal; parallel coordinates over params/properties
// -> that metric, whose brushing filters the leaderboard; a scatter of one param against the metric.
// With ?parent=RUN it shows that parent's children; for a HyperDrive parent the API's `sweep` gives the
// primary metric and goal (the defaults) and the trials' sampled values (the params). ECharts loads with this page only.
import * as echarts from "echarts/core";
import { ParallelChart, ScatterChart } from "echarts/charts";
import { ParallelComponent, GridComponent, TooltipComponent, VisualMapComponent } from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";
import { api, uiConfig } from "../api.js";
import { h, fmtNum, link, setParams, statusBadge } from "../util.js";
import { VirtualTable, headerWidth } from "../table.js";
import { live } from "./live.js";
import { registry } from "../chart.js";

echarts.use([ParallelChart, ScatterChart, ParallelComponent, GridComponent, TooltipComponent, VisualMapComponent, CanvasRenderer]);

// Ranking rule (also in ui/API.md): "last" = the value at the highest step, "best" = min or max per goal;
// runs without a value rank last; ties keep the newer run first.
export function rank(values, goal) {
  const order = values.map((v, i) => i).filter((i) => values[i] !== null && values[i] !== undefined);
  order.sort((a, b) => (goal === "min" ? values[a] - values[b] : values[b] - values[a]) || a - b);
  return order;
}

export async function sweepPage(experiment, params) {
  const config = await uiConfig();
  const parent = params.get("parent") || null;
  const probe = await api("runs", { experiment, parent });
  const sweep = probe.sweep; // a HyperDrive parent: its objective; its best trial is the best value logged
  let goal = (params.get("goal") || sweep?.goal) === "min" ? "min" : "max";
  let agg = (params.get("agg") || (sweep ? "best" : "last")) === "best" ? "best" : "last";
  const scalars = probe.metric_names.name.filter((n, i) => probe.metric_names.kind[i] === "scalar");
  let metric = params.get("metric") || (sweep && scalars.includes(sweep.primary_metric_name) ? sweep.primary_metric_name : null)
    || scalars.find((n) => /acc|score|auc|f1/i.test(n)) || scalars[0] || "";
  let data = metric ? await api("runs", { experiment, parent, metric }) : probe;
  let brushed = null; // run indices kept by the parallel-coordinates brush; null = all

  const el = h("section", { class: "page sweep" });
  const board = h("div");
  const parallelBox = h("div", { class: "echart", style: { height: "340px" } });
  const scatterBox = h("div", { class: "echart", style: { height: "320px" } });
  const scatterPick = h("select", { onchange: () => drawScatter() });
  const summary = h("span", { class: "muted" });
  el.append(
    h("h1", {}, parent ? `Sweep: children of ${parent}` : `Sweep view: ${experiment}`),
    ...(sweep ? [h("p", { class: "muted sweep-info" }, `HyperDrive: ${sweep.sampling} sampling, primary metric `
      + `${sweep.primary_metric_name} (${sweep.goal === "min" ? "minimize" : "maximize"}), policy ${sweep.policy || "none"}`)] : []),
    h("div", { class: "toolbar" },
      h("label", {}, "metric ", h("select", { class: "metric-select", onchange: async (e) => { metric = e.target.value; setParams({ metric }); await reload(); } },
        scalars.map((n) => h("option", { value: n, selected: n === metric }, n)))),
      h("label", {}, " goal ", h("select", { class: "goal-select", onchange: (e) => { goal = e.target.value; setParams({ goal }); render(); } },
        ["max", "min"].map((g) => h("option", { value: g, selected: g === goal }, g === "max" ? "maximize" : "minimize")))),
      h("label", {}, " value ", h("select", { onchange: (e) => { agg = e.target.value; setParams({ agg }); render(); } },
        [["last", "last logged"], ["best", "best logged"]].map(([v, t]) => h("option", { value: v, selected: v === agg }, t)))),
      summary),
    h("div", { class: "sweep-grid" },
      h("div", { class: "card" }, h("div", { class: "chart-title" }, "Parallel coordinates (drag along an axis to filter)"), parallelBox),
      h("div", { class: "card" }, h("div", { class: "chart-title" }, "Scatter: ", scatterPick, ` against ${metric}`), scatterBox)),
    h("h2", {}, "Leaderboard"), board);

  let parallel = null; // ECharts measures its box: created once the page is in the document
  let scatter = null;
  const table = new VirtualTable(board, { columns: [], height: 480, onSort: () => {} });
  const resize = new ResizeObserver(() => { parallel?.resize(); scatter?.resize(); });

  function values() {
    const c = data.metrics[metric];
    if (!c) return data.runs.run_id.map(() => null);
    return agg === "last" ? c.last : goal === "max" ? c.max : c.min;
  }

  // Params: properties and tags whose value differs between runs (constant ones explain nothing); for a
  // HyperDrive sweep, its sampled values first, and not its bookkeeping properties (the JSON, index, arguments).
  function paramColumns() {
    const out = [];
    const hidden = new Set(data.sweep?.trial_properties ?? []);
    for (const [kind, cols] of [["hyperparameter", data.sweep?.params ?? {}], ["property", data.properties], ["tag", data.tags]]) {
      for (const [key, col] of Object.entries(cols)) {
        if (out.some((p) => p.key === key) || (kind === "property" && hidden.has(key))) continue;
        const distinct = new Set(col.filter((v) => v !== null));
        if (distinct.size < 2) continue;
        const numeric = [...distinct].every((v) => v !== "" && Number.isFinite(Number(v)));
        out.push({ key, kind, col, numeric, categories: numeric ? null : [...distinct].sort() });
      }
    }
    return out;
  }

  function render() {
    const vals = values();
    const ranked = rank(vals, goal);
    const params = paramColumns();
    summary.textContent = ` ${ranked.length} of ${data.runs.run_id.length} runs have ${metric || "a metric"}`;
    const position = new Map(ranked.map((i, k) => [i, k + 1]));
    const r = data.runs;
    table.setColumns([
      { key: "rank", label: "#", width: 50, numeric: true, get: (i) => position.get(i) },
      { key: "name", label: "run", width: 200, get: (i) => r.display_name[i] || r.run_id[i],
        render: (i) => h("a", { href: link(`/run/${encodeURIComponent(r.run_id[i])}`), class: "run-link" }, r.display_name[i] || r.run_id[i]) },
      { key: "status", label: "status", width: 100, get: (i) => r.status[i], render: (i) => statusBadge(r.status[i]) },
      { key: "value", label: `${metric} (${agg})`, width: headerWidth(`${metric} (${agg})`, 140), numeric: true, get: (i) => vals[i], render: (i) => fmtNum(vals[i]) },
      ...params.map((p) => ({ key: `p:${p.key}`, label: p.key, width: headerWidth(p.key, 100), get: (i) => p.col[i] })),
    ]);
    table.setRows(brushed ? ranked.filter((i) => brushed.has(i)) : ranked);
    drawParallel(ranked, params, vals);
    scatterPick.replaceChildren(...params.map((p) => h("option", { value: p.key }, p.key)));
    drawScatter();
  }

  function drawParallel(ranked, params, vals) {
    const dims = [...params.map((p, d) => ({ dim: d, name: p.key, ...(p.numeric ? {} : { type: "category", data: p.categories }) })),
                  { dim: params.length, name: metric }];
    const rows = ranked.map((i) => [...params.map((p) => (p.numeric ? Number(p.col[i]) : p.col[i] ?? "")), vals[i]]);
    const finite = ranked.map((i) => vals[i]);
    parallel.setOption({
      animation: false,
      parallelAxis: dims,
      parallel: { left: 40, right: 60, top: 30, bottom: 30 },
      visualMap: { show: false, min: Math.min(...finite, 0), max: Math.max(...finite, 1), dimension: params.length,
                   inRange: { color: goal === "max" ? ["#c0c7d6", "#1f5fbf"] : ["#1f5fbf", "#c0c7d6"] } },
      series: [{ type: "parallel", lineStyle: { width: 1.5, opacity: 0.7 }, data: rows,
                 inactiveOpacity: 0.05, activeOpacity: 1 }],
    }, true);
    parallel.off("axisareaselected");
    parallel.on("axisareaselected", () => {
      const series = parallel.getModel().getSeriesByIndex(0);
      const active = series.getRawIndicesByActiveState("active");
      brushed = active.length === ranked.length ? null : new Set(active.map((k) => ranked[k]));
      table.setRows(brushed ? ranked.filter((i) => brushed.has(i)) : ranked);
      summary.textContent = brushed ? ` ${brushed.size} runs in the brushed ranges` : ` ${ranked.length} runs`;
    });
  }

  // Axis names along the middle of their axes, past the tick labels: at the axis' end the metric's name sat on
  // the canvas' top edge, cut off under the card's title. The gaps are fixed, not left to ECharts' moving a name
  // off its labels, which measures a line's height as the width of a CJK glyph (a few pixels without CJK fonts);
  // y labels wider than the gap still push the name out, by their widths, which ECharts measures right.
  const axisName = { nameLocation: "middle", nameTextStyle: { textMargin: 6 } };

  // A value axis 5% wider than the data on each side, so the lowest and highest points sit off the axis lines.
  // The padded ends carry no label (they are not round numbers); the ticks between stay ECharts' round ones.
  // Each axis line stays at the other's minimum, not at its zero.
  const pad = (e) => (e.max - e.min) * 0.05 || Math.abs(e.max) * 0.05 || 1;
  const paddedAxis = { type: "value", min: (e) => e.min - pad(e), max: (e) => e.max + pad(e), axisLine: { onZero: false },
                       axisLabel: { showMinLabel: false, showMaxLabel: false } };

  function drawScatter() {
    const params = paramColumns();
    const p = params.find((q) => q.key === scatterPick.value) ?? params[0];
    const vals = values();
    if (!p) { scatter.clear(); return; }
    const points = [];
    vals.forEach((v, i) => { if (v !== null && p.col[i] !== null) points.push([p.numeric ? Number(p.col[i]) : p.col[i], v, data.runs.display_name[i] || data.runs.run_id[i]]); });
    scatter.setOption({
      animation: false,
      grid: { left: 60, right: 20, top: 12, bottom: 48 },
      tooltip: { trigger: "item", formatter: (q) => `${q.data[2]}<br>${p.key}: ${q.data[0]}<br>${metric}: ${fmtNum(q.data[1])}` },
      xAxis: { name: p.key, ...axisName, nameGap: 28, ...(p.numeric ? paddedAxis : { type: "category", data: p.categories }) },
      yAxis: { name: metric, ...axisName, nameGap: 40, ...paddedAxis },
      series: [{ type: "scatter", data: points, symbolSize: 8 }],
    }, true);
  }

  async function reload() {
    data = await api("runs", { experiment, parent, metric });
    brushed = null;
    render();
  }

  const poll = live(reload, config.refresh_s * 2, () => data.runs.status.includes("Running"));
  return {
    el, title: "Sweep",
    crumbs: [h("a", { href: "#/" }, "experiments"), " / ", h("a", { href: link(`/experiment/${encodeURIComponent(experiment)}`) }, experiment), " / sweep"],
    mounted: () => {
      parallel = echarts.init(parallelBox, null, { renderer: "canvas" });
      scatter = echarts.init(scatterBox, null, { renderer: "canvas" });
      registry.sweep = { parallel, scatter, table: () => ({ rows: table.rows, runs: data.runs, values: values() }) };
      resize.observe(parallelBox);
      render();
    },
    destroy: () => { poll.stop(); resize.disconnect(); parallel?.dispose(); scatter?.dispose(); delete registry.sweep; },
  };
}
