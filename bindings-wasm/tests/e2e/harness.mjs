// What the browser tests share (the package's run.mjs and bundlers.mjs, and
// the demo's tests/e2e/web-demo.mjs): their environment (set by `cargo xtask
// test wasm` or `e2e`), Chromium's flags and playwright-core.

import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { extname, join } from "node:path";

/** The environment variable `name`; exits with a hint when it is missing. */
export function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e: ${name} is not set: run this through \`cargo xtask test wasm\` (or \`e2e\`)`);
    process.exit(2);
  }
  return value;
}

/** Chromium flags that work on these machines (see TOOLCHAIN.md). */
export const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** playwright-core's `chromium`, from `ERTH_NODE_MODULES`. */
export function playwrightChromium() {
  return createRequire(join(env("ERTH_NODE_MODULES"), "noop.js"))("playwright-core").chromium;
}

/**
 * Runs `tests` (`[{ name, fn }]`) in order, each even when an earlier one
 * failed, printing `ok`/`FAIL` with its time (and a failed command's
 * output); resolves to `{ passed, failed }`.
 */
export async function runTests(tests) {
  let passed = 0;
  let failed = 0;
  for (const { name, fn } of tests) {
    const started = Date.now();
    const took = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
    try {
      await fn();
      passed++;
      console.log(`ok   ${name} (${took()})`);
    } catch (e) {
      failed++;
      const detail = [String(e?.stack ?? e)];
      if (e?.stderr) detail.push(`stderr: ${e.stderr}`);
      if (e?.stdout) detail.push(`stdout: ${e.stdout}`);
      console.log(`FAIL ${name} (${took()})\n     ${detail.join("\n").replaceAll("\n", "\n     ")}`);
    }
  }
  return { passed, failed };
}

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".css": "text/css",
  ".ts": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
};

/** Answers with `file` (its type from its extension), or 404. */
export async function serveFile(res, file) {
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(body);
  } catch {
    res.writeHead(404).end("not found");
  }
}
