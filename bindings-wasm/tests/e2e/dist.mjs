// The released npm tarball as an app developer uses it, with no Rust on
// PATH: `npm install` of the tarball into a fresh Vite app (the package
// README's config), served by `vite dev`; the local server started by the
// command of README.md's "Develop against a local server", run as written
// (on a free port instead of 8080); and two browser profiles ("devices") of
// Chromium whose pages, on the Vite origin, sync through that server on
// another origin (tursodb answers CORS `*`). Run by `cargo xtask test dist`,
// which passes:
//
//   ERTH_TARBALL       the npm tarball of `cargo xtask dist`
//   ERTH_README        the repository's README.md
//   ERTH_BUNDLERS      node_modules holding vite (8)
//   ERTH_NODE_MODULES  node_modules holding playwright-core
//   ERTH_CHROMIUM      the Chromium binary
//   ERTH_E2E_WORK      an empty scratch directory
//
// It prints one line per step and `e2e: N passed, M failed`.

import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import { env, FLAGS, playwrightChromium, runTests, until } from "./harness.mjs";

const TARBALL = resolve(env("ERTH_TARBALL"));
const README = resolve(env("ERTH_README"));
const BUNDLERS = resolve(env("ERTH_BUNDLERS"));
const CHROMIUM = env("ERTH_CHROMIUM");
const WORK = resolve(env("ERTH_E2E_WORK"));
const chromium = playwrightChromium();
const APP = join(WORK, "app");

// An app developer's machine: Node and npm, no Rust toolchain.
const NO_RUST = {
  ...process.env,
  PATH: process.env.PATH.split(":")
    .filter((dir) => !["cargo", "rustc", "wasm-bindgen", "wasm-opt"].some((bin) => spawnSync("test", ["-x", join(dir, bin)]).status === 0))
    .join(":"),
  NO_COLOR: "1",
  FORCE_COLOR: "0",
};

const MAIN_JS = `import { ErthDb } from "erth-sync";

const params = new URLSearchParams(location.search);
const schema = { tables: { notes: { columns: { body: { type: "text", notNull: true } } } } };

window.app = (async () => {
  const db = await ErthDb.open({ name: "notes", url: params.get("url"), schema });
  try {
    const write = params.get("write");
    if (write) await db.execute("INSERT INTO notes (body) VALUES (?)", [write]);
    const report = await db.sync();
    const notes = await db.getAll("SELECT body FROM notes ORDER BY body");
    return { notes: notes.map((n) => n.body), pushed: report.pushed, pulled: report.pulled };
  } catch (e) {
    return { error: \`\${e.code}: \${e.message}\` };
  } finally {
    await db.close();
  }
})();
`;

const INDEX_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>erth-sync app</title><link rel="icon" href="data:,"></head>
<body><script type="module" src="/main.js"></script></body></html>
`;

// The package README's Vite config.
const VITE_CONFIG = `export default {
  optimizeDeps: { exclude: ["erth-sync"] },
  worker: { format: "es" },
  build: { target: "es2022" },
};
`;

function freePort() {
  return new Promise((ok) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
  });
}

/** The first ```sh block after the heading `## Develop against a local server`. */
async function readmeServerCommand() {
  const text = await readFile(README, "utf8");
  const section = text.split(/^## Develop against a local server$/m)[1];
  assert.ok(section, "README.md has a section 'Develop against a local server'");
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  assert.ok(block, "the section has a ```sh block");
  return block[1];
}

/** Resolves once something accepts connections on `port`. */
function listening(port) {
  return until(`a server on port ${port}`, async () => {
    const res = await fetch(`http://127.0.0.1:${port}/v2/pipeline`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ requests: [{ type: "execute", stmt: { sql: "SELECT 1" } }] }),
    }).catch(() => null);
    return res?.ok;
  }, 60_000);
}

const children = [];
function start(cmd, args, options) {
  const child = spawn(cmd, args, { ...options, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  child.output = "";
  child.stdout.on("data", (d) => (child.output += d));
  child.stderr.on("data", (d) => (child.output += d));
  children.push(child);
  return child;
}

const steps = [];
const step = (name, fn) => steps.push({ name, fn });
let serverUrl = null;
let appOrigin = null;

step("no Rust on the app developer's PATH", async () => {
  for (const bin of ["cargo", "rustc", "wasm-bindgen"]) {
    const found = spawnSync("sh", ["-c", `command -v ${bin}`], { env: NO_RUST });
    assert.notEqual(found.status, 0, `${bin} is on PATH: ${found.stdout}`);
  }
  assert.equal(spawnSync("npm", ["--version"], { env: NO_RUST }).status, 0, "npm is on PATH");
});

step("README's local server command, run as written, serves Hrana with CORS *", async () => {
  const command = await readmeServerCommand();
  assert.match(command, /--sync-server 127\.0\.0\.1:8080/);
  const port = await freePort();
  const dir = join(WORK, "server");
  await mkdir(dir, { recursive: true });
  const server = start("bash", ["-euo", "pipefail", "-c", command.replaceAll("8080", String(port))], { cwd: dir, env: NO_RUST });
  serverUrl = `http://127.0.0.1:${port}`;
  await listening(port).catch((e) => {
    throw new Error(`${e.message}\n${server.output}`);
  });
  const preflight = await fetch(`${serverUrl}/v2/pipeline`, {
    method: "OPTIONS",
    headers: { origin: "http://127.0.0.1:5173", "access-control-request-method": "POST", "access-control-request-headers": "content-type" },
  });
  assert.equal(preflight.headers.get("access-control-allow-origin"), "*");
});

step("npm install of the tarball into a fresh Vite app, served by vite dev on another origin", async () => {
  await mkdir(APP, { recursive: true });
  await writeFile(join(APP, "package.json"), JSON.stringify({ name: "notes-app", private: true, type: "module" }));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", TARBALL], { cwd: APP, env: NO_RUST, stdio: "pipe" });
  const installed = JSON.parse(await readFile(join(APP, "node_modules", "erth-sync", "package.json"), "utf8"));
  assert.equal(installed.name, "erth-sync");
  await writeFile(join(APP, "main.js"), MAIN_JS);
  await writeFile(join(APP, "index.html"), INDEX_HTML);
  await writeFile(join(APP, "vite.config.js"), VITE_CONFIG);
  const port = await freePort();
  appOrigin = `http://127.0.0.1:${port}`;
  const vite = start("node", [join(BUNDLERS, "vite", "bin", "vite.js"), "--host", "127.0.0.1", "--port", String(port), "--strictPort"], {
    cwd: APP,
    env: NO_RUST,
  });
  await until(`vite dev on ${appOrigin}`, () => vite.output.includes(appOrigin) || (vite.exitCode !== null && Promise.reject(new Error(vite.output))), 60_000);
  assert.notEqual(new URL(appOrigin).port, new URL(serverUrl).port, "the page and the server are two origins");
});

async function device(profile, query) {
  const context = await chromium.launchPersistentContext(join(WORK, profile), { executablePath: CHROMIUM, headless: true, args: FLAGS });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    await page.goto(`${appOrigin}/?${new URLSearchParams({ url: serverUrl, ...query })}`);
    await page.waitForFunction(() => window.app !== undefined, null, { timeout: 60_000 });
    return await page.evaluate(() => window.app);
  } finally {
    await context.close();
  }
}

step("two devices sync through the server: each sees the other's note", async () => {
  const a = await device("device-a", { write: "from A" });
  assert.equal(a.error, undefined, a.error);
  assert.deepEqual(a.notes, ["from A"]);
  assert.equal(a.pushed, 1);
  const b = await device("device-b", { write: "from B" });
  assert.equal(b.error, undefined, b.error);
  assert.deepEqual(b.notes, ["from A", "from B"]);
  const again = await device("device-a", {});
  assert.deepEqual(again.notes, ["from A", "from B"]);
});

setTimeout(() => {
  console.log("FAIL dist.mjs did not finish within 10 minutes");
  console.log("e2e: 0 passed, 1 failed");
  process.exit(1);
}, 10 * 60_000).unref();

let passed = 0;
let failed = 0;
try {
  ({ passed, failed } = await runTests(steps));
} finally {
  for (const child of children) {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {}
  }
}
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
