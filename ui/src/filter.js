// The runs filter: space-separated terms, all of which must hold.
//   status:Failed           status (Running, Completed, Failed, Canceled)
//   lr=0.01   lr!=0.01      a tag or property equals / differs
//   loss.last<0.5           a metric column (.last .min .max) compared: < <= > >= =
//   resnet                  text anywhere in the name, run id, tags or properties
// Returns {test(i) -> bool, metrics: [metric names the filter needs], error}.

const TERM = /^([^<>=!:~]+?)(\.(last|min|max))?\s*(<=|>=|!=|<|>|=|:)(.*)$/;

export function compileFilter(text, data) {
  const tests = [];
  const metrics = new Set();
  let error = null;
  for (const raw of (text ?? "").trim().split(/\s+/).filter(Boolean)) {
    const m = TERM.exec(raw);
    if (!m) {
      const needle = raw.toLowerCase();
      tests.push((i) => haystack(data, i).includes(needle));
      continue;
    }
    const [, key, , field, op, value] = m;
    if (op === ":" && key === "status") {
      const want = value.toLowerCase();
      tests.push((i) => data.runs.status[i].toLowerCase() === want);
    } else if (field) {
      metrics.add(key);
      const limit = Number(value);
      if (!Number.isFinite(limit)) { error = `${raw}: ${value} is not a number`; continue; }
      tests.push((i) => {
        const v = data.metrics[key]?.[field]?.[i];
        return v !== null && v !== undefined && compare(v, op, limit);
      });
    } else {
      const cell = (i) => data.tags[key]?.[i] ?? data.properties[key]?.[i] ?? null;
      const numeric = Number(value);
      tests.push((i) => {
        const v = cell(i);
        if (op === "=" || op === ":") return v !== null && v === value;
        if (op === "!=") return v !== value;
        if (v === null || !Number.isFinite(Number(v)) || !Number.isFinite(numeric)) return false;
        return compare(Number(v), op, numeric);
      });
    }
  }
  return { test: (i) => tests.every((t) => t(i)), metrics: [...metrics], error };
}

function compare(v, op, limit) {
  switch (op) {
    case "<": return v < limit;
    case "<=": return v <= limit;
    case ">": return v > limit;
    case ">=": return v >= limit;
    case "=": return v === limit;
    case "!=": return v !== limit;
    default: return false;
  }
}

const haystacks = new WeakMap();
function haystack(data, i) {
  let cache = haystacks.get(data);
  if (!cache) haystacks.set(data, (cache = []));
  if (cache[i] === undefined) {
    const parts = [data.runs.display_name[i], data.runs.run_id[i]];
    for (const col of Object.values(data.tags)) if (col[i] !== null) parts.push(col[i]);
    for (const col of Object.values(data.properties)) if (col[i] !== null) parts.push(col[i]);
    cache[i] = parts.join(" ").toLowerCase();
  }
  return cache[i];
}
