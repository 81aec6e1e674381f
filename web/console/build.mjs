// Bundle the console into src/corral/gateway/ui/static/app.js (committed).
// The banner carries the sha256 of the sources, so a test can tell a stale bundle
// (tests/unit/test_console_bundle.py recomputes it without node).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";

const sources = ["package.json", "package-lock.json", "build.mjs",
  ...readdirSync("src").sort().map((f) => `src/${f}`)];
const hash = createHash("sha256");
for (const file of sources) hash.update(file + "\0" + readFileSync(file) + "\0");

await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  format: "esm",
  target: "es2020",
  legalComments: "none",
  banner: { js: `/* corral console, built from web/console; sources sha256 ${hash.digest("hex")} */` },
  outfile: "../../src/corral/gateway/ui/static/app.js",
  logLevel: "info",
});
