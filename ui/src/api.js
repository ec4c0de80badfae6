// Talks to /api/ui/ (relative to the page, so the UI works under any prefix and inside an iframe).
// Every answer is columnar JSON; see the README's "The UI's JSON API".

export const stats = { requests: 0, byPath: {} };

// Where early.js leaves the requests it started before the app loaded (URL -> pending fetch).
export const EARLY = "__rsEarly";

export function apiUrl(path, params = {}) {
  const url = new URL(`api/ui/${path}`, document.baseURI);
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const v of Array.isArray(value) ? value : [value]) url.searchParams.append(key, String(v));
  }
  return url;
}

export async function api(path, params = {}) {
  stats.requests += 1;
  stats.byPath[path] = (stats.byPath[path] ?? 0) + 1;
  const url = apiUrl(path, params);
  const early = window[EARLY]?.get(url.href);
  if (early) window[EARLY].delete(url.href); // taken once: a later request for it is a new one
  const response = await (early ?? fetch(url, { headers: { Accept: "application/json" } }));
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error ?? `HTTP ${response.status}`);
  return body;
}

let config = null;
export async function uiConfig() {
  config ??= await api("config");
  return config;
}
