// Talks to /api/ui/ (relative to the page, so the UI works under any prefix and inside an iframe).
// Every answer is columnar JSON; see ui/API.md.

export const stats = { requests: 0, byPath: {} };

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
  const response = await fetch(apiUrl(path, params), { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error ?? `HTTP ${response.status}`);
  return body;
}

let config = null;
export async function uiConfig() {
  config ??= await api("config");
  return config;
}
