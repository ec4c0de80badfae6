// Builds the UI into runstream/server/static/ (what `runstream server` serves and the wheel ships).
//   node build.mjs [OUTDIR]      (`make ui` runs `npm ci` first)
// The output depends only on the sources and the pinned packages (no timestamps, stable
// chunk names), so a test can rebuild into a temporary folder and compare it with the shipped files.
import * as esbuild from "esbuild";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "..", "runstream", "server", "static"));

rmSync(join(out, "assets"), { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });
const result = await esbuild.build({
  entryPoints: { app: join(here, "src", "main.js") },
  outdir: join(out, "assets"),
  bundle: true,
  splitting: true, // ECharts (sweep view only) is a chunk loaded when that page opens
  format: "esm",
  minify: true,
  target: ["chrome109", "firefox115", "safari16"],
  chunkNames: "chunk-[hash]",
  legalComments: "linked",
  logLevel: "warning",
  absWorkingDir: here,
  metafile: true,
});
// early.js: a classic script the page runs before the modules, to start its first API requests.
await esbuild.build({
  entryPoints: { early: join(here, "src", "early.js") },
  outdir: join(out, "assets"),
  bundle: true,
  format: "iife",
  minify: true,
  target: ["chrome109", "firefox115", "safari16"],
  legalComments: "linked",
  logLevel: "warning",
  absWorkingDir: here,
});
// The chunks app.js imports at start are preloaded with it, not discovered after it (one round trip less).
const app = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint === "src/main.js");
const preload = app[1].imports.filter((i) => i.kind === "import-statement")
  .map((i) => `<link rel="modulepreload" href="ui/assets/${basename(i.path)}">`).join("\n");
const page = readFileSync(join(here, "src", "index.html"), "utf8").replace("<!-- preload -->", preload);
writeFileSync(join(out, "index.html"), page);
console.log(`runstream UI built into ${out}`);
