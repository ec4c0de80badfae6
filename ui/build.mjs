// Builds the UI into runstream/server/static/ (what `runstream server` serves and the wheel ships).
//   node build.mjs [OUTDIR]      (`make ui` runs `npm ci` first)
// The output depends only on the sources and the pinned packages (no timestamps, stable
// chunk names), so a test can rebuild into a temporary folder and compare it with the shipped files.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, "..", "runstream", "server", "static"));

rmSync(join(out, "assets"), { recursive: true, force: true });
mkdirSync(join(out, "assets"), { recursive: true });
await esbuild.build({
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
});
copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));
console.log(`runstream UI built into ${out}`);
