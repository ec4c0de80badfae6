// Live refresh: re-run `tick` every `seconds` while `active()` says something is still running.
// Polling (not SSE) keeps the server stateless; the store is a few seconds behind ingest at most.
export function live(tick, seconds, active = () => true) {
  let timer = null;
  let stopped = false;
  const indicator = document.getElementById("live");
  const step = async () => {
    if (stopped) return;
    const on = active();
    if (indicator) indicator.textContent = on ? `● live (${seconds}s)` : "";
    if (on && !document.hidden) {
      try { await tick(); } catch { /* the next tick tries again */ }
    }
    if (!stopped) timer = setTimeout(step, seconds * 1000);
  };
  timer = setTimeout(step, seconds * 1000);
  if (indicator) indicator.textContent = active() ? `● live (${seconds}s)` : "";
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      if (indicator) indicator.textContent = "";
    },
  };
}
