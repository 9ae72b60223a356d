// The packed npm package in apps built by bundlers, as users build them:
// `npm pack` of the built package, `npm install` of the tarball into a
// fresh app, its TypeScript checked against the package's types, then one
// app source built five ways with the recipes of the package README (Vite 8
// with Rolldown, Vite 5 with Rollup, esbuild, Rollup, webpack 5) and served
// by `vite dev`. Each
// is opened in Debian's Chromium (one browser, one persistent profile): the
// app opens a database with its own schema, writes a row, syncs with
// tursodb, and after a reload (local-only) still has it; a native `erth` CLI
// replica then sees every app's row. Then a Vite + React app (erth-sync/react)
// and a Vite + Vue app (erth-sync/vue), type-checked with `tsc --strict` and
// built by Vite 8, render a live list that follows the page's own writes and
// the writes of a second browser profile (another device) synced through
// tursodb. Run by `cargo xtask test wasm`, which passes:
//
//   ERTH_PKG_DIR          the built package (bindings-wasm/pkg)
//   ERTH_BUNDLERS         node_modules holding vite (8), vite5 (an alias of vite 5), esbuild,
//                         rollup, @rollup/plugin-node-resolve, webpack and typescript
//   ERTH_FRAMEWORKS       node_modules holding react, react-dom, @types/react,
//                         @types/react-dom and vue (linked into the app)
//   ERTH_NODE_MODULES     node_modules holding playwright-core
//   ERTH_TEST_HRANA_URL   the tursodb server
//   ERTH_CLI              the native `erth` binary
//   ERTH_CHROMIUM         the Chromium binary
//   ERTH_E2E_WORK         an empty scratch directory
//
// It prints one line per step with its time and `e2e: N passed, M failed`.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { copyFile, mkdir, readdir, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { join, normalize, resolve, sep } from "node:path";
import { env, FLAGS, playwrightChromium, runTests, serveFile } from "./harness.mjs";

const PKG_DIR = resolve(env("ERTH_PKG_DIR"));
const BUNDLERS = resolve(env("ERTH_BUNDLERS"));
const FRAMEWORKS = resolve(env("ERTH_FRAMEWORKS"));
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
  // A schema written \`as const\` (readonly arrays) and one with \`satisfies\`.
  const frozen = { tables: { t: { columns: { x: { type: "text" } }, indexes: [["x"]] } } } as const;
  const checked = { tables: { t: { columns: { x: { type: "integer", notNull: true } } } } } satisfies Schema;
  await ErthDb.open({ name: "frozen", schema: frozen });
  await ErthDb.open({ name: "checked", schema: checked });
  const added = await db.writeTransaction(async (tx) => {
    const n = await tx.get<{ n: number }>("SELECT count(*) AS n FROM notes");
    if (n.n >= 5) return false;
    const done: ExecuteResult = await tx.execute("INSERT INTO notes (body) VALUES (?)", ["y"]);
    return done.rowsAffected === 1;
  });
  const flag: boolean = added;
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
  return [...notes.map((n) => n.body), one?.body ?? "", String(row.x), String(results.length), ...columns, String(bad), code, String(flag)];
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

// ---- the React and Vue apps, as users write them ----

/** The frameworks' shared page: a live list, a form that adds to it, the status. */
const FRAMEWORK_HTML = (src) => `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>erth-sync framework test</title><link rel="icon" href="data:,"></head>
<body><div id="root"></div><script type="module" src="${src}"></script></body>
</html>
`;

/** The open options both apps use: their own table, and sync after writes and every 300 ms. */
const OPEN_TS = (table) => `const params = new URLSearchParams(location.search);
const schema: Schema = { tables: { ${table}: { columns: { title: { type: "text", notNull: true } } } } };
export const db = await ErthDb.open({
  name: params.get("name") ?? "${table}",
  url: params.get("url") ?? "",
  schema,
  autoSync: { debounceMs: 0, intervalMs: 300 },
});
`;

const REACT_TSX = `import { StrictMode, Suspense, useState, type FormEvent } from "react";
import { createRoot } from "react-dom/client";
import { ErthDb, type Schema } from "erth-sync";
import { ErthProvider, useErth, useQuery, useStatus, useSuspenseQuery } from "erth-sync/react";

interface Item { id: string; title: string }
declare global { interface Window { renders: Item[][] } }
window.renders = [];

${OPEN_TS("react_items")}
function Items() {
  const { data, isLoading, error } = useQuery<Item>("SELECT id, title FROM react_items ORDER BY title");
  window.renders.push(data);
  if (error) return <p id="error">{error.code}: {error.message}</p>;
  if (isLoading) return <p id="loading">loading</p>;
  return <ul id="items">{data.map((item) => <li key={item.id}>{item.title}</li>)}</ul>;
}

function Count() {
  const [{ n }] = useSuspenseQuery<{ n: number }>("SELECT count(*) AS n FROM react_items WHERE title GLOB ?", ["*"]);
  return <p id="count">{n} items</p>;
}

function Status() {
  const status = useStatus();
  return <p id="pending">{status === null ? "…" : \`\${status.pendingChanges} pending\`}</p>;
}

function Add() {
  const db = useErth();
  const [title, setTitle] = useState("");
  const add = async (e: FormEvent) => {
    e.preventDefault();
    await db.execute("INSERT INTO react_items (title) VALUES (?)", [title]);
    setTitle("");
  };
  return (
    <form onSubmit={add}>
      <input id="title" value={title} onChange={(e) => setTitle(e.target.value)} />
      <button id="add">Add</button>
    </form>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ErthProvider db={db}>
      <Add />
      <Items />
      <Suspense fallback={<p id="count">counting</p>}><Count /></Suspense>
      <Status />
    </ErthProvider>
  </StrictMode>,
);
`;

const VUE_TS = `import { createApp, defineComponent, h, ref } from "vue";
import { ErthDb, type Schema } from "erth-sync";
import { createErth, useErth, useQuery, useStatus } from "erth-sync/vue";

interface Item { id: string; title: string }
declare global { interface Window { renders: Item[][] } }
window.renders = [];

${OPEN_TS("vue_items")}
const App = defineComponent({
  setup() {
    const db = useErth();
    const pattern = ref("*");
    const { data, isLoading, error } = useQuery<Item>("SELECT id, title FROM vue_items WHERE title GLOB ? ORDER BY title", () => [pattern.value]);
    const status = useStatus();
    const title = ref("");
    const add = async (e: Event) => {
      e.preventDefault();
      await db.execute("INSERT INTO vue_items (title) VALUES (?)", [title.value]);
      title.value = "";
    };
    return () => {
      window.renders.push(data.value);
      return h("div", [
        h("form", { onSubmit: add }, [
          h("input", { id: "title", value: title.value, onInput: (e: Event) => (title.value = (e.target as HTMLInputElement).value) }),
          h("button", { id: "add" }, "Add"),
        ]),
        error.value
          ? h("p", { id: "error" }, \`\${error.value.code}: \${error.value.message}\`)
          : isLoading.value
            ? h("p", { id: "loading" }, "loading")
            : h("ul", { id: "items" }, data.value.map((item) => h("li", { key: item.id }, item.title))),
        h("p", { id: "pending" }, status.value === null ? "…" : \`\${status.value.pendingChanges} pending\`),
      ]);
    };
  },
});

createApp(App).use(createErth(db)).mount("#root");
`;

/** Per framework: its source file, and what tsc needs beyond strict mode. */
const FRAMEWORK_APPS = {
  react: { main: "main.tsx", source: REACT_TSX, compilerOptions: { jsx: "react-jsx" } },
  vue: { main: "main.ts", source: VUE_TS, compilerOptions: {} },
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

step("React and Vue apps: tsc --strict against the packed erth-sync/react and erth-sync/vue, then vite build", async () => {
  // The frameworks (peer dependencies) as the app's own dependencies.
  for (const entry of await readdir(FRAMEWORKS)) {
    if (entry.startsWith(".")) continue;
    const scoped = entry.startsWith("@") ? (await readdir(join(FRAMEWORKS, entry))).map((e) => join(entry, e)) : [entry];
    for (const name of scoped) {
      await mkdir(join(APP, "node_modules", name, ".."), { recursive: true });
      await symlink(join(FRAMEWORKS, name), join(APP, "node_modules", name)).catch((e) => {
        if (e.code !== "EEXIST") throw e;
      });
    }
  }
  for (const [name, { main, source, compilerOptions }] of Object.entries(FRAMEWORK_APPS)) {
    const dir = join(APP, name);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, main), source);
    await writeFile(join(dir, "index.html"), FRAMEWORK_HTML(`./${main}`));
    await writeFile(join(dir, "vite.config.js"), VITE_CONFIG);
    const tsconfig = { compilerOptions: { ...TSCONFIG.compilerOptions, ...compilerOptions }, files: [main] };
    await writeFile(join(dir, "tsconfig.json"), JSON.stringify(tsconfig));
    run(join(BUNDLERS, ".bin", "tsc"), ["-p", "tsconfig.json"], dir);
    run("node", [join(BUNDLERS, "vite", "bin", "vite.js"), "build", "--logLevel", "warn", "--outDir", join(DIST, name)], dir);
    const assets = await readdir(join(DIST, name, "assets"));
    assert.ok(assets.some((f) => f.endsWith(".wasm")), `${name} emitted the .wasm: ${assets.join(", ")}`);
  }
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

/** The list items `page` shows. */
const shown = (page) => page.$$eval("#items li", (items) => items.map((li) => li.textContent));

/** Adds `title` through the app's form, as a user does. */
async function addThroughForm(page, title) {
  await page.fill("#title", title);
  await page.click("#add");
}

async function waitForItems(page, expected, what) {
  const want = JSON.stringify(expected);
  await page.waitForFunction((want) => JSON.stringify([...document.querySelectorAll("#items li")].map((li) => li.textContent)) === want, want, { timeout: 20_000 }).catch(async () => {
    throw new Error(`${what}: the list shows ${JSON.stringify(await shown(page))}, not ${want}`);
  });
}

for (const framework of Object.keys(FRAMEWORK_APPS)) {
  step(`${framework}: a live list follows local writes and a second browser profile's synced writes; unchanged rows keep their identity`, async () => {
    const other = await chromium.launchPersistentContext(join(WORK, `profile-${framework}-2`), {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
    });
    other.on("page", (page) => page.on("console", (m) => m.type() === "error" && consoleErrors.push(`${framework} 2: ${m.text()}`)));
    try {
      const url = `${ORIGIN}/${framework}/?${new URLSearchParams({ name: `${framework}-live`, url: SERVER })}`;
      const page = context.pages()[0] ?? (await context.newPage());
      await page.goto(url);
      await waitForItems(page, [], "at start");
      await addThroughForm(page, "a: written here");
      await waitForItems(page, ["a: written here"], "after a local write");
      if (framework === "react") await page.waitForFunction(() => document.querySelector("#count")?.textContent === "1 items");
      await page.waitForFunction(() => document.querySelector("#pending")?.textContent === "0 pending", null, { timeout: 20_000 });

      const device = other.pages()[0] ?? (await other.newPage());
      await device.goto(url);
      await waitForItems(device, ["a: written here"], "the second profile, after its first sync");
      await addThroughForm(device, "b: from the other device");
      await waitForItems(device, ["a: written here", "b: from the other device"], "the second profile, after its write");
      await waitForItems(page, ["a: written here", "b: from the other device"], "after the other device's write synced");
      if (framework === "react") await page.waitForFunction(() => document.querySelector("#count")?.textContent === "2 items");

      // The row that did not change is the same object in the render before and after.
      const identity = await page.evaluate(() => {
        const withA = window.renders.filter((rows) => rows.some((r) => r.title.startsWith("a:")));
        const before = withA.findLast((rows) => rows.length === 1);
        const after = withA.at(-1);
        return { found: Boolean(before && after && after.length === 2), same: before?.[0] === after?.find((r) => r.title.startsWith("a:")) };
      });
      assert.deepEqual(identity, { found: true, same: true });
    } finally {
      await other.close();
    }
  });
}

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
