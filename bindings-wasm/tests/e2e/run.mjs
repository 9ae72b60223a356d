// End-to-end tests of the BUILT npm package (bindings-wasm/pkg) in Debian's
// Chromium, driven by playwright-core with persistent profiles (one profile
// = one device). Run by `cargo xtask test wasm`, which builds the package,
// starts a fresh `tursodb --sync-server`, builds the `erth` CLI and passes:
//
//   ERTH_PKG_DIR          the built package
//   ERTH_TEST_HRANA_URL   the tursodb server
//   ERTH_CLI              the native `erth` binary (a third replica)
//   ERTH_NODE_MODULES     node_modules holding playwright-core
//   ERTH_CHROMIUM         the Chromium binary
//   ERTH_E2E_WORK         an empty scratch directory (profiles, CLI replica)
//
// This script serves the test page and the package on 127.0.0.1 (a secure
// context, so OPFS works), plus fault endpoints that answer like a broken
// server. It prints one line per test and `e2e: N passed, M failed`.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile, readdir, readlink } from "node:fs/promises";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e: ${name} is not set: run this through \`cargo xtask test wasm\``);
    process.exit(2);
  }
  return value;
}

const PKG_DIR = resolve(env("ERTH_PKG_DIR"));
const SERVER = env("ERTH_TEST_HRANA_URL").replace(/\/$/, "");
const CLI = env("ERTH_CLI");
const CHROMIUM = env("ERTH_CHROMIUM");
const WORK = env("ERTH_E2E_WORK");
const { chromium } = createRequire(join(env("ERTH_NODE_MODULES"), "noop.js"))("playwright-core");
const PAGE_HTML = join(fileURLToPath(new URL(".", import.meta.url)), "page.html");

// Chromium flags that work on these machines (see TOOLCHAIN.md).
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const TOKEN = "s3cret-e2e-token";

// ---- the page server: test page, built package, fault endpoints ----

const MIME = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".wasm": "application/wasm",
  ".json": "application/json",
  ".ts": "text/plain; charset=utf-8",
  ".md": "text/markdown; charset=utf-8",
};
/** Requests seen per fault endpoint. */
const faultHits = new Map();

async function serveFile(res, file) {
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": MIME[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(body);
  } catch {
    res.writeHead(404).end("not found");
  }
}

const pageServer = createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  const fault = /^\/fault\/([a-z0-9]+)\/v2\/pipeline$/.exec(path);
  if (fault) {
    const kind = fault[1];
    faultHits.set(kind, (faultHits.get(kind) ?? 0) + 1);
    req.resume();
    if (kind === "garbage") res.writeHead(200, { "content-type": "application/json" }).end('{"baton": nu');
    else if (kind === "status500") res.writeHead(500, { "content-type": "text/plain" }).end("internal error");
    else if (kind === "unauthorized") res.writeHead(401, { "content-type": "text/plain" }).end("bad token");
    else if (kind === "stall") {
      // Never answers: the client's timeout must fire. Closed at shutdown.
    } else res.writeHead(404).end();
    return;
  }
  if (path === "/" || path === "/index.html") return serveFile(res, PAGE_HTML);
  if (path === "/favicon.ico") return res.writeHead(204).end();
  if (path.startsWith("/pkg/")) {
    const file = normalize(join(PKG_DIR, decodeURIComponent(path.slice("/pkg/".length))));
    if (!file.startsWith(PKG_DIR + sep)) return res.writeHead(403).end();
    return serveFile(res, file);
  }
  res.writeHead(404).end("not found");
});
await new Promise((ok) => pageServer.listen(0, "127.0.0.1", ok));
const ORIGIN = `http://127.0.0.1:${pageServer.address().port}`;

// ---- browsers ----

/** Console errors of every page and worker: no panic may ever show up. */
const consoleErrors = [];

async function launch(profile) {
  const context = await chromium.launchPersistentContext(join(WORK, profile), {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
  });
  context.on("page", watch);
  context.pages().forEach(watch);
  return context;
}

function watch(page) {
  // The engine runs in a dedicated Worker, so its panics are logged on the
  // worker's console: listen there. (Playwright also repeats a worker's
  // messages on the page, marked with `msg.worker()`: counted once.)
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.worker?.()) consoleErrors.push(msg.text());
  });
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  const watchWorker = (worker) =>
    worker.on("console", (msg) => {
      if (msg.type() === "error") consoleErrors.push(`worker: ${msg.text()}`);
    });
  page.on("worker", watchWorker);
  page.workers().forEach(watchWorker);
}

/** Logged on a worker's console by a test, to prove the watch sees it. */
const WORKER_PROBE = "erth-e2e: worker console probe";

/** A page of `context` (its first one unless `fresh`) with the package loaded. */
async function openPage(context, fresh = false) {
  const page = fresh || context.pages().length === 0 ? await context.newPage() : context.pages()[0];
  await page.goto(ORIGIN + "/");
  await page.waitForFunction(() => window.erthReady === true);
  return page;
}

/** The browser process of `profile`, found by its --user-data-dir. */
async function browserPid(profile) {
  const wanted = `--user-data-dir=${join(WORK, profile)}`;
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      const exe = await readlink(`/proc/${entry}/exe`);
      if (cmdline.includes(wanted) && !cmdline.some((a) => a.startsWith("--type=")) && exe.includes("chromium")) {
        return Number(entry);
      }
    } catch {
      // The process ended while we looked.
    }
  }
  throw new Error(`no browser process for profile ${profile}`);
}

// ---- helpers run in the page ----

const state = (page) =>
  page.evaluate(async () => ({ list: await erth.db.todos.listActive(), status: await erth.db.status() }));
const slim = (list) => list.map(({ id, title, completed }) => ({ id, title, completed }));

async function until(what, check, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function cli(db, ...args) {
  const out = execFileSync(CLI, ["--db", join(WORK, db), "--remote", SERVER, "--json", ...args], {
    encoding: "utf8",
    env: { ...process.env, ERTH_AUTH_TOKEN: "" },
  });
  return JSON.parse(out);
}

// ---- tests ----

const tests = [];
const test = (name, fn) => tests.push({ name, fn });

test("the engine Worker's console is watched", async () => {
  const ctx = await launch("console");
  try {
    const page = await openPage(ctx);
    await page.evaluate(() => erth.open({ name: "console", storage: "memory" }));
    const worker = await until("the engine's worker", async () => page.workers()[0]);
    await worker.evaluate((text) => console.error(text), WORKER_PROBE);
    await until("the probe, heard through the worker's console", async () =>
      consoleErrors.includes(`worker: ${WORKER_PROBE}`),
    );
  } finally {
    await ctx.close();
  }
});

test("typed errors, CRUD and events through the package's main-thread API", async () => {
  const ctx = await launch("api");
  try {
    const page = await openPage(ctx);
    const out = await page.evaluate(async () => {
      const { ErthDb } = erth;
      const f = erth.failure;
      const errors = {
        noOptions: await f(() => ErthDb.open()),
        badName: await f(() => ErthDb.open({ name: "../etc" })),
        badUrl: await f(() => ErthDb.open({ name: "api-bad-url", url: "ftp://x" })),
        badAutoSync: await f(() => ErthDb.open({ name: "api-bad-auto", autoSync: { intervalMs: -5 } })),
      };
      await erth.open({ name: "api" });
      const db = erth.db;
      const a = await db.todos.add("first");
      const b = await db.todos.add("second");
      await db.todos.rename(a.id, "first, renamed");
      await db.todos.setCompleted(b.id, true);
      const deleted = await db.todos.delete(b.id);
      Object.assign(errors, {
        wrongType: await f(() => db.todos.add(42)),
        notFound: await f(() => db.todos.get(b.id)),
        badId: await f(() => db.todos.get("not-an-id")),
        noRemote: await f(() => db.sync()),
        insecure: await f(() => db.setRemote("http://db.example.com")),
        badOnline: await f(() => db.setOnline("yes")),
      });
      await new Promise((r) => setTimeout(r, 50));
      const list = await db.todos.listActive();
      const status = await db.status();
      await db.close();
      await db.close();
      errors.closed = await f(() => db.todos.listActive());
      return { errors, list, status, deleted, events: erth.events, ids: [a.id, b.id] };
    });
    const { errors } = out;
    for (const [what, code] of Object.entries({
      noOptions: "InvalidInput",
      badName: "InvalidInput",
      badUrl: "InvalidInput",
      badAutoSync: "InvalidInput",
      badOnline: "InvalidInput",
      wrongType: "InvalidInput",
      notFound: "NotFound",
      badId: "InvalidInput",
      noRemote: "NoRemote",
      insecure: "InvalidInput",
      closed: "InvalidInput",
    })) {
      assert.ok(errors[what], `${what} should have failed`);
      assert.equal(errors[what].code, code, `${what}: ${JSON.stringify(errors[what])}`);
      assert.equal(errors[what].isErthError, true, what);
      assert.equal(errors[what].name, "ErthError", what);
    }
    assert.equal(out.deleted, true);
    assert.deepEqual(slim(out.list), [{ id: out.ids[0], title: "first, renamed", completed: false }]);
    assert.equal(out.status.pendingChanges, 2);
    assert.equal(out.status.online, true);
    assert.equal(out.status.autoSync, false);
    const changes = out.events.filter((e) => e.type === "change");
    assert.equal(changes.length, 5, JSON.stringify(changes));
    assert.ok(changes.every((e) => e.table === "todos" && e.origin === "local"));
    const statuses = out.events.filter((e) => e.type === "status");
    assert.ok(statuses.length >= 1, "status events after writes");
    assert.equal(statuses.at(-1).status.pendingChanges, 2);
  } finally {
    await ctx.close();
  }
});

test("data and pending changes survive a reload, a browser restart and a browser crash", async () => {
  const profile = "persist";
  let ctx = await launch(profile);
  let page = await openPage(ctx);
  await page.evaluate(async () => {
    await erth.open({ name: "persist" });
    const db = erth.db;
    await db.todos.add("one");
    const two = await db.todos.add("two");
    const three = await db.todos.add("three");
    await db.todos.setCompleted(two.id, true);
    await db.todos.delete(three.id);
  });
  const before = await state(page);
  assert.equal(before.list.length, 2);
  assert.equal(before.status.pendingChanges, 3);

  // Reload: the old page's worker still holds the database for a moment;
  // the new one waits for its lock.
  await page.reload();
  await page.waitForFunction(() => window.erthReady === true);
  await page.evaluate(() => erth.open({ name: "persist" }));
  const afterReload = await state(page);
  assert.deepEqual(afterReload.list, before.list);
  assert.equal(afterReload.status.pendingChanges, 3);

  // Graceful restart of the browser.
  await ctx.close();
  ctx = await launch(profile);
  page = await openPage(ctx);
  await page.evaluate(() => erth.open({ name: "persist" }));
  const afterRestart = await state(page);
  assert.deepEqual(afterRestart.list, before.list);
  assert.equal(afterRestart.status.pendingChanges, 3);

  // A write, then the browser is killed (SIGKILL): a committed write stays.
  const added = await page.evaluate(async () => (await erth.db.todos.add("written just before the crash")).id);
  process.kill(await browserPid(profile), "SIGKILL");
  await ctx.close().catch(() => {});
  ctx = await launch(profile);
  page = await openPage(ctx);
  await page.evaluate(() => erth.open({ name: "persist" }));
  const afterCrash = await state(page);
  assert.equal(afterCrash.list[0].id, added);
  assert.deepEqual(afterCrash.list.slice(1), before.list);
  assert.equal(afterCrash.status.pendingChanges, 4);
  await ctx.close();
});

test("a second tab gets DatabaseLocked, then the database once the first tab closes it", async () => {
  const ctx = await launch("tabs");
  try {
    const first = await openPage(ctx);
    await first.evaluate(async () => {
      await erth.open({ name: "shared" });
      await erth.db.todos.add("from tab 1");
    });
    const second = await openPage(ctx, true);
    const locked = await second.evaluate(() =>
      erth.failure(() => erth.open({ name: "shared", lockTimeoutMs: 300 })),
    );
    assert.equal(locked?.code, "DatabaseLocked", JSON.stringify(locked));
    assert.equal(locked.isErthError, true);
    // The first tab is untouched.
    assert.equal((await state(first)).list.length, 1);
    await first.evaluate(() => erth.db.close());
    await second.evaluate(() => erth.open({ name: "shared" }));
    const seen = await state(second);
    assert.deepEqual(seen.list.map((t) => t.title), ["from tab 1"]);
  } finally {
    await ctx.close();
  }
});

test("two devices edit offline, sync through tursodb and converge; a native CLI replica agrees", async () => {
  const devA = await launch("device-a");
  let devB = await launch("device-b");
  try {
    const a = await openPage(devA);
    let b = await openPage(devB);
    const url = SERVER;
    await a.evaluate((url) => erth.open({ name: "todos", url }), url);
    await b.evaluate((url) => erth.open({ name: "todos", url }), url);

    const ids = await a.evaluate(async () => {
      const db = erth.db;
      const out = [];
      for (const title of ["todo 1", "todo 2", "todo 3"]) out.push((await db.todos.add(title)).id);
      return out;
    });
    const pushed = await a.evaluate(() => erth.db.sync());
    assert.equal(pushed.pushed, 3);
    // Only this test's rows are compared: ERTH_TEST_HRANA_URL may name a
    // server that already holds rows.
    const mine = (list) => slim(list).filter((t) => ids.includes(t.id));
    const pulled = await b.evaluate(() => erth.db.sync());
    assert.ok(pulled.pulled >= 3, `pulled ${pulled.pulled}`);
    assert.deepEqual(mine((await state(b)).list), mine((await state(a)).list));
    assert.equal(mine((await state(b)).list).length, 3);

    // Both go offline and edit.
    await a.evaluate(() => erth.db.setOnline(false));
    await b.evaluate(() => erth.db.setOnline(false));
    await a.evaluate(async ([t1, t2, t3]) => {
      await erth.db.todos.rename(t1, "todo 1 renamed on A");
      await erth.db.todos.setCompleted(t2, true);
      await erth.db.todos.delete(t3);
    }, ids);
    await b.evaluate(async ([t1, , t3]) => {
      await erth.db.todos.setCompleted(t1, true);
      await erth.db.todos.rename(t3, "todo 3 renamed on B");
    }, ids);
    const offline = await a.evaluate(() => erth.failure(() => erth.db.sync()));
    assert.equal(offline?.code, "Network");
    const aOffline = await state(a);
    assert.equal(aOffline.status.online, false);
    assert.equal(aOffline.status.pendingChanges, 3);

    // Back online: sync in both orders until quiet.
    await a.evaluate(() => erth.db.setOnline(true));
    await b.evaluate(() => erth.db.setOnline(true));
    await b.evaluate(() => erth.db.sync());
    await a.evaluate(() => erth.db.sync());
    await b.evaluate(() => erth.db.sync());
    const finalA = await state(a);
    const finalB = await state(b);
    const expected = [
      { id: ids[1], title: "todo 2", completed: true },
      { id: ids[0], title: "todo 1 renamed on A", completed: true },
    ];
    assert.deepEqual(mine(finalA.list), expected);
    assert.deepEqual(mine(finalB.list), expected);
    assert.deepEqual(slim(finalA.list), slim(finalB.list));
    for (const s of [finalA.status, finalB.status]) {
      assert.equal(s.pendingChanges, 0);
      assert.equal(s.lastError, null);
      assert.equal(s.remoteUrl, SERVER);
    }
    const remoteEvents = await b.evaluate(() => erth.events.filter((e) => e.type === "change" && e.origin === "remote"));
    assert.ok(remoteEvents.length > 0, "B saw pulled rows as remote change events");

    // A native replica through the CLI sees the same rows.
    cli("cli.db", "sync");
    const fromCli = cli("cli.db", "list").map((t) => ({ id: t.id, title: t.title, completed: t.is_completed }));
    assert.deepEqual(mine(fromCli), expected);
    assert.deepEqual(fromCli, slim(finalA.list));

    // B restarts its browser: same state, nothing pending.
    await devB.close();
    devB = await launch("device-b");
    b = await openPage(devB);
    await b.evaluate((url) => erth.open({ name: "todos", url }), url);
    const restarted = await state(b);
    assert.deepEqual(slim(restarted.list), slim(finalB.list));
    assert.equal(restarted.status.pendingChanges, 0);
  } finally {
    await devA.close();
    await devB.close();
  }
});

test("auto-sync: after local writes, on an interval, and when the browser comes back online", async () => {
  const devA = await launch("auto-a");
  const devB = await launch("auto-b");
  try {
    const a = await openPage(devA);
    const b = await openPage(devB);
    const options = { name: "auto", url: SERVER, autoSync: { debounceMs: 50, intervalMs: 60000 } };
    await a.evaluate((o) => erth.open(o), options);
    await b.evaluate((o) => erth.open({ ...o, autoSync: { debounceMs: 50, intervalMs: 300 } }), options);

    // A write on A is pushed by the debounced sync, and B's interval pulls it.
    const id = await a.evaluate(async () => (await erth.db.todos.add("auto-synced")).id);
    await until("A's debounced push", async () => (await state(a)).status.pendingChanges === 0);
    await until("B's interval pull", () =>
      b.evaluate((id) => erth.events.some((e) => e.type === "change" && e.origin === "remote" && e.ids.includes(id)), id),
    );
    const sawSyncing = await a.evaluate(() => erth.events.some((e) => e.type === "status" && e.status.syncing));
    assert.ok(sawSyncing, "status events report a running sync");

    // The browser goes offline: writes wait; back online, they sync at once.
    await devA.setOffline(true);
    await until("A to see the browser offline", async () => (await state(a)).status.online === false);
    const offlineId = await a.evaluate(async () => (await erth.db.todos.add("written offline")).id);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await state(a)).status.pendingChanges, 1, "no sync while the browser is offline");
    await devA.setOffline(false);
    await until("A's sync on the online event", async () => (await state(a)).status.pendingChanges === 0);
    await until("B to pull the offline write", async () =>
      (await state(b)).list.some((t) => t.id === offlineId),
    );
    assert.ok((await state(b)).list.some((t) => t.id === id));
  } finally {
    await devA.close();
    await devB.close();
  }
});

test("bad server responses and network failures give typed errors and lose nothing", async () => {
  const ctx = await launch("faults");
  const closed = createServer();
  await new Promise((ok) => closed.listen(0, "127.0.0.1", ok));
  const closedUrl = `http://127.0.0.1:${closed.address().port}`;
  await new Promise((ok) => closed.close(ok));
  try {
    const page = await openPage(ctx);
    const out = await page.evaluate(
      async ({ origin, closedUrl, token }) => {
        await erth.open({ name: "faults", requestTimeoutMs: 400 });
        const db = erth.db;
        for (const title of ["kept 1", "kept 2", "kept 3"]) await db.todos.add(title);
        const attempt = async (url) => {
          await db.setRemote(url, token);
          const error = await erth.failure(() => db.sync());
          const status = await db.status();
          return { error, status };
        };
        return {
          garbage: await attempt(`${origin}/fault/garbage`),
          status500: await attempt(`${origin}/fault/status500`),
          unauthorized: await attempt(`${origin}/fault/unauthorized`),
          stall: await attempt(`${origin}/fault/stall`),
          refused: await attempt(closedUrl),
          list: await db.todos.listActive(),
        };
      },
      { origin: ORIGIN, closedUrl, token: TOKEN },
    );
    for (const [what, code] of Object.entries({
      garbage: "Protocol",
      status500: "Server",
      unauthorized: "Auth",
      stall: "Network",
      refused: "Network",
    })) {
      const { error, status } = out[what];
      assert.ok(error, `${what} should fail`);
      assert.equal(error.code, code, `${what}: ${JSON.stringify(error)}`);
      assert.equal(error.isErthError, true);
      assert.ok(!error.message.includes(TOKEN), `${what}: the token leaked into ${error.message}`);
      assert.ok(!JSON.stringify(status).includes(TOKEN), `${what}: the token leaked into the status`);
      assert.equal(status.pendingChanges, 3, `${what}: pending changes kept`);
      assert.equal(status.lastErrorCode, code, what);
    }
    assert.match(out.stall.error.message, /timed out/);
    for (const kind of ["garbage", "status500", "unauthorized", "stall"]) {
      assert.ok(faultHits.get(kind) > 0, `the ${kind} endpoint was used`);
    }
    assert.equal(out.list.length, 3);

    // Nothing was lost: the real server gets all three rows.
    const report = await page.evaluate((url) => erth.db.setRemote(url).then(() => erth.db.sync()), SERVER);
    assert.equal(report.pushed, 3);
    const after = await state(page);
    assert.equal(after.status.pendingChanges, 0);
    assert.equal(after.status.lastErrorCode, null);
    cli("cli-faults.db", "sync");
    const fromCli = cli("cli-faults.db", "list").map((t) => t.title);
    for (const title of ["kept 1", "kept 2", "kept 3"]) assert.ok(fromCli.includes(title), title);
  } finally {
    await ctx.close();
  }
});

// ---- run ----

let passed = 0;
let failed = 0;
for (const { name, fn } of tests) {
  const started = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok   ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)\n     ${String(e?.stack ?? e).replaceAll("\n", "\n     ")}`);
  }
}
const seen = consoleErrors.filter((text) => !text.includes(WORKER_PROBE));
const panics = seen.filter((text) => text.includes("internal error"));
if (panics.length > 0) {
  failed++;
  console.log(`FAIL no panic reached a page's or worker's console\n     ${panics.join("\n     ")}`);
} else {
  passed++;
  console.log(`ok   no panic reached a page's or worker's console (${seen.length} other console errors)`);
  for (const text of seen) console.log(`     console: ${text.slice(0, 160)}`);
}
pageServer.closeAllConnections();
pageServer.close();
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
