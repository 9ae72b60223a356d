// What the browser tests share (the package's run.mjs, engines.mjs and
// bundlers.mjs, and the demo's tests/e2e/web-demo.mjs): their environment
// (set by `cargo xtask test wasm` or `e2e`), Chromium's flags,
// playwright-core, polling (`until`) and the native CLI replica.

import { execFileSync } from "node:child_process";
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

/** Polls `check` every 100 ms until it returns something truthy (returned), or throws after `timeoutMs`. */
export async function until(what, check, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A runner of the native `erth` CLI (`cli`), a third replica: `run(db,
 * ...args)` is `erth --db <work>/<db> --remote <server> --json ...args`,
 * its JSON output parsed (no token or schema from the environment).
 */
export function cliRunner(cli, work, server) {
  return (db, ...args) => {
    const out = execFileSync(cli, ["--db", join(work, db), "--remote", server, "--json", ...args], {
      encoding: "utf8",
      env: { ...process.env, ERTH_AUTH_TOKEN: "", ERTH_SCHEMA: "" },
      maxBuffer: 64 * 1024 * 1024,
    });
    return JSON.parse(out);
  };
}

/** Chromium flags for headless runs without network services (background networking off, no sandbox as root). */
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
  // ERTH_E2E_ONLY=<regex>: only the tests whose names match (while working
  // on one; `cargo xtask test` never sets it).
  const only = process.env.ERTH_E2E_ONLY ? new RegExp(process.env.ERTH_E2E_ONLY) : null;
  for (const { name, fn } of tests) {
    if (only && !only.test(name)) continue;
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
