// runstream UI: a hash router over five pages. Pages are plain DOM; charts are uPlot
// (ECharts, for the sweep view's parallel coordinates and scatter, loads with that page).
import "./style.css";
import { hashParams, h } from "./util.js";
import { experimentsPage } from "./pages/experiments.js";
import { runsPage } from "./pages/runs.js";
import { runPage } from "./pages/run.js";
import { comparePage } from "./pages/compare.js";
import { registry } from "./chart.js";
import { stats } from "./api.js";

registry.api = stats;

const routes = [
  [/^\/?$/, () => experimentsPage()],
  [/^\/experiment\/(.+)$/, (m, p) => runsPage(decodeURIComponent(m[1]), p)],
  [/^\/run\/(.+)$/, (m, p) => runPage(decodeURIComponent(m[1]), p)],
  [/^\/compare$/, (m, p) => comparePage(p)],
  [/^\/sweep\/(.+)$/, async (m, p) => (await import("./pages/sweep.js")).sweepPage(decodeURIComponent(m[1]), p)],
];

let current = null;
let currentPath = null;

async function route() {
  const { path, params } = hashParams();
  if (path === currentPath && current?.update) { current.update(params); return; }
  current?.destroy?.();
  for (const chart of [...registry.charts]) chart.destroy();
  currentPath = path;
  const page = document.getElementById("page");
  const crumbs = document.getElementById("crumbs");
  page.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  crumbs.replaceChildren();
  for (const [pattern, make] of routes) {
    const m = pattern.exec(path);
    if (!m) continue;
    try {
      current = await make(m, params);
      page.replaceChildren(current.el);
      crumbs.replaceChildren(...(current.crumbs ?? []));
      document.title = current.title ? `${current.title} · runstream` : "runstream";
      current.mounted?.();
    } catch (err) {
      page.replaceChildren(h("p", { class: "error" }, `Could not load this page: ${err.message}`));
    }
    return;
  }
  page.replaceChildren(h("p", { class: "error" }, "No such page."), h("a", { href: "#/" }, "All experiments"));
}

window.addEventListener("hashchange", route);
route();
