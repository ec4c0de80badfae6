// Start page: every experiment with its run count, last activity and status mix.
import { api, uiConfig } from "../api.js";
import { h, fmtAgo, fmtTime, link } from "../util.js";
import { live } from "./live.js";

const STATUSES = ["Running", "Completed", "Failed", "Canceled"];

export async function experimentsPage() {
  const el = h("section", { class: "page" });
  const body = h("div");
  el.append(h("h1", {}, "Experiments"), body);
  const render = (data) => {
    const e = data.experiments;
    if (!e.name.length) {
      body.replaceChildren(h("p", { class: "muted" }, "No runs yet. Log one with the SDK, e.g. ",
        h("code", {}, "Experiment(Workspace(), \"demo\").start_logging()"), "."));
      return;
    }
    body.replaceChildren(h("table", { class: "grid experiments" },
      h("thead", {}, h("tr", {}, h("th", {}, "experiment"), h("th", { class: "num" }, "runs"),
        h("th", {}, "last activity"), h("th", {}, "status"), h("th", {}, ""))),
      h("tbody", {}, e.name.map((name, i) => h("tr", {},
        h("td", {}, h("a", { href: link(`/experiment/${encodeURIComponent(name)}`), class: "experiment-link" }, name)),
        h("td", { class: "num" }, e.runs[i]),
        h("td", { title: fmtTime(e.last_activity_ms[i]) }, fmtAgo(e.last_activity_ms[i], data.now_ms)),
        h("td", {}, statusMix(STATUSES.map((s) => [s, e.status[s][i]]), e.runs[i])),
        h("td", {}, h("a", { href: link(`/sweep/${encodeURIComponent(name)}`) }, "sweep view")))))));
  };
  let [config, latest] = await Promise.all([uiConfig(), api("experiments")]);
  render(latest);
  const poll = live(async () => render((latest = await api("experiments"))), config.refresh_s,
                    () => latest.experiments.status.Running.some((n) => n > 0));
  return { el, title: "Experiments", destroy: () => poll.stop() };
}

export function statusMix(parts, total) {
  const bar = h("div", { class: "mix", title: parts.filter(([, n]) => n).map(([s, n]) => `${n} ${s}`).join(", ") });
  for (const [status, n] of parts) {
    if (!n) continue;
    bar.append(h("span", { class: `mix-part status-bg-${status.toLowerCase()}`, style: { flexGrow: n } }));
  }
  return h("div", { class: "mix-wrap" }, bar,
    h("span", { class: "mix-text" }, parts.filter(([, n]) => n).map(([s, n]) => `${n} ${s.toLowerCase()}`).join(" · ") || `${total}`));
}
