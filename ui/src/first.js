// A page's first API requests, computed from the address alone: early.js starts them while the
// app's modules still load, and the page then asks for the very same URLs (api.js hands over the
// answers already under way), so the data is not held up by the scripts.
import { hashParams } from "./util.js";

// The compare chart's width before it is laid out: the page's width less the card's margins.
export function chartWidth() {
  return Math.max(200, document.getElementById("page").clientWidth - 60);
}

// The compare page's curves request when the address names the metric, else null.
export function compareCurves(params) {
  const runs = (params.get("runs") ?? "").split(",").filter(Boolean);
  const name = params.get("metric");
  if (!runs.length || !name) return null;
  return { run: runs, name, x: params.get("x") ?? "step", width: chartWidth() };
}

// [path, params] of the requests the page at the current address makes first.
export function firstRequests() {
  const { path, params } = hashParams();
  const out = [["config", {}]];
  const run = /^\/run\/(.+)$/.exec(path);
  if (run) out.push(["run", { run: decodeURIComponent(run[1]) }]);
  const curves = path === "/compare" ? compareCurves(params) : null;
  if (curves) out.push(["curves", curves]);
  return out;
}
