// Runs as a classic script at the end of <body>, before the app's (deferred) modules: starts the
// page's first API requests (first.js) and leaves the pending answers in window.__rsEarly for api.js.
import { apiUrl, EARLY } from "./api.js";
import { firstRequests } from "./first.js";

const started = new Map();
for (const [path, params] of firstRequests()) {
  const url = apiUrl(path, params);
  const response = fetch(url, { headers: { Accept: "application/json" } });
  response.catch(() => {}); // the page sees the failure when it takes the answer
  started.set(url.href, response);
}
window[EARLY] = started;
