// The packed npm package in apps built by bundlers, as users build them:
// `npm pack` of the built package, `npm install` of the tarball into a
// fresh app, its TypeScript checked against the package's types, then one
// app source built five ways with the recipes of the package README (Vite 8
// with Rolldown, Vite 5 with Rollup, esbuild, Rollup, webpack 5) and served
// by `vite dev`. Each
// is opened in Debian's Chromium (one browser, one persistent profile): the
// app opens a database with its own schema, writes a row, syncs with
// tursodb, and after a reload (local-only) still has it; a native `erth` CLI
// replica then sees every app's row. Run by
// `cargo xtask test wasm`, which passes:
//
//   ERTH_PKG_DIR          the built package (bindings-wasm/pkg)
//   ERTH_BUNDLERS         node_modules holding vite (8), vite5 (an alias of vite 5), esbuild,
//                         rollup, @rollup/plugin-node-resolve, webpack and typescript
//   ERTH_NODE_MODULES     node_modules holding playwright-core
//   ERTH_TEST_HRANA_URL   the tursodb server
//   ERTH_CLI              the native `erth` binary
//   ERTH_CHROMIUM         the Chromium binary
//   ERTH_E2E_WORK         an empty scratch directory
//
// It prints one line per step with its time and `e2e: N passed, M failed`.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { copyFile, mkdir, readdir, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { join, normalize, resolve, sep } from "node:path";
import { env, FLAGS, playwrightChromium, runTests, serveFile } from "./harness.mjs";

const PKG_DIR = resolve(env("ERTH_PKG_DIR"));
const BUNDLERS = resolve(env("ERTH_BUNDLERS"));
const SERVER = env("ERTH_TEST_HRANA_URL").replace(/\/$/, "");
const CLI = env("ERTH_CLI");
const CHROMIUM = env("ERTH_CHROMIUM");
const WORK = resolve(env("ERTH_E2E_WORK"));
const chromium = playwrightChromium();

const APP = join(WORK, "app");
const DIST = join(APP, "dist");
const SCHEMA = { tables: { notes: { columns: { body: { type: "text", notNull: true } } } } };

function run(cmd, args, cwd) {
  return execFileSync(cmd, args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 });
}

// ---- the app, as a user writes it ----

const MAIN_JS = `import { ErthDb, ErthError } from "erth-sync";

const schema = ${JSON.stringify(SCHEMA)};
const params = new URLSearchParams(location.search);

// No top-level await: this builds for any target.
window.app = (async () => {
  const url = params.get("url") ?? "";
  const db = await ErthDb.open({ name: params.get("name"), url, schema });
  try {
    const write = params.get("write");
    if (write) await db.execute("INSERT INTO notes (body) VALUES (?)", [write]);
    const report = url === "" ? null : await db.sync();
    const notes = await db.getAll("SELECT body FROM notes ORDER BY body");
    const status = await db.status();
    return { notes: notes.map((n) => n.body), pushed: report ? report.pushed : null, remoteUrl: status.remoteUrl };
  } catch (e) {
    return { error: e instanceof ErthError ? e.code + ": " + e.message : String(e) };
  } finally {
    await db.close();
  }
})().catch((e) => ({ error: (e && e.code ? e.code + ": " : "") + String(e && e.message ? e.message : e) }));
`;

const INDEX_HTML = (src) => `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>erth-sync bundler test</title><link rel="icon" href="data:,"></head>
<body><p>erth-sync bundled</p><script type="module" src="${src}"></script></body>
</html>
`;

// The README's Vite recipe.
const VITE_CONFIG = `export default {
  base: "./",
  optimizeDeps: { exclude: ["erth-sync"] },
  worker: { format: "es" },
  build: { target: "es2022" },
};
`;

// TypeScript as an app writes it against the package's index.d.ts: row
// generics, the schema type, and two lines that must NOT type-check.
const CHECK_TS = `import { ErthDb, ErthError, type ExecuteResult, type Row, type Schema } from "erth-sync";

interface Note { id: string; body: string; created_at: number }
const schema: Schema = ${JSON.stringify(SCHEMA)};

export async function main(): Promise<string[]> {
  const db = await ErthDb.open({ name: "ts", url: "", schema });
  const notes: Note[] = await db.getAll<Note>("SELECT id, body, created_at FROM notes WHERE created_at > ?", [1n]);
  const one: Note | null = await db.getOptional<Note>("SELECT * FROM notes");
  const row: Row = await db.get("SELECT 1 AS x");
  const results: ExecuteResult[] = await db.transaction((tx) => {
    tx.execute("INSERT INTO notes (body) VALUES (?)", ["x", null, true, 1.5, new Uint8Array(1)]);
  });
  const stop = db.watch<Note>("SELECT * FROM notes", [], (rows) => rows.map((n) => n.body.length));
  await stop.ready;
  stop();
  const columns: string[] = (await db.status()).unknownServerColumns;
  // @ts-expect-error an object is not a SQL parameter
  await db.execute("SELECT ?", [{}]);
  // @ts-expect-error "date" is not a column type
  const bad: Schema = { tables: { t: { columns: { x: { type: "date" } } } } };
  let code = "";
  try {
    await db.sync();
  } catch (e) {
    if (e instanceof ErthError && (e.code === "LoadFailed" || e.code === "Sql")) code = e.code;
  }
  return [...notes.map((n) => n.body), one?.body ?? "", String(row.x), String(results.length), ...columns, String(bad), code];
}
`;

const TSCONFIG = {
  compilerOptions: {
    strict: true,
    noEmit: true,
    target: "es2022",
    module: "esnext",
    moduleResolution: "bundler",
    lib: ["es2022", "dom"],
  },
  files: ["check.ts"],
};

// ---- steps ----

const steps = [];
const step = (name, fn) => steps.push({ name, fn });
const apps = [];
const ALL_APPS = ["vite8", "vite5", "esbuild", "rollup", "webpack"];

step("npm pack the built package and npm install the tarball into a fresh app", async () => {
  await mkdir(APP, { recursive: true });
  const packed = JSON.parse(run("npm", ["pack", PKG_DIR, "--pack-destination", WORK, "--json", "--silent"], WORK));
  const tarball = join(WORK, packed[0].filename);
  const files = packed[0].files.map((f) => f.path);
  for (const f of ["index.js", "index.d.ts", "worker.js", "errors.js", "erth_wasm.js", "erth_wasm_bg.wasm", "README.md"]) {
    assert.ok(files.includes(f), `the tarball has ${f}: ${files.join(", ")}`);
  }
  await writeFile(join(APP, "package.json"), JSON.stringify({ name: "erth-bundler-app", private: true, type: "module" }));
  run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", tarball], APP);
  await writeFile(join(APP, "main.js"), MAIN_JS);
  await writeFile(join(APP, "index.html"), INDEX_HTML("./main.js"));
  await writeFile(join(APP, "vite.config.js"), VITE_CONFIG);
});

step("tsc: an app's TypeScript type-checks against the packed index.d.ts (and two wrong lines do not)", async () => {
  await writeFile(join(APP, "check.ts"), CHECK_TS);
  await writeFile(join(APP, "tsconfig.json"), JSON.stringify(TSCONFIG));
  run(join(BUNDLERS, ".bin", "tsc"), ["-p", "tsconfig.json"], APP);
});

for (const [name, bin] of [
  ["vite8", "vite"],
  ["vite5", "vite5"],
]) {
  step(`${name}: vite build with the README's config`, async () => {
    run("node", [join(BUNDLERS, bin, "bin", "vite.js"), "build", "--logLevel", "warn", "--outDir", join(DIST, name)], APP);
    const assets = await readdir(join(DIST, name, "assets"));
    assert.ok(assets.some((f) => f.endsWith(".wasm")), `${name} emitted the .wasm: ${assets.join(", ")}`);
    // The app, the worker and the .wasm: one file each.
    assert.equal(assets.length, 3, `${name} emitted: ${assets.join(", ")}`);
    apps.push(name);
  });
}

step("esbuild: the app and the package's worker as two entry points, plus the .wasm", async () => {
  const out = join(DIST, "esbuild");
  run(
    join(BUNDLERS, ".bin", "esbuild"),
    [
      "main.js",
      "node_modules/erth-sync/worker.js",
      "--bundle",
      "--format=esm",
      "--target=es2022",
      "--entry-names=[name]",
      `--outdir=${out}`,
      "--log-level=warning",
    ],
    APP,
  );
  await copyFile(join(APP, "node_modules", "erth-sync", "erth_wasm_bg.wasm"), join(out, "erth_wasm_bg.wasm"));
  await writeFile(join(out, "index.html"), INDEX_HTML("./main.js"));
  apps.push("esbuild");
});

step("Rollup (the README's options, through its API): the app and the worker as two inputs, plus the .wasm", async () => {
  const bundlers = createRequire(join(BUNDLERS, "noop.js"));
  const { rollup } = bundlers("rollup");
  const { nodeResolve } = bundlers("@rollup/plugin-node-resolve");
  const out = join(DIST, "rollup");
  const bundle = await rollup({
    input: { main: join(APP, "main.js"), worker: join(APP, "node_modules", "erth-sync", "worker.js") },
    plugins: [nodeResolve()],
  });
  await bundle.write({ dir: out, format: "es", entryFileNames: "[name].js" });
  await bundle.close();
  await copyFile(join(APP, "node_modules", "erth-sync", "erth_wasm_bg.wasm"), join(out, "erth_wasm_bg.wasm"));
  await writeFile(join(out, "index.html"), INDEX_HTML("./main.js"));
  apps.push("rollup");
});

step("webpack 5 (its API, no extra config): the worker becomes a chunk, the .wasm an asset", async () => {
  const webpack = createRequire(join(BUNDLERS, "noop.js"))("webpack");
  const out = join(DIST, "webpack");
  const stats = await new Promise((ok, fail) =>
    webpack(
      { mode: "production", context: APP, entry: "./main.js", output: { path: out, filename: "main.js" } },
      (err, result) => (err ? fail(err) : ok(result)),
    ),
  );
  assert.ok(!stats.hasErrors(), stats.toString({ all: false, errors: true }));
  const files = await readdir(out);
  assert.ok(files.some((f) => f.endsWith(".wasm")), `webpack emitted the .wasm: ${files.join(", ")}`);
  // Only code and the .wasm: no copy of the package's other files.
  assert.deepEqual(files.filter((f) => !/\.(js|wasm)$/.test(f)), [], `webpack emitted: ${files.join(", ")}`);
  await writeFile(join(out, "index.html"), INDEX_HTML("./main.js"));
  apps.push("webpack");
});

// ---- serving the builds ----

const server = createServer(async (req, res) => {
  let path = decodeURIComponent(new URL(req.url, "http://x").pathname);
  if (path === "/favicon.ico") return res.writeHead(204).end();
  if (path.endsWith("/")) path += "index.html";
  const file = normalize(join(DIST, path));
  if (!file.startsWith(DIST + sep)) return res.writeHead(403).end();
  return serveFile(res, file);
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const ORIGIN = `http://127.0.0.1:${server.address().port}`;

let context = null;
const consoleErrors = [];

async function visit(app, query) {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${ORIGIN}/${app}/?${new URLSearchParams(query)}`);
  await page.waitForFunction(() => window.app !== undefined);
  return page.evaluate(() => window.app);
}

step("each build opens a database, writes its schema's table and syncs; after a reload (local-only) the row is there", async () => {
  context = await chromium.launchPersistentContext(join(WORK, "profile"), {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
  });
  context.on("page", (page) => page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text())));
  context.pages().forEach((page) => page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text())));
  assert.deepEqual(apps, ALL_APPS, "every build step passed");
  const done = [];
  for (const app of apps) {
    const first = await visit(app, { name: app, url: SERVER, write: `from ${app}` });
    assert.equal(first.error, undefined, `${app}: ${first.error}`);
    // The server also holds the rows of the apps before this one: the sync pulled them.
    assert.deepEqual(first.notes, [...done.map((d) => `from ${d}`), `from ${app}`].sort(), app);
    assert.equal(first.pushed, 1, app);
    assert.equal(first.remoteUrl, SERVER, app);
    // Local-only after a reload: the rows come from this origin's OPFS.
    const reloaded = await visit(app, { name: app, url: "" });
    assert.deepEqual(reloaded, { notes: first.notes, pushed: null, remoteUrl: null }, `${app}, reloaded`);
    done.push(app);
  }
});

step("vite dev (Vite 8) with the README's config serves the app unbundled: it writes, syncs and reloads", async () => {
  const port = await new Promise((ok) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => ok(port));
    });
  });
  // No colours: picocolors turns them on whenever CI is set, and Vite then
  // prints the port in bold, which the URL match below would never see.
  const dev = spawn("node", [join(BUNDLERS, "vite", "bin", "vite.js"), "--host", "127.0.0.1", "--port", String(port), "--strictPort"], {
    cwd: APP,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
  });
  let output = "";
  const plain = () => output.replace(/\x1b\[[0-9;]*m/g, "");
  dev.stdout.on("data", (d) => (output += d));
  dev.stderr.on("data", (d) => (output += d));
  try {
    const origin = `http://127.0.0.1:${port}`;
    await new Promise((ok, fail) => {
      const timer = setTimeout(() => fail(new Error(`vite dev did not say it serves ${origin} within 60 s: ${plain()}`)), 60_000);
      const check = () => plain().includes(origin) && (clearTimeout(timer), ok());
      dev.stdout.on("data", check);
      dev.stderr.on("data", check);
      dev.on("exit", (code) => (clearTimeout(timer), fail(new Error(`vite dev exited (${code}): ${plain()}`))));
      check();
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const visitDev = async (query) => {
      await page.goto(`${origin}/?${new URLSearchParams(query)}`);
      await page.waitForFunction(() => window.app !== undefined);
      return page.evaluate(() => window.app);
    };
    const first = await visitDev({ name: "vite-dev", url: SERVER, write: "from vite dev" });
    assert.equal(first.error, undefined, `vite dev: ${first.error}\n${output}`);
    assert.ok(first.notes.includes("from vite dev"), JSON.stringify(first));
    assert.equal(first.pushed, 1);
    const reloaded = await visitDev({ name: "vite-dev", url: "" });
    assert.deepEqual(reloaded, { notes: first.notes, pushed: null, remoteUrl: null });
  } finally {
    dev.kill();
  }
});

step("a native replica sees every build's row", async () => {
  const schema = join(WORK, "notes.schema.json");
  await writeFile(schema, JSON.stringify(SCHEMA));
  const erth = (...args) =>
    run(CLI, ["--db", join(WORK, "native.db"), "--schema", schema, "--remote", SERVER, "--json", ...args], WORK);
  erth("sync");
  const bodies = JSON.parse(erth("sql", "SELECT body FROM notes ORDER BY body")).map((r) => r.body);
  for (const app of [...ALL_APPS, "vite dev"]) assert.ok(bodies.includes(`from ${app}`), `${app}: ${bodies}`);
});

step("no errors in the console", async () => {
  assert.deepEqual(consoleErrors, []);
});

// ---- run ----

// A hang anywhere fails loudly instead of holding CI until its limit
// (warm, the whole script takes about 10 s; cold about 30 s).
setTimeout(() => {
  console.log("FAIL bundlers.mjs did not finish within 10 minutes");
  console.log("e2e: 0 passed, 1 failed");
  process.exit(1);
}, 10 * 60_000).unref();

let passed = 0;
let failed = 0;
try {
  ({ passed, failed } = await runTests(steps));
} finally {
  await context?.close().catch(() => {});
  server.closeAllConnections();
  server.close();
}
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
