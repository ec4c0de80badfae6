// Small DOM and formatting helpers (no framework: the pages are plain DOM).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (key in el && key !== "list") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function fmtTime(ms) {
  if (!ms) return "";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

// "5m 2s ago" for recent activity; past a month the date says more than a count of days.
export function fmtAgo(ms, now) {
  if (!ms) return "";
  return now - ms < 30 * 86400e3 ? `${fmtDuration(now - ms)} ago` : `on ${fmtTime(ms).slice(0, 10)}`;
}

export function fmtNum(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "string") return v;
  if (Number.isInteger(v) && Math.abs(v) < 1e15) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(4);
  return String(Number(v.toPrecision(6)));
}

export function statusBadge(status) {
  return h("span", { class: `status status-${(status ?? "").toLowerCase()}` }, status);
}

// Colours for many series: evenly spaced hues, stable per index.
export function colour(i) {
  return `hsl(${(215 + i * 137.508) % 360}, 65%, 45%)`;
}

export function hashParams() {
  const hash = location.hash.replace(/^#/, "");
  const q = hash.indexOf("?");
  return { path: q < 0 ? hash : hash.slice(0, q), params: new URLSearchParams(q < 0 ? "" : hash.slice(q + 1)) };
}

export function link(path, params) {
  const q = params ? new URLSearchParams(params).toString() : "";
  return `#${path}${q ? `?${q}` : ""}`;
}

export function setParams(changes) {
  const { path, params } = hashParams();
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") params.delete(k);
    else params.set(k, v);
  }
  history.replaceState(null, "", `#${path}?${params.toString()}`);
}
