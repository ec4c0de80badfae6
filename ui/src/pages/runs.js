// Runs of one experiment: a virtualized table with tags, properties and metric columns the user picks;
// filter, sort, select runs to compare.
import { api, uiConfig } from "../api.js";
import { h, fmtTime, fmtDuration, fmtNum, link, statusBadge, setParams } from "../util.js";
import { VirtualTable, headerWidth, sortRows } from "../table.js";
import { compileFilter } from "../filter.js";
import { live } from "./live.js";
import { registry } from "../chart.js";

export async function runsPage(experiment, params) {
  let metrics = (params.get("metrics") ?? "").split(",").filter(Boolean);
  // Without a choice in the URL, the server summarises the first three metrics.
  let [config, data] = await Promise.all([uiConfig(),
    api("runs", { experiment, metric: metrics, default_metrics: params.has("metrics") ? 0 : 3 })]);
  if (!params.has("metrics")) metrics = Object.keys(data.metrics);
  const selected = new Set((params.get("selected") ?? "").split(",").filter(Boolean));
  let filterText = params.get("filter") ?? "";
  let sort = { key: "start", dir: -1 };

  const el = h("section", { class: "page" });
  const count = h("span", { class: "muted" });
  const filterBox = h("input", { type: "search", class: "filter", value: filterText, placeholder:
    "filter: status:Failed  lr=0.01  loss.last<0.5  text", oninput: (e) => { filterText = e.target.value; refresh(); } });
  const filterError = h("span", { class: "error" });
  const compareButton = h("button", { onclick: () => {
    location.hash = link("/compare", { experiment, runs: [...selected].join(","), metric: metrics[0] ?? "" });
  } });
  const picker = h("details", { class: "picker" });
  const tableEl = h("div");
  el.append(
    h("h1", {}, experiment, " ", h("a", { href: link(`/sweep/${encodeURIComponent(experiment)}`), class: "small-link" }, "sweep view")),
    h("div", { class: "toolbar" }, filterBox, picker, compareButton, count, filterError),
    tableEl,
  );

  const table = new VirtualTable(tableEl, { columns: [], height: Math.max(300, window.innerHeight - 230),
    onSort: (key, dir) => { sort = { key, dir }; refresh(); } });

  function columns() {
    const r = data.runs;
    const cols = [
      { key: "select", label: "", width: 34, sort: false, render: (i) => h("input", { type: "checkbox",
        checked: selected.has(r.run_id[i]), onchange: (e) => { e.target.checked ? selected.add(r.run_id[i]) : selected.delete(r.run_id[i]); updateSelection(); } }) },
      { key: "status", label: "status", width: 100, get: (i) => r.status[i], render: (i) => statusBadge(r.status[i]) },
      { key: "name", label: "name", width: 220, get: (i) => r.display_name[i] || r.run_id[i],
        render: (i) => h("a", { href: link(`/run/${encodeURIComponent(r.run_id[i])}`), class: "run-link", title: r.run_id[i] },
          r.display_name[i] || r.run_id[i]) },
      { key: "start", label: "start", width: 165, get: (i) => r.start_ms[i], render: (i) => fmtTime(r.start_ms[i]) },
      { key: "duration", label: "duration", width: 90, numeric: true, get: (i) => (r.end_ms[i] ?? data.now_ms) - r.start_ms[i],
        render: (i) => fmtDuration((r.end_ms[i] ?? data.now_ms) - r.start_ms[i]) },
    ];
    for (const [key, col] of Object.entries(data.tags)) cols.push({ key: `tag:${key}`, label: key, title: `tag ${key}`, width: 100, get: (i) => col[i] });
    for (const [key, col] of Object.entries(data.properties)) cols.push({ key: `prop:${key}`, label: key, title: `property ${key}`, width: 100, get: (i) => col[i] });
    for (const m of metrics) {
      const c = data.metrics[m];
      if (!c) continue;
      for (const field of ["last", "min", "max"]) {
        cols.push({ key: `metric:${m}:${field}`, label: `${m} ${field}`, width: headerWidth(`${m} ${field}`, 110), numeric: true,
                    get: (i) => (field === "last" && c.last[i] === null ? c.text[i] : c[field][i]),
                    render: (i) => fmtNum(field === "last" && c.last[i] === null ? c.text[i] : c[field][i]) });
      }
    }
    return cols;
  }

  function renderPicker() {
    const names = data.metric_names;
    picker.replaceChildren(h("summary", {}, `metric columns (${metrics.length})`), h("div", { class: "picker-list" },
      names.name.filter((n, i) => names.kind[i] === "scalar").map((n) => h("label", {}, h("input", { type: "checkbox",
        checked: metrics.includes(n), onchange: async (e) => {
          metrics = e.target.checked ? [...metrics, n] : metrics.filter((m) => m !== n);
          setParams({ metrics: metrics.join(",") });
          data = await api("runs", { experiment, metric: metrics });
          renderPicker();
          table.setColumns(columns());
          refresh();
        } }), ` ${n}`))));
  }

  function updateSelection() {
    compareButton.textContent = `compare selected (${selected.size})`;
    compareButton.disabled = selected.size === 0;
    setParams({ selected: [...selected].join(",") });
  }

  function refresh() {
    const filter = compileFilter(filterText, data);
    filterError.textContent = filter.error ?? "";
    setParams({ filter: filterText });
    let rows = [];
    for (let i = 0; i < data.runs.run_id.length; i += 1) if (filter.test(i)) rows.push(i);
    const col = columns().find((c) => c.key === sort.key);
    if (col?.get) rows = sortRows(rows, col.get, sort.dir);
    count.textContent = `${rows.length} of ${data.runs.run_id.length} runs`;
    table.setRows(rows);
    requestAnimationFrame(() => (registry.tables ??= []).push({ at: performance.now(), rows: rows.length }));
  }

  renderPicker();
  table.setColumns(columns());
  table.sortBy("start", -1);
  updateSelection();
  const poll = live(async () => { data = await api("runs", { experiment, metric: metrics }); refresh(); },
                    config.refresh_s, () => data.runs.status.includes("Running"));
  return {
    el, title: experiment,
    crumbs: [h("a", { href: "#/" }, "experiments"), " / ", experiment],
    destroy: () => poll.stop(),
  };
}
