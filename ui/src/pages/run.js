// One run: header (status, error, times), tags and properties, every logged kind drawn the way
// Azure ML's portal draws it, images, files, captured output; refreshes itself while running.
import { api, apiUrl, uiConfig } from "../api.js";
import { h, fmtTime, fmtDuration, fmtNum, link, statusBadge, setParams } from "../util.js";
import { LineChart } from "../chart.js";
import { live } from "./live.js";

export async function runPage(runId, params) {
  let [config, info] = await Promise.all([uiConfig(), api("run", { run: runId })]);
  let x = params.get("x") ?? "step";
  const el = h("section", { class: "page run-page" });
  const header = h("div", { class: "run-header" });
  const attrs = h("div", { class: "attrs" });
  const values = h("div");
  const charts = h("div", { class: "charts" });
  const gallery = h("div");
  const fileList = h("div");
  const logs = logPanel(runId);
  const xSelect = h("select", { onchange: (e) => { x = e.target.value; setParams({ x }); for (const c of curveCharts) c.setX(x); } },
    ["step", "relative", "time"].map((v) => h("option", { value: v, selected: v === x }, { step: "x: step", relative: "x: relative time", time: "x: wall time" }[v])));
  el.append(header, attrs, h("h2", {}, "Metrics ", xSelect), values, charts,
    h("h2", {}, "Images"), gallery, h("h2", {}, "Files"), fileList, h("h2", {}, "Output and logs"), logs.el);
  let curveCharts = [];
  let allCharts = [];
  let namesKey = "";

  const running = () => info.run.status === "Running";

  function renderHeader() {
    const r = info.run;
    const end = r.end_ms ?? (running() ? info.now_ms : null);
    header.replaceChildren(...[
      h("h1", {}, r.display_name || r.run_id, " ", statusBadge(r.status)),
      h("div", { class: "facts" },
        fact("run id", r.run_id), fact("experiment", h("a", { href: link(`/experiment/${encodeURIComponent(r.experiment)}`) }, r.experiment)),
        r.parent_run_id ? fact("parent", h("a", { href: link(`/run/${encodeURIComponent(r.parent_run_id)}`) }, r.parent_run_id)) : null,
        r.children ? fact("children", h("a", { href: link(`/sweep/${encodeURIComponent(r.experiment)}`, { parent: r.run_id }) }, `${r.children} runs (sweep view)`)) : null,
        fact("started", fmtTime(r.start_ms)), fact("ended", fmtTime(r.end_ms)), fact("duration", end ? fmtDuration(end - r.start_ms) : ""),
        fact("host", `${r.host} (pid ${r.pid})`), r.kind ? fact("kind", r.kind) : null),
      r.error ? h("div", { class: "error-box" }, h("strong", {}, "Error"), h("pre", {}, r.error)) : null,
    ].filter(Boolean));
    attrs.replaceChildren(kvTable("Tags", r.tags), kvTable("Properties", r.properties));
  }

  function renderMetrics() {
    const m = info.metrics;
    const key = m.name.map((n, i) => `${n}:${m.chart[i]}`).join("|");
    if (key === namesKey) return false;
    namesKey = key;
    for (const c of allCharts) c.destroy();
    curveCharts = [];
    allCharts = [];
    const valueRows = [];
    const blocks = [];
    // The first charts are surely in view: they ask for their data now, at the width they will have
    // (the grid's column width), instead of after the page is laid out. The others wait to be seen.
    const pageWidth = (document.getElementById("page").clientWidth || window.innerWidth) - 20; // a scrollbar may come
    const columns = Math.max(1, Math.floor((pageWidth - 40 + 14) / (520 + 14)));
    const widthHint = Math.floor((pageWidth - 40 - (columns - 1) * 14) / columns) - 22;
    let eager = 2 * columns;
    const lazy = () => (eager-- > 0 ? false : true);
    m.name.forEach((name, i) => {
      const chart = m.chart[i];
      if (chart === "value") valueRows.push(h("tr", {}, h("td", {}, name), h("td", { class: "num" }, fmtNum(m.last[i]))));
      else if (chart === "curve") {
        const box = h("div", { class: "card" });
        blocks.push(box);
        const c = new LineChart(box, { title: name, x, lazy: lazy(), widthHint, label: () => name,
          load: (q, chart) => api("curves", { run: runId, name, x: chart.x, ...q }) });
        curveCharts.push(c);
        allCharts.push(c);
      } else if (chart === "list") {
        const box = h("div", { class: "card" });
        blocks.push(box);
        allCharts.push(new LineChart(box, { title: `${name} (list)`, x: "index", lazy: lazy(), widthHint, label: () => name,
          load: (q) => api("list-curve", { run: runId, name, ...q }) }));
        box.append(tableToggle(runId, name));
      } else if (chart === "row" || chart === "table") {
        blocks.push(twoVariable(runId, name, m.columns[i], allCharts, chart));
      }
    });
    values.replaceChildren(valueRows.length
      ? h("table", { class: "grid values" }, h("thead", {}, h("tr", {}, h("th", {}, "name"), h("th", { class: "num" }, "value"))), h("tbody", {}, valueRows))
      : "");
    charts.replaceChildren(...blocks);
    if (!blocks.length && !valueRows.length) charts.replaceChildren(h("p", { class: "muted" }, "No metrics logged."));
    return true;
  }

  async function renderImages() {
    const im = await api("images", { run: runId });
    gallery.replaceChildren(...imageGalleries(im, runId));
    if (!im.name.length) gallery.replaceChildren(h("p", { class: "muted" }, "No images."));
  }

  async function renderFiles() {
    const f = await api("files", { run: runId });
    fileList.replaceChildren(f.path.length ? h("table", { class: "grid files" },
      h("thead", {}, h("tr", {}, h("th", {}, "path"), h("th", { class: "num" }, "bytes"), h("th", {}, "type"), h("th", {}, "uploaded"))),
      h("tbody", {}, f.path.map((p, i) => h("tr", {},
        h("td", {}, f.complete[i] ? h("a", { href: apiUrl("file", { run: runId, path: p, download: 1 }).href, download: p.split("/").pop() }, p) : `${p} (uploading)`),
        h("td", { class: "num" }, f.size[i]), h("td", {}, f.content_type[i]), h("td", {}, fmtTime(f.created_ms[i]))))))
      : h("p", { class: "muted" }, "No files."));
  }

  renderHeader();
  renderMetrics();
  // Charts load as soon as they are in view; images, files and output once the charts in view
  // have their data (the store answers one query at a time), or after a second at most.
  const chartsDrawn = () => allCharts.filter((c) => c.loads > 0 || c.pending > 0).every((c) => c.loads > 0);
  const rest = new Promise((resolve) => {
    const started = performance.now();
    const wait = () => (chartsDrawn() && performance.now() - started > 50) || performance.now() - started > 1000
      ? resolve() : setTimeout(wait, 30);
    setTimeout(wait, 30);
  }).then(() => Promise.all([renderImages(), renderFiles(), logs.load()])).then(() => logs.follow(running()))
    .catch((err) => gallery.append(h("p", { class: "error" }, err.message)));

  const poll = live(async () => {
    info = await api("run", { run: runId });
    renderHeader();
    if (!renderMetrics()) for (const c of allCharts) if (c.response) c.reload();
    await Promise.all([renderImages(), renderFiles(), logs.more()]);
    if (!running()) logs.follow(false);
  }, config.refresh_s, running);

  return {
    el, title: info.run.display_name || runId,
    crumbs: [h("a", { href: "#/" }, "experiments"), " / ",
      h("a", { href: link(`/experiment/${encodeURIComponent(info.run.experiment)}`) }, info.run.experiment), " / ",
      info.run.display_name || runId],
    ready: rest,
    destroy: () => { poll.stop(); logs.stop(); },
  };
}

function fact(label, value) {
  return h("div", { class: "fact" }, h("span", { class: "fact-label" }, label), h("span", {}, value));
}

function kvTable(title, obj) {
  const keys = Object.keys(obj);
  return h("div", { class: "kv" }, h("h3", {}, title), keys.length
    ? h("table", { class: "grid" }, h("tbody", {}, keys.map((k) => h("tr", {}, h("td", {}, k), h("td", {}, obj[k] === "" ? h("span", { class: "muted" }, "(no value)") : obj[k])))))
    : h("p", { class: "muted" }, "none"));
}

function tableToggle(runId, name) {
  const holder = h("div");
  const button = h("button", { class: "small", onclick: async () => {
    if (holder.childElementCount) { holder.replaceChildren(); button.textContent = "show table"; return; }
    holder.replaceChildren(dataTable(await api("table", { run: runId, name })));
    button.textContent = "hide table";
  } }, "show table");
  return h("div", {}, button, holder);
}

export function dataTable(t) {
  return h("div", { class: "table-wrap" }, h("table", { class: "grid data" },
    h("thead", {}, h("tr", {}, h("th", { class: "num" }, "#"), t.columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, Array.from({ length: t.rows }, (_, i) => h("tr", {}, h("td", { class: "num muted" }, i),
      t.columns.map((c) => h("td", { class: typeof t.cells[c][i] === "number" ? "num" : "" }, fmtNum(t.cells[c][i]))))))),
  t.truncated ? h("p", { class: "muted" }, `first ${t.rows} rows shown`) : null);
}

// log_row / log_table: a two-variable line chart (pick x and y among the numeric columns) and the table.
function twoVariable(runId, name, numeric, allCharts, kind) {
  const box = h("div", { class: "card" });
  if (numeric.length === 0) {
    box.append(h("div", { class: "chart-title" }, `${name} (${kind})`), tableToggle(runId, name));
    box.lastChild.firstChild.click();
    return box;
  }
  let xCol = numeric.length > 1 ? numeric[0] : null;
  let yCol = numeric.length > 1 ? numeric[1] : numeric[0];
  const chartBox = h("div");
  const pick = (value, onchange, withIndex) => h("select", { onchange: (e) => onchange(e.target.value) },
    withIndex ? h("option", { value: "", selected: value === null }, "(row)") : null,
    numeric.map((c) => h("option", { value: c, selected: c === value }, c)));
  let chart = null;
  const make = () => {
    if (chart) { chart.destroy(); allCharts.splice(allCharts.indexOf(chart), 1); }
    chartBox.replaceChildren();
    chart = xCol
      ? new LineChart(chartBox, { title: `${name}: ${yCol} against ${xCol}`, x: xCol, lazy: true, label: () => yCol,
          load: (q) => api("column-curve", { run: runId, name, x_column: xCol, y_column: yCol, ...q }) })
      : new LineChart(chartBox, { title: `${name}: ${yCol}`, x: "index", lazy: true, label: () => yCol,
          load: (q) => api("list-curve", { run: runId, name, ...q }) });
    allCharts.push(chart);
  };
  box.append(h("div", { class: "pickers" }, `${kind === "row" ? "log_row" : "log_table"} ${name}: x `,
    pick(xCol, (v) => { xCol = v || null; make(); }, numeric.length === 1), " y ", pick(yCol, (v) => { yCol = v; make(); })),
    chartBox, tableToggle(runId, name));
  make();
  return box;
}

// Images grouped by name; a slider walks through the images logged under that name.
export function imageGalleries(im, runId) {
  const byName = new Map();
  im.name.forEach((n, i) => { if (!byName.has(n)) byName.set(n, []); byName.get(n).push(i); });
  return [...byName].map(([name, rows]) => {
    const img = h("img", { class: "gallery-image", alt: name });
    const caption = h("div", { class: "muted" });
    const show = (k) => {
      const i = rows[k];
      img.src = apiUrl("file", { run: runId ?? im.run_id[i], path: im.path[i] }).href;
      caption.textContent = `${name} · step ${k} of ${rows.length - 1} · ${fmtTime(im.created_ms[i])}${im.description[i] ? ` · ${im.description[i]}` : ""}`;
    };
    const slider = h("input", { type: "range", min: 0, max: rows.length - 1, value: rows.length - 1, class: "step-slider",
                                oninput: (e) => show(Number(e.target.value)) });
    show(rows.length - 1);
    return h("div", { class: "card gallery" }, h("div", { class: "chart-title" }, name), rows.length > 1 ? slider : null, img, caption);
  });
}

// Captured output and logging records; follows a running run.
function logPanel(runId) {
  let keys = new Set();
  let lastMs = null;
  let following = false;
  let stream = "";
  const pre = h("pre", { class: "logs" });
  const followBox = h("input", { type: "checkbox", onchange: (e) => { following = e.target.checked; } });
  const select = h("select", { onchange: (e) => { stream = e.target.value; paint(); } },
    ["", "stdout", "stderr", "logging"].map((s) => h("option", { value: s }, s || "all streams")));
  const lines = [];
  const el = h("div", {}, h("div", { class: "toolbar" }, select, h("label", {}, followBox, " follow")), pre);
  const LEVEL = { 10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL" };
  const line = (l) => `${fmtTime(l.time_ms)} ${l.stream}${l.stream === "logging" ? ` ${LEVEL[l.level] ?? l.level} ${l.logger}` : ""}  ${l.message}${l.exc_text ? `\n${l.exc_text}` : ""}`;
  function paint() {
    const shown = lines.filter((l) => !stream || l.stream === stream);
    pre.textContent = shown.length ? shown.map(line).join("\n") : "(no output)";
    if (following) pre.scrollTop = pre.scrollHeight;
  }
  function add(r) {
    for (let i = 0; i < r.time_ms.length; i += 1) {
      if (keys.has(r.key[i])) continue;
      keys.add(r.key[i]);
      lines.push({ time_ms: r.time_ms[i], stream: r.stream[i], logger: r.logger[i], level: r.level[i], message: r.message[i], exc_text: r.exc_text[i] });
      lastMs = Math.max(lastMs ?? 0, r.time_ms[i]);
    }
    lines.sort((a, b) => a.time_ms - b.time_ms);
    paint();
  }
  return {
    el,
    load: async () => add(await api("logs", { run: runId })),
    // Lines of several writers can arrive a little out of time order: ask again from 5 s before the newest.
    more: async () => { if (following) add(await api("logs", { run: runId, since_ms: lastMs === null ? 0 : lastMs - 5000 })); },
    follow: (on) => { following = on; followBox.checked = on; },
    stop: () => { following = false; keys = new Set(); },
  };
}
