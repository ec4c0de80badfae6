// Compare runs: one metric overlaid on one shared bucket grid (legend, hover values of every run at
// a step, EMA smoothing, x by step / relative / wall time, log scale, zoom that re-queries), and
// images of the runs side by side at the same step.
import { api, apiUrl, uiConfig } from "../api.js";
import { h, link, setParams, fmtTime } from "../util.js";
import { LineChart } from "../chart.js";
import { compareCurves } from "../first.js";
import { live } from "./live.js";

export async function comparePage(params) {
  const runs = (params.get("runs") ?? "").split(",").filter(Boolean);
  if (!runs.length) throw new Error("no runs selected: tick runs in an experiment's table, then “compare selected”");
  let x = params.get("x") ?? "step";
  // The curves are asked for at once (early.js started that request already when the address names
  // the metric), with the runs table (names, metrics) and the settings.
  const asked = params.get("metric");
  const curvesQuery = compareCurves(params);
  const first = curvesQuery ? api("curves", curvesQuery) : null;
  first?.catch(() => {});
  let experiment = params.get("experiment");
  if (!experiment) experiment = (await api("run", { run: runs[0] })).run.experiment;
  const [config, table] = await Promise.all([uiConfig(), api("runs", { experiment })]);
  const names = table.metric_names;
  const scalars = names.name.filter((n, i) => names.kind[i] === "scalar");
  const imageNames = names.name.filter((n, i) => names.kind[i] === "image");
  const labelOf = new Map(table.runs.run_id.map((id, i) => [id, table.runs.display_name[i] || id]));
  const statusOf = new Map(table.runs.run_id.map((id, i) => [id, table.runs.status[i]]));
  let metric = asked || scalars[0] || "";
  const smoothing = Number(params.get("smooth") ?? 0);
  const logY = params.get("log") === "1";

  const el = h("section", { class: "page" });
  const chartBox = h("div", { class: "card wide" });
  const smoothLabel = h("span", {}, smoothing.toFixed(2));
  let chart = null;
  const controls = h("div", { class: "toolbar" },
    h("label", {}, "metric ", h("select", { class: "metric-select", onchange: (e) => { metric = e.target.value; setParams({ metric }); makeChart(); } },
      scalars.map((n) => h("option", { value: n, selected: n === metric }, n)))),
    h("label", {}, " x ", h("select", { class: "x-select", onchange: (e) => { x = e.target.value; setParams({ x }); chart.setX(x); } },
      [["step", "step"], ["relative", "relative time"], ["time", "wall time"]].map(([v, t]) => h("option", { value: v, selected: v === x }, t)))),
    h("label", {}, " smoothing ", h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: smoothing, class: "smoothing",
      oninput: (e) => { const a = Number(e.target.value); smoothLabel.textContent = a.toFixed(2); setParams({ smooth: a || null }); chart.setSmoothing(a); } }), smoothLabel),
    h("label", {}, h("input", { type: "checkbox", checked: logY, class: "log-scale", onchange: (e) => { setParams({ log: e.target.checked ? 1 : null }); chart.setLogY(e.target.checked); } }), " log scale"),
  );
  const images = h("div");
  el.append(h("h1", {}, `Compare ${runs.length} runs`), controls, chartBox, h("h2", {}, "Images side by side"), images);

  function makeChart() {
    chart?.destroy();
    chartBox.replaceChildren();
    chart = new LineChart(chartBox, { title: metric, x, height: 420, smoothing, logY, label: (id) => labelOf.get(id) ?? id,
      first: metric === asked && x === (params.get("x") ?? "step") && !chart ? first : null,
      load: (q, c) => api("curves", { run: runs, name: metric, x: c.x, ...q }) });
  }
  makeChart();
  renderImages(images, runs, imageNames, labelOf, params);

  const poll = live(async () => { if (chart.response) await chart.reload(); }, config.refresh_s,
                    () => runs.some((r) => statusOf.get(r) === "Running"));
  return {
    el, title: "Compare",
    crumbs: [h("a", { href: "#/" }, "experiments"), " / ", h("a", { href: link(`/experiment/${encodeURIComponent(experiment)}`) }, experiment), " / compare"],
    destroy: () => poll.stop(),
  };
}

async function renderImages(box, runs, imageNames, labelOf, params) {
  if (!imageNames.length) { box.replaceChildren(h("p", { class: "muted" }, "No images in this experiment.")); return; }
  let name = params.get("image") ?? imageNames[0];
  let step = Number(params.get("step") ?? -1);
  const grid = h("div", { class: "image-grid" });
  const slider = h("input", { type: "range", min: 0, value: 0, class: "step-slider", oninput: (e) => { step = Number(e.target.value); setParams({ step }); paint(); } });
  const stepLabel = h("span");
  let data = null;
  const load = async () => {
    data = await api("images", { run: runs, name });
    const maxIndex = Math.max(0, ...data.index);
    slider.max = maxIndex;
    if (step < 0 || step > maxIndex) step = maxIndex;
    slider.value = step;
    paint();
  };
  function paint() {
    stepLabel.textContent = ` step ${step}`;
    grid.replaceChildren(...runs.map((run) => {
      const i = data.run_id.findIndex((r, k) => r === run && data.index[k] === step);
      return h("figure", { class: "card" }, i >= 0
        ? h("img", { src: apiUrl("file", { run, path: data.path[i] }).href, alt: `${name} of ${labelOf.get(run) ?? run}` })
        : h("div", { class: "muted no-image" }, "no image at this step"),
      h("figcaption", {}, labelOf.get(run) ?? run, i >= 0 ? ` · ${fmtTime(data.created_ms[i])}` : ""));
    }));
  }
  box.replaceChildren(h("div", { class: "toolbar" },
    h("select", { onchange: (e) => { name = e.target.value; setParams({ image: name }); step = -1; load(); } },
      imageNames.map((n) => h("option", { value: n, selected: n === name }, n))), slider, stepLabel), grid);
  await load();
}
