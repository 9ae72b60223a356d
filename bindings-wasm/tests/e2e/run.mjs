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
import { readFile, readdir, readlink, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { cliRunner, env, FLAGS, playwrightChromium, runTests, serveFile, until } from "./harness.mjs";

const PKG_DIR = resolve(env("ERTH_PKG_DIR"));
const SERVER = env("ERTH_TEST_HRANA_URL").replace(/\/$/, "");
const CLI = env("ERTH_CLI");
const CHROMIUM = env("ERTH_CHROMIUM");
const WORK = env("ERTH_E2E_WORK");
const chromium = playwrightChromium();
const PAGE_HTML = join(fileURLToPath(new URL(".", import.meta.url)), "page.html");

const TOKEN = "s3cret-e2e-token";

// ---- the page server: test page, built package, fault endpoints ----

/** Requests seen per fault endpoint. */
const faultHits = new Map();
/** Requests that reached `/recorder/...`, the target of `/redirect/<status>/...` (none may). */
const recorded = [];
/** Requests passed to tursodb per counting-proxy tag (`/proxy/<tag>/...`). */
const proxyHits = new Map();
/** The `Authorization` header of the last request per counting-proxy tag (null: none). */
const proxyAuth = new Map();

/** Forwards `req` to tursodb (a counting proxy, to see how many sync loops run). */
async function proxy(req, res, tag, rest) {
  proxyHits.set(tag, (proxyHits.get(tag) ?? 0) + 1);
  proxyAuth.set(tag, req.headers.authorization ?? null);
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  try {
    const headers = {};
    for (const name of ["content-type", "authorization"]) {
      if (req.headers[name]) headers[name] = req.headers[name];
    }
    const answer = await fetch(SERVER + rest, {
      method: req.method,
      headers,
      body: req.method === "POST" ? Buffer.concat(chunks) : undefined,
    });
    const body = Buffer.from(await answer.arrayBuffer());
    res.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "application/json" }).end(body);
  } catch (e) {
    res.writeHead(502, { "content-type": "text/plain" }).end(`proxy: ${e.message}`);
  }
}

const pageServer = createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  const proxied = /^\/proxy\/([a-z0-9-]+)(\/.*)$/.exec(path);
  if (proxied) {
    proxy(req, res, proxied[1], proxied[2]);
    return;
  }
  // A server that redirects every request to the recorder, on this origin
  // (so the browser would keep the Authorization header when following).
  const redirect = /^\/redirect\/(30[1278])(\/.*)$/.exec(path);
  if (redirect) {
    req.resume();
    res.writeHead(Number(redirect[1]), { location: `/recorder${redirect[2]}` }).end();
    return;
  }
  if (path.startsWith("/recorder/")) {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      recorded.push({
        method: req.method,
        path,
        authorization: req.headers.authorization ?? null,
        encryptionKey: req.headers["x-turso-encryption-key"] ?? null,
        bodyBytes: Buffer.concat(chunks).length,
      });
      res.writeHead(500, { "content-type": "text/plain" }).end("the recorder answers nothing useful");
    });
    return;
  }
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
  // The package, and two broken copies: one without its worker, one without its .wasm.
  const pkg = /^\/(pkg|pkg-noworker|pkg-nowasm)\/(.*)$/.exec(path);
  if (pkg) {
    const [, variant, rest] = pkg;
    const file = normalize(join(PKG_DIR, decodeURIComponent(rest)));
    if (!file.startsWith(PKG_DIR + sep)) return res.writeHead(403).end();
    if (variant === "pkg-noworker" && rest === "worker.js") return res.writeHead(404).end("not found");
    if (variant === "pkg-nowasm" && rest.endsWith(".wasm")) return res.writeHead(404).end("not found");
    return serveFile(res, file);
  }
  res.writeHead(404).end("not found");
});
await new Promise((ok) => pageServer.listen(0, "127.0.0.1", ok));
const ORIGIN = `http://127.0.0.1:${pageServer.address().port}`;

// ---- browsers ----

/** Console errors of every page and worker: no panic may ever show up. */
const consoleErrors = [];

async function launch(profile, extraArgs = []) {
  const context = await chromium.launchPersistentContext(join(WORK, profile), {
    executablePath: CHROMIUM,
    headless: true,
    args: [...FLAGS, ...extraArgs],
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

const cli = cliRunner(CLI, WORK, SERVER);

/** The CLI with a schema file: `erth --db DB --schema FILE --remote SERVER --json ...args`. */
function cliWith(schemaFile, db, ...args) {
  return cli(db, "--schema", schemaFile, ...args);
}

async function schemaFile(name, schema) {
  const file = join(WORK, `${name}.schema.json`);
  await writeFile(file, JSON.stringify(schema));
  return file;
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

/** A custom table beside the built-in todos, for the tab tests. */
const TABS_SCHEMA = {
  tables: {
    todos: {
      columns: {
        title: { type: "text", notNull: true },
        is_completed: { type: "integer", notNull: true, default: 0 },
      },
    },
    notes: { columns: { body: { type: "text" } } },
  },
};

/** Opens database `name` in every page (in order), with `options`. */
async function openAll(pages, name, options = {}) {
  for (const page of pages) {
    await page.evaluate(
      ([name, options, schema]) => erth.open({ name, schema, ...options }),
      [name, options, TABS_SCHEMA],
    );
  }
}

/** Todo titles and note bodies as a tab sees them, plus the integrity check. */
const contents = (page) =>
  page.evaluate(async () => ({
    titles: (await erth.db.getAll("SELECT title FROM todos ORDER BY title")).map((r) => r.title),
    notes: (await erth.db.getAll("SELECT body FROM notes ORDER BY body")).map((r) => r.body),
    integrity: (await erth.db.getAll("PRAGMA integrity_check")).map((r) => Object.values(r)[0]),
  }));

/**
 * Checks the outcome of `writeMany` runs against what a tab sees: every
 * acknowledged write is there exactly once, an interrupted todo at most
 * once, nothing else; no write failed otherwise.
 */
function checkWrites(runs, seen) {
  const errors = runs.flatMap((r) => r.errors);
  assert.deepEqual(errors, [], "no write failed except with Interrupted");
  const count = (list) => list.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map());
  const titles = count(seen.titles);
  for (const title of runs.flatMap((r) => r.todos)) assert.equal(titles.get(title), 1, `todo ${title} once`);
  for (const title of runs.flatMap((r) => r.todosInterrupted)) {
    assert.ok((titles.get(title) ?? 0) <= 1, `interrupted todo ${title} at most once`);
  }
  const known = new Set(runs.flatMap((r) => [...r.todos, ...r.todosInterrupted]));
  for (const title of titles.keys()) assert.ok(known.has(title), `no unexpected todo ${title}`);
  const notes = count(seen.notes);
  for (const id of runs.flatMap((r) => r.notes)) assert.equal(notes.get(id), 1, `note ${id} once`);
  assert.equal(notes.size, runs.flatMap((r) => r.notes).length, "no note besides the acknowledged ones");
  assert.deepEqual(seen.integrity, ["ok"]);
}

/**
 * The todo titles and note bodies starting with `${name}:` on the server
 * (other tests write there too), read by a fresh native CLI replica.
 */
async function serverContents(name) {
  const schema = await schemaFile(name, TABS_SCHEMA);
  const db = `${name}-check`;
  const mine = JSON.stringify([`${name}:*`]);
  cliWith(schema, db, "sync");
  const sql = (s) => cliWith(schema, db, "sql", s, "--params", mine);
  const titles = sql("SELECT title FROM todos WHERE title GLOB ? ORDER BY title").map((r) => r.title);
  const notes = sql("SELECT body FROM notes WHERE body GLOB ? ORDER BY body").map((r) => r.body);
  return { titles, notes };
}

test("three tabs share one database: writes, live queries and events reach every tab; one sync loop", async () => {
  const ctx = await launch("tabs");
  try {
    const proxied = (tag) => `${ORIGIN}/proxy/${tag}`;
    const quiet = { debounceMs: 0, intervalMs: 0 };
    // One tab alone: the requests of the sync it runs on open (after a
    // first database made the server's tables, as they are for the others).
    const solo = await openPage(ctx);
    // Through the proxy too: this browser never connects to tursodb itself,
    // which serves one connection at a time, so a socket Chromium keeps
    // open there cannot stall the native CLI's checks below (seen twice:
    // the CLI's sync timed out after 30 s).
    await openAll([solo], "tabs-warmup", { url: proxied("warmup") });
    await solo.evaluate(() => erth.db.sync());
    await solo.evaluate(() => erth.db.close());
    await openAll([solo], "tabs-solo", { url: proxied("solo"), autoSync: quiet });
    await until("the solo tab's first sync", () => solo.evaluate(async () => (await erth.db.status()).lastSyncAt !== null));
    const perLoop = proxyHits.get("solo");
    assert.ok(perLoop > 0);
    await solo.evaluate(() => erth.db.close());

    const tabs = [solo, await openPage(ctx, true), await openPage(ctx, true)];
    await openAll(tabs, "tabs-shared", { url: proxied("shared"), autoSync: quiet });
    await until("the first sync", () => tabs[2].evaluate(async () => (await erth.db.status()).lastSyncAt !== null));
    for (const tab of tabs) {
      await tab.evaluate(() => {
        window.latest = null;
        window.stop = erth.db.watch("SELECT body FROM notes ORDER BY body", [], (rows) => {
          window.latest = rows.map((r) => r.body);
        });
        return window.stop.ready;
      });
    }
    // Three tabs that each ran auto-sync would have sent three times as many.
    assert.equal(proxyHits.get("shared"), perLoop, "one sync on open, from one tab");

    for (const [i, tab] of tabs.entries()) {
      await tab.evaluate(async (i) => {
        await erth.db.todos.add(`tabs-shared:todo from tab ${i}`);
        await erth.db.execute("INSERT INTO notes (body) VALUES (?)", [`tabs-shared:note from tab ${i}`]);
      }, i);
    }
    const notes = [0, 1, 2].map((i) => `tabs-shared:note from tab ${i}`);
    for (const tab of tabs) {
      const seen = await until("every note in every tab's live query", () =>
        tab.evaluate((n) => (window.latest?.length === n ? window.latest : null), notes.length),
      );
      assert.deepEqual(seen, notes);
      const titles = (await state(tab)).list.map((t) => t.title).sort();
      assert.deepEqual(titles, [0, 1, 2].map((i) => `tabs-shared:todo from tab ${i}`));
      const changes = await tab.evaluate(() => erth.events.filter((e) => e.type === "change").map((e) => e.table));
      assert.ok(changes.filter((t) => t === "notes").length >= 3, `each tab hears every change: ${changes}`);
    }
    // The owner's auto-sync pushes everything, once.
    await until("the writes on the server", async () => {
      const server = await serverContents("tabs-shared");
      return server.titles.length === 3 && server.notes.length === 3;
    });
    // A stopped live query is quiet, in every tab; the others keep running.
    await tabs[1].evaluate(() => window.stop());
    await tabs[0].evaluate(() => erth.db.execute("INSERT INTO notes (body) VALUES ('late')"));
    await until("the late note in tab 2", () => tabs[2].evaluate(() => window.latest.length === 4));
    assert.equal(await tabs[1].evaluate(() => window.latest.length), 3);
    // A tab with another schema (another app version) is told why it cannot share.
    const other = await openPage(ctx, true);
    const refused = await other.evaluate(() =>
      erth.failure(() => erth.open({ name: "tabs-shared", schema: { tables: { notes: { columns: { x: { type: "text" } } } } } })),
    );
    assert.equal(refused?.code, "DatabaseLocked", JSON.stringify(refused));
    assert.match(refused.message, /another tab has database "tabs-shared" open with a different schema/);
    // The same clash inside one tab names this tab, and says to share the handle.
    await other.evaluate(() => erth.open({ name: "tabs-clash" }));
    const same = await other.evaluate(() =>
      erth.failure(() =>
        erth.ErthDb.open({ name: "tabs-clash", schema: { tables: { notes: { columns: { x: { type: "text" } } } } } }),
      ),
    );
    assert.equal(same?.code, "DatabaseLocked", JSON.stringify(same));
    assert.match(same.message, /this tab already has database "tabs-clash" open with a different schema: share that handle/);
    // A holder of the database that never answers (a stuck tab, an erth-sync that cannot share).
    await other.evaluate(() => {
      navigator.locks.request("erth-sync-owner:tabs-stuck", () => new Promise(() => {}));
    });
    const silent = await other.evaluate(() => erth.failure(() => erth.open({ name: "tabs-stuck", lockTimeoutMs: 300 })));
    assert.equal(silent?.code, "DatabaseLocked", JSON.stringify(silent));
    assert.match(silent.message, /did not answer within 300 ms/);
  } finally {
    await ctx.close();
  }
});

test("tabs: one server per shared database (another is refused); tokens and keys never cross the channel in clear", async () => {
  const ctx = await launch("tabs-secrets");
  try {
    const proxied = (tag) => `${ORIGIN}/proxy/${tag}`;
    const secrets = {
      owner: "owner-token-e2e-1",
      inUrl: "url-token-e2e-2",
      key: "client-encryption-key-e2e-3",
      client: "client-token-e2e-4",
      remote: "remote-token-e2e-5",
      ordered: "ordered-token-e2e-6",
    };
    const [owner, client, spy] = [await openPage(ctx), await openPage(ctx, true), await openPage(ctx, true)];
    // A page of the same origin that only listens on the database's channel
    // (bytes shown as text, so a secret inside them would show too).
    await spy.evaluate(() => {
      window.heard = [];
      const text = (value) =>
        JSON.stringify(value, (_, v) => (ArrayBuffer.isView(v) ? new TextDecoder("latin1").decode(v) : v));
      new BroadcastChannel("erth-sync:secrets").onmessage = (e) => window.heard.push(text(e.data));
    });
    await openAll([owner], "secrets", { url: proxied("secrets-a"), authToken: secrets.owner });
    // The same server spelled differently (a trailing slash, a token in the URL) joins.
    await openAll([client], "secrets", {
      url: `${proxied("secrets-a")}/?authToken=${secrets.inUrl}`,
      encryptionKey: secrets.key,
    });
    const sync = (page) => page.evaluate(() => erth.db.sync());
    const lastAuth = (tag) => proxyAuth.get(tag);

    // A client tab's token and server reach the owner, which syncs with them.
    await sync(client);
    assert.equal(lastAuth("secrets-a"), `Bearer ${secrets.owner}`);
    await client.evaluate((token) => erth.db.setAuthToken(token), secrets.client);
    await sync(client);
    assert.equal(lastAuth("secrets-a"), `Bearer ${secrets.client}`);
    await client.evaluate(([url, token]) => erth.db.setRemote(url, token), [proxied("secrets-b"), secrets.remote]);
    await sync(owner);
    assert.equal(lastAuth("secrets-b"), `Bearer ${secrets.remote}`);
    for (const tab of [owner, client]) {
      assert.equal((await state(tab)).status.remoteUrl, proxied("secrets-b"));
    }
    // In order: a sync sent right after a (sealed) token runs with that token.
    await client.evaluate(async (token) => {
      const set = erth.db.setAuthToken(token);
      const synced = erth.db.sync();
      await Promise.all([set, synced]);
    }, secrets.ordered);
    assert.equal(lastAuth("secrets-b"), `Bearer ${secrets.ordered}`);

    // A tab opening the database with another server (the old one included) is refused.
    const late = await openPage(ctx, true);
    for (const url of [proxied("secrets-a"), proxied("elsewhere"), ""]) {
      const refused = await late.evaluate(
        ([url, schema]) => erth.failure(() => erth.open({ name: "secrets", url, schema })),
        [url, TABS_SCHEMA],
      );
      assert.equal(refused?.code, "DatabaseLocked", `${url}: ${JSON.stringify(refused)}`);
      assert.match(refused.message, /another server \(http:\/\/127\.0\.0\.1:\d+\/proxy\/secrets-b;/, url);
    }
    await openAll([late], "secrets", { url: proxied("secrets-b") });

    // The owner closes: the client takes over with the server and token its app set last.
    await owner.close();
    await until("the client to hold the database", async () => {
      await late.evaluate(() => erth.db.sync().catch(() => null));
      return lastAuth("secrets-b") === `Bearer ${secrets.ordered}`;
    });

    const heard = await spy.evaluate(() => window.heard);
    assert.ok(
      heard.some((m) => m.includes('"kind":"call"') && m.includes('"method":"setAuthToken"')),
      "the listening page heard the calls",
    );
    for (const [what, secret] of Object.entries(secrets)) {
      assert.ok(!heard.some((m) => m.includes(secret)), `${what}: crossed the channel in clear`);
    }
  } finally {
    await ctx.close();
  }
});

test("the owner tab closes while two others write: one takes over; nothing lost or doubled", async () => {
  const ctx = await launch("tabs-handover");
  try {
    const tabs = [await openPage(ctx), await openPage(ctx, true), await openPage(ctx, true)];
    await openAll(tabs, "handover", { url: SERVER });
    const writers = tabs.slice(1).map((tab, i) => tab.evaluate(([p, n]) => erth.writeMany(p, n), [`handover:w${i + 1}`, 5000]));
    for (const w of writers) w.catch(() => {}); // awaited below; the test may fail first
    const notes = () => tabs[1].evaluate(async () => (await erth.db.get("SELECT count(*) AS n FROM notes")).n);
    await until("some writes", async () => (await notes()) >= 20);
    await tabs[0].close();
    const before = await notes();
    await until("writes after the hand-over", async () => (await notes()) >= before + 20);
    await Promise.all(tabs.slice(1).map((tab) => tab.evaluate(() => (window.stopWriting = true))));
    const runs = await Promise.all(writers);
    const seen = await contents(tabs[1]);
    checkWrites(runs, seen);
    assert.deepEqual(await contents(tabs[2]), seen);
    await tabs[2].evaluate(() => erth.db.sync());
    const server = await serverContents("handover");
    assert.deepEqual(server.titles, seen.titles, "the server's todos");
    assert.deepEqual(server.notes, seen.notes, "the server's notes");
  } finally {
    await ctx.close();
  }
});

test("every tab reloads in turn during writes: nothing lost or doubled", async () => {
  const ctx = await launch("tabs-reload");
  try {
    const tabs = [await openPage(ctx), await openPage(ctx, true), await openPage(ctx, true)];
    await openAll(tabs, "reload", { url: SERVER });
    const runs = [];
    for (const [i, tab] of tabs.entries()) {
      const others = tabs.filter((t) => t !== tab);
      const writers = others.map((t, j) => t.evaluate(([p, n]) => erth.writeMany(p, n), [`reload:r${i}-${j}`, 5000]));
      for (const w of writers) w.catch(() => {}); // awaited below; the test may fail first
      const notes = () => others[0].evaluate(async () => (await erth.db.get("SELECT count(*) AS n FROM notes")).n);
      const start = await notes();
      await until("some writes", async () => (await notes()) >= start + 10);
      await tab.reload();
      await tab.waitForFunction(() => window.erthReady === true);
      await openAll([tab], "reload", { url: SERVER });
      const reopened = await notes();
      await until("writes after the reload", async () => (await notes()) >= reopened + 10);
      await Promise.all(others.map((t) => t.evaluate(() => (window.stopWriting = true))));
      runs.push(...(await Promise.all(writers)));
    }
    const seen = await contents(tabs[0]);
    checkWrites(runs, seen);
    for (const tab of tabs.slice(1)) assert.deepEqual(await contents(tab), seen);
    await tabs[1].evaluate(() => erth.db.sync());
    const server = await serverContents("reload");
    assert.deepEqual(server.titles, seen.titles, "the server's todos");
    assert.deepEqual(server.notes, seen.notes, "the server's notes");
  } finally {
    await ctx.close();
  }
});

/** Starts a write transaction in `page` that inserts note `body`, then waits (for `window.releaseTx`). */
async function holdTransaction(page, body) {
  await page.evaluate((body) => {
    window.txHeld = false;
    window.txOutcome = erth.db
      .writeTransaction(async (tx) => {
        await tx.execute("INSERT INTO notes (body) VALUES (?)", [body]);
        window.txHeld = true;
        await new Promise((resolve) => (window.releaseTx = resolve));
      })
      .then(
        () => "committed",
        (e) => `${e.code}: ${e.message}`,
      );
  }, body);
  await page.waitForFunction(() => window.txHeld === true);
}

const noteBodies = (page) =>
  page.evaluate(async () => (await erth.db.getAll("SELECT body FROM notes ORDER BY body")).map((r) => r.body));

test("write transactions read and write across tabs: nothing slips between; an error rolls everything back", async () => {
  const ctx = await launch("wtx");
  try {
    const tabs = [await openPage(ctx), await openPage(ctx, true)];
    await openAll(tabs, "wtx");
    const id = await tabs[0].evaluate(async () => {
      const { id } = await erth.db.get("SELECT uuid7() AS id");
      await erth.db.execute("INSERT INTO notes (id, body) VALUES (?, '0')", [id]);
      return id;
    });
    // Read-modify-write from both tabs at once (the owner's and a client's):
    // every increment counts, none is lost between a read and its write.
    const increments = (page) =>
      page.evaluate(async (id) => {
        const one = () =>
          erth.db.writeTransaction(async (tx) => {
            const { body } = await tx.get("SELECT body FROM notes WHERE id = ?", [id]);
            await new Promise((resolve) => setTimeout(resolve, 2));
            await tx.execute("UPDATE notes SET body = ? WHERE id = ?", [String(Number(body) + 1), id]);
            return Number(body) + 1;
          });
        return Promise.all(Array.from({ length: 15 }, one));
      }, id);
    const [a, b] = await Promise.all(tabs.map(increments));
    assert.deepEqual([...a, ...b].sort((x, y) => x - y), Array.from({ length: 30 }, (_, i) => i + 1), "each saw a distinct value");
    const counter = () => tabs[1].evaluate(async (id) => (await erth.db.get("SELECT body FROM notes WHERE id = ?", [id])).body, id);
    assert.equal(await counter(), "30");

    // Another tab's plain write waits for an open transaction, which never sees it.
    await tabs[0].evaluate(async (id) => erth.db.execute("DELETE FROM notes WHERE id = ?", [id]), id);
    await holdTransaction(tabs[0], "wtx:held");
    await tabs[1].evaluate(() => {
      window.plainWrite = erth.db.execute("INSERT INTO notes (body) VALUES ('wtx:plain')").then(() => "done");
    });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const during = await tabs[1].evaluate(() => Promise.race([window.plainWrite, Promise.resolve("waiting")]));
    assert.equal(during, "waiting", "the other tab's write waits for the transaction");
    await tabs[0].evaluate(() => window.releaseTx());
    assert.equal(await tabs[0].evaluate(() => window.txOutcome), "committed");
    assert.equal(await tabs[1].evaluate(() => window.plainWrite), "done");
    assert.deepEqual(await noteBodies(tabs[1]), ["wtx:held", "wtx:plain"]);

    // A live query in the other tab sees a three-row transaction once, whole.
    const seen = await tabs[1].evaluate(async () => {
      const counts = [];
      const stop = erth.db.watch("SELECT count(*) AS n FROM notes", [], (rows) => counts.push(rows[0].n));
      await stop.ready;
      await erth.db.writeTransaction(async (tx) => {
        for (const body of ["wtx:1", "wtx:2", "wtx:3"]) await tx.execute("INSERT INTO notes (body) VALUES (?)", [body]);
        const own = await tx.get("SELECT count(*) AS n FROM notes");
        if (own.n !== 5) throw new Error(`the transaction reads its own writes: ${own.n}`);
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      stop();
      return counts;
    });
    assert.deepEqual(seen, [2, 5], "one delivery per commit, never a part of it");

    // The callback's error rolls everything back and is what rejects; a failed
    // statement caught inside leaves the rest; the callback's value resolves.
    const outcome = await tabs[1].evaluate(async () => {
      const thrown = await erth.db
        .writeTransaction(async (tx) => {
          await tx.execute("INSERT INTO notes (body) VALUES ('wtx:rolled-back')");
          throw new Error("app says no");
        })
        .catch((e) => ({ message: e.message, erth: e instanceof erth.ErthError }));
      let kept;
      const value = await erth.db.writeTransaction(async (tx) => {
        const bad = await erth.failure(() => tx.execute("INSERT INTO no_such_table VALUES (1)"));
        await tx.execute("INSERT INTO notes (body) VALUES ('wtx:after-a-bad-statement')");
        kept = tx;
        return bad.code;
      });
      const late = await erth.failure(() => kept.getAll("SELECT 1"));
      const notFound = await erth.failure(() => erth.db.writeTransaction((tx) => tx.get("SELECT 1 WHERE 0")));
      return { thrown, value, late: late.code, notFound: notFound.code };
    });
    assert.deepEqual(outcome, {
      thrown: { message: "app says no", erth: false },
      value: "Sql",
      late: "InvalidInput",
      notFound: "NotFound",
    });
    const bodies = await noteBodies(tabs[0]);
    assert.ok(!bodies.includes("wtx:rolled-back"), "the failed transaction left nothing");
    assert.ok(bodies.includes("wtx:after-a-bad-statement"));

    // A transaction left open makes another one fail with a typed timeout, then frees it.
    await holdTransaction(tabs[0], "wtx:held-2");
    const locked = await tabs[1].evaluate(() => erth.failure(() => erth.db.writeTransaction(() => {})));
    assert.equal(locked?.code, "DatabaseLocked", JSON.stringify(locked));
    await tabs[0].evaluate(() => window.releaseTx());
    assert.equal(await tabs[0].evaluate(() => window.txOutcome), "committed");
  } finally {
    await ctx.close();
  }
});

test("a tab that closes, or a browser killed, mid-transaction leaves nothing half-written", async () => {
  let ctx = await launch("wtx-end");
  try {
    const tabs = [await openPage(ctx), await openPage(ctx, true), await openPage(ctx, true)];
    await openAll(tabs, "wtx-end", { lockTimeoutMs: 3000 });
    // A client tab closes with its transaction open: the owner rolls it back.
    await holdTransaction(tabs[1], "end:client-half");
    await tabs[1].close();
    await tabs[0].evaluate(() => erth.db.execute("INSERT INTO notes (body) VALUES ('end:after-client')"));
    assert.deepEqual(await noteBodies(tabs[2]), ["end:after-client"]);
    // The owner tab closes with its transaction open: another tab takes over without it.
    await holdTransaction(tabs[0], "end:owner-half");
    await tabs[0].close();
    // (A read first: it is sent again to the next owner; a write sent to the
    // vanished one would be Interrupted.)
    assert.deepEqual(await noteBodies(tabs[2]), ["end:after-client"]);
    await tabs[2].evaluate(() => erth.db.execute("INSERT INTO notes (body) VALUES ('end:after-owner')"));
    assert.deepEqual(await noteBodies(tabs[2]), ["end:after-client", "end:after-owner"]);
    assert.deepEqual((await contents(tabs[2])).integrity, ["ok"]);
    // A client's transaction open at an owner that goes away: its next call is Interrupted.
    const last = await openPage(ctx, true);
    await openAll([last], "wtx-end", { lockTimeoutMs: 3000 });
    await last.evaluate(() => {
      window.clientTx = erth.db
        .writeTransaction(async (tx) => {
          await tx.execute("INSERT INTO notes (body) VALUES ('end:interrupted')");
          window.txHeld = true;
          await new Promise((resolve) => (window.releaseTx = resolve));
          await tx.execute("INSERT INTO notes (body) VALUES ('end:interrupted-2')");
        })
        .then(() => "committed", (e) => e.code);
    });
    await last.waitForFunction(() => window.txHeld === true);
    await tabs[2].close();
    await last.evaluate(() => window.releaseTx());
    assert.equal(await last.evaluate(() => window.clientTx), "Interrupted");
    assert.deepEqual(await noteBodies(last), ["end:after-client", "end:after-owner"]);

    // The browser is killed mid-transaction (a large one, so SQLite has
    // written pages of it): after a restart, only committed rows are there.
    await last.evaluate(async () => {
      window.txHeld = false;
      erth.db.writeTransaction(async (tx) => {
        const big = "x".repeat(4000);
        for (let i = 0; i < 400; i++) await tx.execute("INSERT INTO notes (body) VALUES (?)", [`end:killed-${i}-${big}`]);
        window.txHeld = true;
        await new Promise(() => {});
      });
    });
    await last.waitForFunction(() => window.txHeld === true, null, { timeout: 60000 });
    process.kill(await browserPid("wtx-end"), "SIGKILL");
    await ctx.close().catch(() => {});
    ctx = await launch("wtx-end");
    const page = await openPage(ctx);
    await openAll([page], "wtx-end");
    assert.deepEqual(await noteBodies(page), ["end:after-client", "end:after-owner"]);
    assert.deepEqual((await contents(page)).integrity, ["ok"]);
  } finally {
    await ctx.close();
  }
});

test("IndexedDB storage (the fallback without OPFS sync access handles) keeps data across a reload and a restart", async () => {
  const profile = "indexeddb";
  const open = (page) =>
    page.evaluate(async (schema) => {
      await erth.open({ name: "idb", storage: "indexeddb", schema });
      return {
        status: await erth.db.status(),
        titles: (await erth.db.todos.listActive()).map((t) => [t.title, t.completed]),
        notes: (await erth.db.getAll("SELECT body FROM notes ORDER BY body")).map((r) => r.body),
      };
    }, TABS_SCHEMA);
  let ctx = await launch(profile);
  try {
    let page = await openPage(ctx);
    const fresh = await open(page);
    assert.equal(fresh.status.storage, "indexeddb");
    assert.equal(await page.evaluate(() => erth.ErthDb.open({ name: "opfs-default" }).then((db) => db.status()).then((s) => s.storage)), "opfs");
    await page.evaluate(async () => {
      await erth.db.todos.add("one");
      const two = await erth.db.todos.add("two");
      await erth.db.todos.setCompleted(two.id, true);
      // The last write before the reload: it resolves once saved.
      await erth.db.execute("INSERT INTO notes (body) VALUES ('an app write')");
    });
    const expected = { titles: [["one", false], ["two", true]], notes: ["an app write"], pending: 3 };
    const check = (seen, what) => {
      assert.equal(seen.status.storage, "indexeddb", what);
      assert.deepEqual(seen.titles.sort(), expected.titles, what);
      assert.deepEqual(seen.notes, expected.notes, what);
      assert.equal(seen.status.pendingChanges, expected.pending, what);
    };
    await page.reload();
    await page.waitForFunction(() => window.erthReady === true);
    check(await open(page), "after a reload");
    await ctx.close();
    ctx = await launch(profile);
    page = await openPage(ctx);
    check(await open(page), "after a browser restart");
    const integrity = await page.evaluate(() => erth.db.getAll("PRAGMA integrity_check"));
    assert.deepEqual(integrity.map((r) => Object.values(r)[0]), ["ok"]);
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

test("partial sync: a subscription pulls only its rows, they leave when they stop matching, bad filters are typed", async () => {
  const ctx = await launch("partial");
  try {
    const page = await openPage(ctx);
    const tag = `p${Date.now()}`;
    const keep = cli("partial-cli.db", "add", `${tag} keep`).id;
    cli("partial-cli.db", "add", `${tag} other`);
    cli("partial-cli.db", "sync");
    await page.evaluate((url) => erth.open({ name: "partial", url }), SERVER);
    const first = await page.evaluate(async (tag) => {
      const db = erth.db;
      await db.addSubscription("mine", "todos", "title LIKE ?", [`${tag} keep%`], { ttlMs: 3_600_000 });
      await db.waitForSubscription("mine");
      return { list: await db.todos.listActive(), subs: await db.subscriptions() };
    }, tag);
    assert.deepEqual(first.list.map((t) => t.title), [`${tag} keep`]);
    assert.equal(first.subs.length, 1);
    assert.equal(first.subs[0].name, "mine");
    assert.equal(first.subs[0].table, "todos");
    assert.equal(first.subs[0].ready, true);
    assert.ok(first.subs[0].expiresAt > Date.now(), JSON.stringify(first.subs[0]));

    // The row leaves the filter on the server: evicted here, kept there.
    cli("partial-cli.db", "rename", keep, `${tag} moved`);
    cli("partial-cli.db", "sync");
    const after = await page.evaluate(async () => {
      await erth.db.sync();
      return { list: await erth.db.todos.listActive(), status: await erth.db.status() };
    });
    assert.deepEqual(after.list, []);
    assert.equal(after.status.pendingChanges, 0);
    cli("partial-cli.db", "sync");
    assert.ok(cli("partial-cli.db", "list").some((t) => t.id === keep && t.title === `${tag} moved`));

    const errors = await page.evaluate(async () => {
      const f = erth.failure;
      return {
        notOne: await f(() => erth.db.addSubscription("bad", "todos", "1); DROP TABLE todos; --")),
        count: await f(() => erth.db.addSubscription("bad", "todos", "title = ?", [])),
        engine: await f(() => erth.db.addSubscription("bad", "todos", "id IN (SELECT k FROM _erth_state)")),
        ttl: await f(() => erth.db.addSubscription("bad", "todos", "1", [], { ttlMs: -1 })),
        unknown: await f(() => erth.db.waitForSubscription("nope")),
        removed: await erth.db.removeSubscription("mine"),
        again: await erth.db.removeSubscription("mine"),
      };
    });
    for (const k of ["notOne", "count", "engine", "ttl"]) assert.equal(errors[k]?.code, "InvalidInput", `${k}: ${JSON.stringify(errors[k])}`);
    assert.equal(errors.unknown?.code, "NotFound");
    assert.equal(errors.removed, true);
    assert.equal(errors.again, false);
  } finally {
    await ctx.close();
  }
});

test("purge: the page purges old tombstones, and its offline edit of a purged row is dropped, not pushed back", async () => {
  const ctx = await launch("purge");
  try {
    const page = await openPage(ctx);
    const tag = `g${Date.now()}`;
    const gone = cli("purge-cli.db", "add", `${tag} gone`).id;
    cli("purge-cli.db", "add", `${tag} kept`);
    cli("purge-cli.db", "sync");
    await page.evaluate(async (url) => {
      await erth.open({ name: "purge", url });
      await erth.db.sync();
    }, SERVER);
    // The page edits the row without syncing; the CLI deletes it.
    await page.evaluate(async ([id, tag]) => erth.db.todos.rename(id, `${tag} edited`), [gone, tag]);
    cli("purge-cli.db", "sql", "DELETE FROM todos WHERE id = ?", "--params", JSON.stringify([gone]));
    cli("purge-cli.db", "sync");
    const out = await page.evaluate(async (tag) => {
      const report = await erth.db.purge({ olderThanMs: 0 });
      await erth.db.sync();
      const list = (await erth.db.todos.listActive()).filter((t) => t.title.startsWith(tag));
      return {
        report,
        titles: list.map((t) => t.title),
        status: await erth.db.status(),
        negative: await erth.failure(() => erth.db.purge({ olderThanMs: -1 })),
      };
    }, tag);
    const todos = out.report.tables.find((t) => t.table === "todos");
    assert.ok(todos.rows >= 1 && todos.mark > 0, JSON.stringify(out.report));
    assert.ok(out.report.horizonMs > 0);
    assert.deepEqual(out.titles, [`${tag} kept`]);
    assert.equal(out.status.pendingChanges, 0);
    assert.equal(out.negative?.code, "InvalidInput");
    cli("purge-cli.db", "sync");
    assert.ok(!cli("purge-cli.db", "list").some((t) => t.id === gone), "the purged row never comes back");
  } finally {
    await ctx.close();
  }
});

test("encrypted columns: the page seals with its key and a recovery phrase, a CLI replica holding them reads the values", async () => {
  const ctx = await launch("sealed");
  try {
    const page = await openPage(ctx);
    const table = `sealed_${Date.now()}`;
    const schema = { tables: { [table]: { columns: { body: { type: "text", encrypted: true } } } } };
    const key = "5a".repeat(32);
    const out = await page.evaluate(
      async ([url, schema, key, table]) => {
        await erth.open({ name: "sealed", url, schema, columnKeys: [key] });
        await erth.db.execute(`INSERT INTO ${table} (body) VALUES ('the plan')`);
        await erth.db.sync();
        const phrase = await erth.ErthDb.newRecoveryPhrase();
        const other = await erth.ErthDb.newRecoveryPhrase();
        const sealer = await erth.ErthDb.open({ name: "sealed-phrase", url, schema, columnKeys: [phrase, key] });
        await sealer.execute(`INSERT INTO ${table} (body) VALUES ('from a phrase')`);
        await sealer.sync();
        await sealer.close();
        const words = phrase.split(" ");
        return {
          phrase,
          other,
          typo: await erth.failure(() =>
            erth.ErthDb.open({ name: "sealed-typo", url, schema, columnKeys: [[...words.slice(0, 23), "zzzz"].join(" ")] }),
          ),
          missing: await erth.failure(() => erth.ErthDb.open({ name: "sealed-nokey", url, schema })),
          short: await erth.failure(() => erth.ErthDb.open({ name: "sealed-short", url, schema, columnKeys: ["abcd"] })),
        };
      },
      [SERVER, schema, key, table],
    );
    assert.equal(out.missing?.code, "InvalidInput", JSON.stringify(out.missing));
    assert.equal(out.short?.code, "InvalidInput", JSON.stringify(out.short));
    assert.ok(!JSON.stringify(out.short).includes("abcd"), "the key is not shown");
    assert.equal(out.phrase.split(" ").length, 24);
    assert.notEqual(out.phrase, out.other);
    assert.equal(out.typo?.code, "InvalidInput", JSON.stringify(out.typo));
    assert.ok(JSON.stringify(out.typo).includes("word 24"), JSON.stringify(out.typo));
    assert.ok(!JSON.stringify(out.typo).includes(out.phrase.split(" ").slice(0, 2).join(" ")), "the phrase is not shown");
    const file = await schemaFile("sealed", schema);
    const keys = join(WORK, "sealed.keys");
    await writeFile(keys, `${out.phrase}\n${key}\n`);
    cliWith(file, "sealed-cli.db", "--column-keys-file", keys, "sync");
    const rows = cliWith(file, "sealed-cli.db", "--column-keys-file", keys, "sql", `SELECT body FROM ${table} ORDER BY body`);
    assert.deepEqual(rows, [{ body: "from a phrase" }, { body: "the plan" }]);
  } finally {
    await ctx.close();
  }
});

test("encryption at rest through the package: changeFileKey encrypts, rekeys and decrypts a closed database in place", async () => {
  const ctx = await launch("atrest");
  try {
    const page = await openPage(ctx);
    const out = await page.evaluate(async () => {
      const { ErthDb } = erth;
      const k1 = "11".repeat(32);
      const open = (fileKey) => ErthDb.open({ name: "atrest", storage: "opfs", fileKey });
      const titles = async (fileKey) => {
        const db = await open(fileKey);
        const list = (await db.todos.listActive()).map((t) => t.title);
        await db.close();
        return list;
      };
      const db = await open();
      await db.todos.add("kept through every key");
      const whileOpen = await erth.failure(() => ErthDb.changeFileKey("atrest", null, k1, { lockTimeoutMs: 0 }));
      await db.close();
      const notAString = await erth.failure(() => ErthDb.changeFileKey("atrest", 42, k1));
      const badKey = await erth.failure(() => ErthDb.changeFileKey("atrest", null, "abcd"));
      await ErthDb.changeFileKey("atrest", null, k1);
      const plainOpen = await erth.failure(() => open());
      const underK1 = await titles(k1);
      const phrase = await ErthDb.newRecoveryPhrase();
      const wrongOld = await erth.failure(() => ErthDb.changeFileKey("atrest", phrase, null));
      await ErthDb.changeFileKey("atrest", k1, phrase);
      const oldKeyOpen = await erth.failure(() => open(k1));
      const underPhrase = await titles(phrase);
      await ErthDb.changeFileKey("atrest", phrase, null);
      return { whileOpen, notAString, badKey, plainOpen, underK1, wrongOld, oldKeyOpen, underPhrase, plain: await titles() };
    });
    const text = JSON.stringify(out);
    assert.equal(out.whileOpen?.code, "DatabaseLocked", text);
    assert.equal(out.notAString?.code, "InvalidInput", text);
    assert.equal(out.badKey?.code, "InvalidInput", text);
    assert.ok(!JSON.stringify(out.badKey).includes("abcd"), "the key is not shown");
    for (const refused of [out.plainOpen, out.wrongOld, out.oldKeyOpen]) {
      assert.equal(refused?.code, "WrongKey", text);
      assert.ok(refused.isErthError, text);
    }
    for (const list of [out.underK1, out.underPhrase, out.plain]) {
      assert.deepEqual(list, ["kept through every key"]);
    }
  } finally {
    await ctx.close();
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

    // A whole sync has its own limit (syncTimeoutMs), whatever the request
    // timeout: the sync ends with Network, says which limit, keeps the edit.
    const deadline = await page.evaluate(
      async ({ origin, token }) => {
        const db = await erth.ErthDb.open({
          name: "faults-deadline",
          storage: "memory",
          requestTimeoutMs: 120000,
          syncTimeoutMs: 500,
        });
        await db.todos.add("kept past the deadline");
        await db.setRemote(`${origin}/fault/stall`, token);
        const error = await erth.failure(() => db.sync());
        const status = await db.status();
        await db.close();
        return { error, status };
      },
      { origin: ORIGIN, token: TOKEN },
    );
    assert.equal(deadline.error?.code, "Network", JSON.stringify(deadline.error));
    assert.match(deadline.error.message, /longer than its limit \(500 ms\)/);
    assert.equal(deadline.status.pendingChanges, 1);
    assert.equal(deadline.status.syncing, false);
    assert.equal(deadline.status.lastErrorCode, "Network");
  } finally {
    await ctx.close();
  }
});

test("a server answering with a redirect gets a typed error; nothing (token, key, body) is sent again", async () => {
  const ctx = await launch("redirects");
  try {
    const page = await openPage(ctx);
    const KEY = "e2e-encryption-key-0123456789abcdef";
    const out = await page.evaluate(
      async ({ origin, token, key }) => {
        await erth.open({ name: "redirects", storage: "memory", authToken: token, encryptionKey: key });
        await erth.db.todos.add("must not reach the recorder");
        const results = {};
        for (const status of [301, 302, 307, 308]) {
          await erth.db.setRemote(`${origin}/redirect/${status}`, token);
          results[status] = { error: await erth.failure(() => erth.db.sync()), status: await erth.db.status() };
        }
        return results;
      },
      { origin: ORIGIN, token: TOKEN, key: KEY },
    );
    for (const [status, { error, status: after }] of Object.entries(out)) {
      assert.equal(error?.code, "Network", `${status}: ${JSON.stringify(error)}`);
      assert.match(error.message, /redirect.*not followed/, status);
      for (const secret of [TOKEN, KEY]) {
        assert.ok(!error.message.includes(secret), `${status}: a secret in ${error.message}`);
        assert.ok(!JSON.stringify(after).includes(secret), `${status}: a secret in the status`);
      }
      assert.equal(after.pendingChanges, 1, `${status}: the change stays pending`);
    }
    assert.deepEqual(recorded, [], "the redirect's target received requests");
  } finally {
    await ctx.close();
  }
});


// ---- the SQL face: the app's own schema, plain SQL, live queries ----

/** Every SQLite type, and NULL vs empty. */
const SAMPLES_SCHEMA = {
  tables: {
    samples: {
      columns: {
        label: { type: "text", notNull: true },
        i: { type: "integer" },
        r: { type: "real" },
        t: { type: "text" },
        b: { type: "blob" },
      },
      indexes: [["label"]],
    },
  },
};
/** Lists and their items: a live query joins them. */
const LISTS_SCHEMA = {
  tables: {
    lists: { columns: { name: { type: "text", notNull: true } } },
    items: {
      columns: {
        list_id: { type: "text", notNull: true },
        title: { type: "text", notNull: true },
        done: { type: "integer", notNull: true, default: 0 },
      },
    },
  },
};
const HOSTILE = "it's \"quoted\" '; DROP TABLE samples; -- \u0000 NUL, non-BMP 🦀𝄞, \\ back\\slash";
const HOSTILE_NATIVE = "native: \"x\"'); DELETE FROM samples; --\u0000 🦀";
/** The same description of every row on any replica, at the SQLite level (exact). */
const DESCRIBE_SQL =
  "SELECT label, typeof(i) AS ti, CAST(i AS TEXT) AS i, typeof(r) AS tr, r, " +
  "typeof(t) AS tt, hex(t) AS t, typeof(b) AS tb, hex(b) AS b FROM samples ORDER BY label";

test("custom schema: plain SQL, values, transactions and typed errors", async () => {
  const ctx = await launch("sql-api");
  try {
    const page = await openPage(ctx);
    const out = await page.evaluate(async (schema) => {
      const f = erth.failure;
      const errors = {
        badSchema: await f(() => erth.ErthDb.open({ name: "sql-bad", schema: { tables: { t: { columns: { x: { type: "date" } } } } } })),
        badSchemaText: await f(() => erth.ErthDb.open({ name: "sql-bad2", schema: "{not json" })),
      };
      // url "" is local-only; the schema may also be its JSON text.
      await erth.open({ name: "sql-api", url: "", schema: JSON.stringify(schema) });
      const db = erth.db;
      const { id } = await db.get("SELECT uuid7() AS id");
      const inserted = await db.execute("INSERT INTO samples (id, label, i, r, t, b) VALUES (?, ?, ?, ?, ?, ?)", [
        id, "one", 7, 0.5, "x", new Uint8Array([1, 2, 3]),
      ]);
      await db.execute("INSERT INTO samples (label, i, t, b) VALUES (?, ?, ?, ?)", ["two", true, undefined, new Uint8Array([9]).buffer]);
      const updated = await db.execute("UPDATE samples SET i = i + 1 WHERE label = ?", ["one"]);
      const one = await db.get("SELECT id, label, i, r, t, b, created_at, updated_at FROM samples WHERE label = ?", ["one"]);
      const two = await db.getOptional("SELECT id, i, t, b FROM samples WHERE label = 'two'");
      const none = await db.getOptional("SELECT id FROM samples WHERE label = 'missing'");
      // A transaction: all or nothing.
      const committed = await db.transaction((tx) => {
        tx.execute("INSERT INTO samples (label, i) VALUES (?, ?)", ["three", 3]);
        tx.execute("UPDATE samples SET t = ? WHERE label = ?", ["changed", "one"]);
      });
      let late = null;
      const rolledBack = await f(() =>
        db.transaction(async (tx) => {
          late = tx;
          tx.execute("INSERT INTO samples (label) VALUES (?)", ["four"]);
          tx.execute("UPDATE samples SET t = 'lost' WHERE label = 'one'");
          tx.execute("INSERT INTO samples (label) VALUES (NULL)");
        }),
      );
      const thrown = await f(() =>
        db.transaction((tx) => {
          tx.execute("INSERT INTO samples (label) VALUES ('five')");
          throw new Error("app bug");
        }),
      );
      Object.assign(errors, {
        lateTx: await f(() => late.execute("INSERT INTO samples (label) VALUES ('six')")),
        syntax: await f(() => db.execute("INSERT INTO nowhere VALUES (1)")),
        notNull: await f(() => db.execute("INSERT INTO samples (label) VALUES (NULL)")),
        ddl: await f(() => db.execute("DROP TABLE samples")),
        engine: await f(() => db.execute("DELETE FROM _erth_rows_samples")),
        begin: await f(() => db.execute("BEGIN")),
        attach: await f(() => db.execute("ATTACH DATABASE 'x.db' AS x")),
        writeInQuery: await f(() => db.getAll("DELETE FROM samples")),
        notFound: await f(() => db.get("SELECT id FROM samples WHERE label = 'missing'")),
        badParam: await f(() => db.execute("SELECT ?, ?", [1, { x: 1 }])),
        badBigint: await f(() => db.execute("SELECT ?", [2n ** 63n])),
        nan: await f(() => db.execute("SELECT ?", [NaN])),
        infinity: await f(() => db.execute("SELECT ?", [-Infinity])),
        notArray: await f(() => db.getAll("SELECT 1", "x")),
        fnParam: await f(() => db.getAll("SELECT ?", [() => 1])),
        badTxParam: await f(() => db.transaction((tx) => tx.execute("SELECT ?, ?", [1n, { x: 1 }]))),
        noRemote: await f(() => db.sync()),
      });
      const labels = (await db.getAll("SELECT label FROM samples ORDER BY label")).map((r) => r.label);
      const oneAfter = await db.get("SELECT t FROM samples WHERE label = 'one'");
      const deleted = await db.execute("DELETE FROM samples WHERE label = ?", ["three"]);
      const status = await db.status();
      const local = await db.getAll("SELECT count(*) AS n FROM _erth_rows_samples WHERE is_deleted = 1");
      // Schema versions: dropping a column is refused; adding one migrates in place.
      await db.close();
      const columns = schema.tables.samples.columns;
      const { b: _dropped, ...withoutB } = columns;
      errors.dropColumn = await f(() =>
        erth.ErthDb.open({ name: "sql-api", schema: { tables: { samples: { columns: withoutB } } } }),
      );
      const v2 = await erth.ErthDb.open({
        name: "sql-api",
        schema: { tables: { samples: { columns: { ...columns, note: { type: "text", default: "none" } } } } },
      });
      const migrated = await v2.getAll("SELECT label, note FROM samples ORDER BY label");
      await v2.close();
      return {
        migrated,
        errors,
        id,
        inserted: { rowsAffected: inserted.rowsAffected, rows: inserted.rows.length },
        updated: updated.rowsAffected,
        one: erth.describeRows([one])[0],
        two: erth.describeRows([two])[0],
        none,
        committed: committed.map((r) => r.rowsAffected),
        rolledBack,
        thrown: thrown?.message,
        labels,
        oneAfter: oneAfter.t,
        deleted: deleted.rowsAffected,
        status,
        local,
      };
    }, SAMPLES_SCHEMA);
    const { errors } = out;
    for (const [what, code] of Object.entries({
      badSchema: "InvalidInput",
      badSchemaText: "InvalidInput",
      lateTx: "InvalidInput",
      syntax: "Sql",
      notNull: "Sql",
      ddl: "Sql",
      engine: "Sql",
      begin: "Sql",
      attach: "Sql",
      writeInQuery: "Sql",
      notFound: "NotFound",
      badParam: "InvalidInput",
      badBigint: "InvalidInput",
      nan: "Sql",
      infinity: "Sql",
      notArray: "InvalidInput",
      fnParam: "InvalidInput",
      badTxParam: "InvalidInput",
      noRemote: "NoRemote",
      dropColumn: "SchemaChange",
    })) {
      assert.ok(errors[what], `${what} should have failed`);
      assert.equal(errors[what].code, code, `${what}: ${JSON.stringify(errors[what])}`);
      assert.equal(errors[what].isErthError, true, what);
    }
    assert.deepEqual(out.migrated, [
      { label: "one", note: "none" },
      { label: "two", note: "none" },
    ]);
    assert.match(errors.badSchema.message, /table t, column x/);
    assert.match(errors.badParam.message, /parameter 2 /);
    assert.match(errors.badTxParam.message, /statement 1: parameter 2/);
    assert.equal(out.inserted.rowsAffected, 1);
    assert.equal(out.inserted.rows, 0);
    assert.equal(out.updated, 1);
    assert.equal(out.one.id, `s:${JSON.stringify(out.id)}`);
    assert.deepEqual(
      { i: out.one.i, r: out.one.r, t: out.one.t, b: out.one.b },
      { i: "n:8", r: "n:0.5", t: 's:"x"', b: "u8:010203" },
    );
    assert.match(out.one.created_at, /^n:\d{13}$/);
    assert.deepEqual({ i: out.two.i, t: out.two.t, b: out.two.b }, { i: "n:1", t: "null", b: "u8:09" });
    assert.match(out.two.id, /^s:"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/, "an INSERT without id gets a UUIDv7");
    assert.equal(out.none, null);
    assert.deepEqual(out.committed, [1, 1]);
    assert.equal(out.rolledBack?.code, "Sql", JSON.stringify(out.rolledBack));
    assert.equal(out.thrown, "app bug");
    // Neither "four" (rolled back) nor "five" (the callback threw) exists; "one" kept the committed text.
    assert.deepEqual(out.labels, ["one", "three", "two"]);
    assert.equal(out.oneAfter, "changed");
    assert.equal(out.deleted, 1);
    assert.equal(out.local[0].n, 1, "DELETE is a tombstone");
    assert.equal(out.status.remoteUrl, null, "url: '' is local-only");
    assert.deepEqual(out.status.unknownServerColumns, []);
    // 2 inserts + 1 insert in a transaction (the deleted row is still a change).
    assert.equal(out.status.pendingChanges, 3);
  } finally {
    await ctx.close();
  }
});

test("every type syncs byte for byte from the browser to a native replica and back", async () => {
  const schema = await schemaFile("samples", SAMPLES_SCHEMA);
  const ctx = await launch("types");
  try {
    const page = await openPage(ctx);
    const browser = await page.evaluate(
      async ({ schema, url, hostile }) => {
        await erth.open({ name: "types", url, schema });
        const db = erth.db;
        const big = new Uint8Array(1024 * 1024);
        for (let i = 0; i < big.length; i++) big[i] = (i * 7919 + (i >> 8)) & 255;
        await db.transaction((tx) => {
          const insert = "INSERT INTO samples (label, i, r, t, b) VALUES (?, ?, ?, ?, ?)";
          tx.execute(insert, ["a: 2^53+1", 2n ** 53n + 1n, 0.1 + 0.2, "", new Uint8Array(0)]);
          tx.execute(insert, ["b: i64 min", -(2n ** 63n), -2.5, null, null]);
          tx.execute(insert, ["c: i64 max", 2n ** 63n - 1n, 1 / 3, hostile, new Uint8Array([0, 255, 39, 34])]);
          tx.execute(insert, ["d: 1 MB blob", 42, 1e-300, "x", big]);
          tx.execute(insert, ["e: safe", -(2 ** 53) + 1, 2 ** 60, "é", undefined]);
        });
        const rows = await db.getAll("SELECT label, i, r, t, b FROM samples ORDER BY label");
        const sameBytes = (x, y) => x instanceof Uint8Array && x.length === y.length && x.every((v, i) => v === y[i]);
        const checks = {
          bigintAboveSafe: rows[0].i === 2n ** 53n + 1n,
          emptyText: rows[0].t === "",
          emptyBlob: rows[0].b instanceof Uint8Array && rows[0].b.length === 0,
          min: rows[1].i === -(2n ** 63n),
          nullText: rows[1].t === null && rows[1].b === null,
          max: rows[2].i === 2n ** 63n - 1n,
          hostile: rows[2].t === hostile,
          third: rows[2].r === 1 / 3,
          bigBlob: sameBytes(rows[3].b, big),
          safeIsNumber: rows[3].i === 42 && rows[4].i === -(2 ** 53) + 1,
          realStaysReal: rows[4].r === 2 ** 60 && rows[3].r === 1e-300,
          fraction: rows[0].r === 0.1 + 0.2,
        };
        const report = await db.sync();
        return { checks, pushed: report.pushed, described: await db.getAll(erth.describeSql) };
      },
      { schema: SAMPLES_SCHEMA, url: SERVER, hostile: HOSTILE },
    );
    for (const [what, ok] of Object.entries(browser.checks)) assert.equal(ok, true, `in the browser: ${what}`);
    assert.equal(browser.pushed, 5);

    // A native replica pulls them: the same bytes at the SQLite level.
    cliWith(schema, "types-native.db", "sync");
    const native = cliWith(schema, "types-native.db", "sql", DESCRIBE_SQL);
    assert.deepEqual(native, browser.described);
    assert.equal(native[3].b.length, 2 * 1024 * 1024, "the 1 MB blob arrived whole");
    assert.equal(native[2].tt, "text");
    assert.equal(native[1].tt, "null");
    assert.equal(native[0].t, "", "empty text is not NULL");
    assert.equal(native[0].tb, "blob", "an empty blob is not NULL");

    // The native replica writes extremes back.
    cliWith(schema, "types-native.db", "sql", "UPDATE samples SET i = ?, t = ?, b = randomblob(1048576) WHERE label = ?",
      "--params", `[9223372036854775807, ${JSON.stringify(HOSTILE_NATIVE)}, "b: i64 min"]`);
    cliWith(schema, "types-native.db", "sql", "INSERT INTO samples (label, i, r, t, b) VALUES (?, ?, ?, ?, ?)",
      "--params", '["f: native", -9223372036854775808, 2.5e-8, "", {"blob": "00ff10"}]');
    cliWith(schema, "types-native.db", "sync");
    const nativeAfter = cliWith(schema, "types-native.db", "sql", DESCRIBE_SQL);
    assert.equal(nativeAfter[1].i, "9223372036854775807");
    assert.equal(nativeAfter[5].i, "-9223372036854775808");

    const back = await page.evaluate(
      async ({ hostile }) => {
        const db = erth.db;
        const report = await db.sync();
        const min = await db.get("SELECT i, t, b FROM samples WHERE label = 'b: i64 min'");
        const native = await db.get("SELECT i, r, t, b FROM samples WHERE label = 'f: native'");
        return {
          pulled: report.pulled,
          described: await db.getAll(erth.describeSql),
          min: { i: erth.describe(min.i), t: min.t === hostile, blobLength: min.b.length },
          native: erth.describeRows([native])[0],
        };
      },
      { hostile: HOSTILE_NATIVE },
    );
    assert.ok(back.pulled >= 2, `pulled ${back.pulled}`);
    assert.deepEqual(back.described, nativeAfter);
    assert.deepEqual(back.min, { i: "b:9223372036854775807", t: true, blobLength: 1024 * 1024 });
    assert.deepEqual(back.native, { i: "b:-9223372036854775808", r: "n:2.5e-8", t: 's:""', b: "u8:00ff10" });
  } finally {
    await ctx.close();
  }
});

test("watch: fires on a local write and on a pulled change, never after unsubscribe", async () => {
  const schema = await schemaFile("lists", LISTS_SCHEMA);
  const ctx = await launch("watch");
  try {
    const page = await openPage(ctx);
    const first = await page.evaluate(
      async ({ schema, url }) => {
        await erth.open({ name: "watch", url, schema });
        const db = erth.db;
        const seen = (erth.seen = { lists: [], open: [] });
        const perList =
          "SELECT l.name, count(i.id) AS open FROM lists AS l " +
          "LEFT JOIN items AS i ON i.list_id = l.id AND i.done = 0 GROUP BY l.id ORDER BY l.name";
        erth.stopLists = db.watch(perList, [], (rows) => seen.lists.push(rows));
        // A control query on the same table, kept running throughout.
        const control = db.watch("SELECT count(*) AS open FROM items WHERE done = ?", [0], (rows) => seen.open.push(rows[0].open));
        await Promise.all([erth.stopLists.ready, control.ready]);
        const errors = {
          badSql: await erth.failure(() => db.watch("SELEC nope", [], () => {}, { onError: () => {} }).ready),
          write: await erth.failure(() => db.watch("DELETE FROM items", [], () => {}, { onError: () => {} }).ready),
        };
        const after = (what) => ({ what, lists: seen.lists.length, open: seen.open.length });
        const marks = [after("start")];
        // A local write: one transaction, one new result.
        const { id } = await db.get("SELECT uuid7() AS id");
        await db.transaction((tx) => {
          tx.execute("INSERT INTO lists (id, name) VALUES (?, ?)", [id, "home"]);
          tx.execute("INSERT INTO items (list_id, title) VALUES (?, ?)", [id, "water the plants"]);
        });
        marks.push(after("local write"));
        // A write that changes nothing the per-list query shows.
        await db.execute("INSERT INTO lists (name) VALUES ('later')");
        await db.execute("UPDATE lists SET name = 'work' WHERE name = 'later'");
        marks.push(after("unrelated writes"));
        await db.sync();
        return { id, errors, marks, seen };
      },
      { schema: LISTS_SCHEMA, url: SERVER },
    );
    assert.equal(first.errors.badSql?.code, "Sql", JSON.stringify(first.errors.badSql));
    assert.equal(first.errors.write?.code, "Sql", JSON.stringify(first.errors.write));
    // The first result arrives before `ready`; each local commit's result before its Promise settles.
    assert.deepEqual(first.seen.lists.slice(0, 2), [[], [{ name: "home", open: 1 }]]);
    assert.deepEqual(first.marks.slice(0, 2).map((m) => m.lists), [1, 2]);
    assert.deepEqual(first.seen.lists[2], [{ name: "home", open: 1 }, { name: "later", open: 0 }]);
    assert.deepEqual(first.seen.lists[3], [{ name: "home", open: 1 }, { name: "work", open: 0 }]);
    assert.deepEqual(first.seen.open, [0, 1], "the control query only fires when its rows change");

    // A native replica adds an item to "home": the browser's pull fires the live query.
    cliWith(schema, "watch-native.db", "sync");
    cliWith(schema, "watch-native.db", "sql", "INSERT INTO items (list_id, title) VALUES (?, ?)", "--params", JSON.stringify([first.id, "from native"]));
    cliWith(schema, "watch-native.db", "sync");
    const pulled = await page.evaluate(async () => {
      const before = erth.seen.lists.length;
      const report = await erth.db.sync();
      return { pulled: report.pulled, lists: erth.seen.lists.slice(before), open: erth.seen.open.at(-1) };
    });
    assert.ok(pulled.pulled >= 1, `pulled ${pulled.pulled}`);
    assert.deepEqual(pulled.lists, [[{ name: "home", open: 2 }, { name: "work", open: 0 }]]);
    assert.equal(pulled.open, 2);

    // Unsubscribed: neither a local write nor a pulled change reaches it; the control query still fires.
    const stopped = await page.evaluate(async () => {
      const db = erth.db;
      erth.stopLists();
      erth.stopLists();
      const before = { lists: erth.seen.lists.length, open: erth.seen.open.length };
      await db.execute("UPDATE items SET done = 1 WHERE title = 'water the plants'");
      return { before, after: { lists: erth.seen.lists.length, open: erth.seen.open.length } };
    });
    assert.equal(stopped.after.open, stopped.before.open + 1, "the control query saw the local write");
    assert.equal(stopped.after.lists, stopped.before.lists, "no result after unsubscribe (local write)");
    cliWith(schema, "watch-native.db", "sql", "UPDATE items SET done = 1 WHERE title = 'from native'");
    cliWith(schema, "watch-native.db", "sync");
    const afterPull = await page.evaluate(async () => {
      const before = { lists: erth.seen.lists.length, open: erth.seen.open.length };
      await erth.db.sync();
      return { before, after: { lists: erth.seen.lists.length, open: erth.seen.open.length }, open: erth.seen.open.at(-1) };
    });
    assert.equal(afterPull.after.open, afterPull.before.open + 1, "the control query saw the pull");
    assert.equal(afterPull.open, 0);
    assert.equal(afterPull.after.lists, afterPull.before.lists, "no result after unsubscribe (pulled change)");
  } finally {
    await ctx.close();
  }
});

test("a worker or .wasm that cannot be loaded fails with LoadFailed naming its URL; a non-secure origin is refused", async () => {
  // erth-lan.test plays a LAN address: plain http there is not a secure context.
  const ctx = await launch("load", ["--host-resolver-rules=MAP erth-lan.test 127.0.0.1"]);
  try {
    const lan = await ctx.newPage();
    await lan.goto(ORIGIN.replace("127.0.0.1", "erth-lan.test") + "/");
    await lan.waitForFunction(() => window.erthReady === true);
    const insecure = await lan.evaluate(async () => ({
      secure: window.isSecureContext,
      error: await erth.failure(() => erth.ErthDb.open({ name: "insecure" })),
    }));
    assert.equal(insecure.secure, false);
    assert.equal(insecure.error?.code, "Storage", JSON.stringify(insecure.error));
    assert.match(insecure.error.message, /not a secure context/);
    assert.match(insecure.error.message, /https/);
    assert.match(insecure.error.message, /localhost/);
    await lan.close();
    const page = await openPage(ctx);
    const out = await page.evaluate(async () => {
      const attempt = async (path, name) => {
        const { ErthDb } = await import(path);
        try {
          await ErthDb.open({ name });
          return null;
        } catch (e) {
          return { code: e.code, message: e.message, name: e.name };
        }
      };
      return {
        noWorker: await attempt("/pkg-noworker/index.js", "load-1"),
        noWasm: await attempt("/pkg-nowasm/index.js", "load-2"),
      };
    });
    assert.equal(out.noWorker?.code, "LoadFailed", JSON.stringify(out.noWorker));
    assert.ok(out.noWorker.message.includes(`${ORIGIN}/pkg-noworker/worker.js`), out.noWorker.message);
    assert.equal(out.noWasm?.code, "LoadFailed", JSON.stringify(out.noWasm));
    assert.ok(out.noWasm.message.includes(`${ORIGIN}/pkg-nowasm/erth_wasm_bg.wasm`), out.noWasm.message);
    assert.match(out.noWasm.message, /HTTP 404/);
  } finally {
    await ctx.close();
  }
});

/** Runs SQL statements on the test server directly (setup only). */
async function serverExecute(statements) {
  const requests = statements.map((sql) => ({ type: "execute", stmt: { sql } }));
  const response = await fetch(`${SERVER}/v2/pipeline`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ requests }),
  });
  const body = await response.json();
  for (const result of body.results) assert.equal(result.type, "ok", JSON.stringify(result));
}

test("rows the server refuses are set aside, listed, retried and discarded; the rest syncs", async () => {
  const ctx = await launch("refused");
  try {
    const page = await openPage(ctx);
    const schema = { tables: { reviews: { columns: { stars: { type: "integer", notNull: true, default: 0 } } } } };
    await page.evaluate(async ({ url, schema }) => {
      await erth.open({ name: "refused", url, schema });
      await erth.db.sync();
    }, { url: SERVER, schema });
    // The server's own rule, as an app's server-side validation would have it.
    await serverExecute([
      "CREATE TRIGGER IF NOT EXISTS e2e_refuse BEFORE INSERT ON reviews WHEN new.stars > 5 " +
        "BEGIN SELECT RAISE(ABORT, 'stars out of range'); END",
    ]);
    const out = await page.evaluate(async () => {
      const db = erth.db;
      for (const stars of [4, 9, 5]) await db.execute("INSERT INTO reviews (stars) VALUES (?)", [stars]);
      const first = await db.sync();
      const rejected = await db.rejectedRows();
      const status = await db.status();
      const again = await db.sync();
      const retried = await db.retryRejected();
      const retry = await db.sync();
      await db.discardRejected("reviews", rejected[0].id);
      const notRefused = await erth.failure(() => db.discardRejected("reviews", rejected[0].id));
      const badArg = await erth.failure(() => db.discardRejected("reviews", 7));
      return {
        first, rejected, status, again, retried, retry, notRefused, badArg,
        after: await db.status(),
        rows: await db.getAll("SELECT stars FROM reviews ORDER BY stars"),
      };
    });
    assert.equal(out.first.pushed, 2, "the other rows sync in the same sync");
    assert.equal(out.rejected.length, 1, JSON.stringify(out.rejected));
    assert.equal(out.rejected[0].table, "reviews");
    assert.ok(out.rejected[0].code.length > 0);
    assert.match(out.rejected[0].message, /stars out of range/);
    assert.equal(typeof out.rejected[0].rejectedAt, "number");
    assert.deepEqual([out.status.rejected, out.status.pendingChanges], [1, 1]);
    assert.deepEqual(out.status.refusedTables, []);
    assert.equal(out.again.pushed, 0, "not pushed again while unchanged");
    assert.equal(out.retried, 1);
    assert.equal(out.retry.pushed, 0, "refused again after retryRejected");
    assert.deepEqual([out.after.rejected, out.after.pendingChanges], [0, 0]);
    assert.deepEqual(out.rows, [{ stars: 4 }, { stars: 5 }], "the discarded row never reached the server");
    assert.equal(out.notRefused?.code, "NotFound", JSON.stringify(out.notRefused));
    assert.equal(out.badArg?.code, "InvalidInput", JSON.stringify(out.badArg));
  } finally {
    await ctx.close();
  }
});

// ---- run ----

let { passed, failed } = await runTests(tests);
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
