// The built npm package in the browser engines Playwright cannot drive in
// their stock builds, through plain W3C WebDriver (webdriver.mjs): Debian's
// Firefox ESR with geckodriver, and WebKitGTK (Safari's engine) with
// WebKitWebDriver under Xvfb and a small persistent-profile browser
// (webkit-browser.py). A lean subset of run.mjs (which covers Chromium in
// depth): persistence across a browser restart, two devices converging with
// a native replica, and several tabs sharing a database while the owner tab
// closes and every tab reloads during writes. WebKitGTK has no OPFS sync
// access handles, so there the package runs on its IndexedDB fallback, and
// the tests check it does. Run by
// `cargo xtask test wasm`, which passes the variables of run.mjs plus:
//
//   ERTH_ENGINE          "firefox" or "webkit"
//   ERTH_GECKODRIVER     (firefox) the geckodriver binary (built into the cache)
//   ERTH_FIREFOX         (firefox) the Firefox binary
//   ERTH_WEBKITDRIVER    (webkit) WebKitWebDriver
//
// Prints one line per test and `e2e: N passed, M failed`.

import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { cliRunner, env, runTests, serveFile, until } from "./harness.mjs";
import { Driver } from "./webdriver.mjs";

const PKG_DIR = resolve(env("ERTH_PKG_DIR"));
const SERVER = env("ERTH_TEST_HRANA_URL").replace(/\/$/, "");
const CLI = env("ERTH_CLI");
const WORK = env("ERTH_E2E_WORK");
const ENGINE = env("ERTH_ENGINE");
const PAGE_HTML = join(fileURLToPath(new URL(".", import.meta.url)), "page.html");

/** Where each engine keeps the database (status().storage). */
const STORAGE = { firefox: "opfs", webkit: "indexeddb" }[ENGINE];
if (!STORAGE) {
  console.error(`engines.mjs: unknown ERTH_ENGINE ${JSON.stringify(ENGINE)} (firefox, webkit)`);
  process.exit(2);
}
const WEBKIT_BROWSER = join(fileURLToPath(new URL(".", import.meta.url)), "webkit-browser.py");

// ---- the page and the package, on 127.0.0.1 (a secure context) ----

const pageServer = createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (path === "/" || path === "/index.html") return serveFile(res, PAGE_HTML);
  if (path === "/favicon.ico") return res.writeHead(204).end();
  const pkg = /^\/pkg\/(.*)$/.exec(path);
  if (pkg) {
    const file = normalize(join(PKG_DIR, decodeURIComponent(pkg[1])));
    if (!file.startsWith(PKG_DIR + sep)) return res.writeHead(403).end();
    return serveFile(res, file);
  }
  res.writeHead(404).end("not found");
});
await new Promise((ok) => pageServer.listen(0, "127.0.0.1", ok));
const ORIGIN = `http://127.0.0.1:${pageServer.address().port}`;

// ---- the browser ----

/** Starts the engine on `profile` (a directory kept between sessions: one device). */
async function launch(profile) {
  const dir = join(WORK, `${ENGINE}-${profile}`);
  await mkdir(dir, { recursive: true });
  const driver =
    ENGINE === "firefox"
      ? await Driver.start(env("ERTH_GECKODRIVER"), (port) => ["--host", "127.0.0.1", "--port", String(port)])
      : await Driver.start("xvfb-run", (port) => ["-a", env("ERTH_WEBKITDRIVER"), `--port=${port}`], { group: true });
  try {
    const session = await driver.session(
      ENGINE === "firefox"
        ? {
            browserName: "firefox",
            "moz:firefoxOptions": {
              binary: env("ERTH_FIREFOX"),
              args: ["-headless", "-profile", dir],
              prefs: { "browser.shell.checkDefaultBrowser": false, "datareporting.policy.dataSubmissionEnabled": false },
            },
          }
        : { "webkitgtk:browserOptions": { binary: WEBKIT_BROWSER, args: ["--automation", `--profile=${dir}`] } },
    );
    await session.setScriptTimeout(60000);
    return {
      session,
      async close() {
        try {
          await session.end();
        } catch (e) {
          // Ending may fail after a test failed mid-way (e.g. its window is
          // gone); the test's own error is the one to report.
          // WebKitWebDriver answers "no such window" once our browser's windows are closed.
          if (!/no such window/.test(e.message)) console.log(`     (ending the ${ENGINE} session: ${e.message})`);
        } finally {
          driver.stop();
        }
      },
    };
  } catch (e) {
    driver.stop();
    throw new Error(`${e.message}\ndriver output:\n${driver.log()}`);
  }
}

/** Loads the test page in the current window and waits for the package. */
async function openPage(session) {
  await session.goto(ORIGIN + "/");
  await session.run(async () => {
    for (let i = 0; i < 200 && window.erthReady !== true; i++) await new Promise((r) => setTimeout(r, 50));
    if (window.erthReady !== true) throw new Error("the test page did not load the package");
  });
}

const listTitles = (session) =>
  session.run(async () => (await erth.db.todos.listActive()).map((t) => t.title).sort());

const cli = cliRunner(CLI, WORK, SERVER);

/** A custom table beside the built-in todos (as in run.mjs's tab tests). */
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

// ---- tests ----

const tests = [];
const test = (name, fn) => tests.push({ name: `${ENGINE}: ${name}`, fn });

test("data and pending changes survive a browser restart", async () => {
  let browser = await launch("persist");
  try {
    await openPage(browser.session);
    const status = await browser.session.run(async () => {
      await erth.open({ name: "persist" });
      await erth.db.todos.add("one");
      const two = await erth.db.todos.add("two");
      await erth.db.todos.setCompleted(two.id, true);
      return erth.db.status();
    });
    assert.equal(status.pendingChanges, 2, "two todos changed");
    assert.equal(status.storage, STORAGE);
  } finally {
    await browser.close();
  }
  browser = await launch("persist");
  try {
    await openPage(browser.session);
    const after = await browser.session.run(async () => {
      await erth.open({ name: "persist" });
      return { list: (await erth.db.todos.listActive()).map((t) => [t.title, t.completed]), status: await erth.db.status() };
    });
    assert.deepEqual(after.list.sort(), [["one", false], ["two", true]]);
    assert.equal(after.status.pendingChanges, 2);
    assert.equal(after.status.storage, STORAGE);
  } finally {
    await browser.close();
  }
});

test("two devices and a native CLI replica edit, sync through tursodb and converge", async () => {
  const name = `${ENGINE}-devices`;
  const open = (session) => session.run((url) => erth.open({ name: "devices", url }), SERVER);
  let a = await launch("device-a");
  try {
    await openPage(a.session);
    await open(a.session);
    await a.session.run(() => erth.db.todos.add("from A"));
    await a.session.run(() => erth.db.sync());
  } finally {
    await a.close();
  }
  cli(`${name}-cli.db`, "add", "from the CLI");
  cli(`${name}-cli.db`, "sync");
  const b = await launch("device-b");
  let fromB;
  try {
    await openPage(b.session);
    await open(b.session);
    await b.session.run(async () => {
      await erth.db.sync();
      const fromA = (await erth.db.todos.listActive()).find((t) => t.title === "from A");
      await erth.db.todos.rename(fromA.id, "from A, renamed on B");
      await erth.db.todos.add("from B");
      await erth.db.sync();
    });
    fromB = await listTitles(b.session);
  } finally {
    await b.close();
  }
  assert.ok(fromB.includes("from A, renamed on B") && fromB.includes("from the CLI") && fromB.includes("from B"), String(fromB));
  a = await launch("device-a");
  try {
    await openPage(a.session);
    await open(a.session);
    await a.session.run(() => erth.db.sync());
    assert.deepEqual(await listTitles(a.session), fromB);
  } finally {
    await a.close();
  }
  cli(`${name}-cli.db`, "sync");
  assert.deepEqual(cli(`${name}-cli.db`, "list").map((t) => t.title).sort(), fromB);
});

/** Opens database "tabs" in the current window, with a live query of the notes. */
async function openTab(session) {
  await openPage(session);
  await session.run(
    async (schema, url) => {
      await erth.open({ name: "tabs", schema, url });
      window.latest = null;
      window.stopWatch = erth.db.watch("SELECT body FROM notes ORDER BY body", [], (rows) => {
        window.latest = rows.map((r) => r.body);
      });
      await window.stopWatch.ready;
    },
    TABS_SCHEMA,
    SERVER,
  );
}

/** Starts `erth.writeMany(prefix)` in the current window, in the background. */
function startWriting(session, prefix) {
  return session.run((prefix) => {
    window.result = null;
    erth.writeMany(prefix, 5000).then(
      (r) => (window.result = r),
      (e) => (window.result = { todos: [], todosInterrupted: [], notes: [], errors: [String(e)] }),
    );
  }, prefix);
}

/** Stops the background writer of the current window; its result. */
async function stopWriting(session) {
  await session.run(() => (window.stopWriting = true));
  return until("the writer to stop", () => session.run(() => window.result));
}

test("three tabs share a database; the owner tab closes, then every tab reloads, during writes: nothing lost or doubled", async () => {
  const browser = await launch("tabs");
  const { session } = browser;
  const mine = `${ENGINE}-tabs:`;
  try {
    const tabs = [await session.window()];
    tabs.push(await session.newTab(), await session.newTab());
    for (const tab of tabs) {
      await session.switchTo(tab);
      await openTab(session);
    }
    // Each tab writes; every tab's live query sees all three at once.
    for (const [i, tab] of tabs.entries()) {
      await session.switchTo(tab);
      await session.run((body) => erth.db.execute("INSERT INTO notes (body) VALUES (?)", [body]), `${mine}note from tab ${i}`);
    }
    const notes = [0, 1, 2].map((i) => `${mine}note from tab ${i}`);
    for (const tab of tabs) {
      await session.switchTo(tab);
      assert.deepEqual(await until("every note in this tab's live query", () => session.run(() => (window.latest?.length === 3 ? window.latest : null))), notes);
    }
    const count = () => session.run(async () => (await erth.db.get("SELECT count(*) AS n FROM notes")).n);
    const runs = [];
    // Tabs 1 and 2 write in the background; tab 0 (the owner) closes meanwhile.
    for (const [i, tab] of tabs.slice(1).entries()) {
      await session.switchTo(tab);
      await startWriting(session, `${mine}w${i + 1}`);
    }
    await until("some writes", async () => (await count()) >= 20);
    await session.switchTo(tabs[0]);
    await session.closeWindow();
    await session.switchTo(tabs[2]);
    const before = await count();
    await until("writes after the hand-over", async () => (await count()) >= before + 20);
    for (const tab of tabs.slice(1)) {
      await session.switchTo(tab);
      runs.push(await stopWriting(session));
    }
    // A new third tab; then each tab reloads in turn while the other two write.
    tabs[0] = await session.newTab();
    await session.switchTo(tabs[0]);
    await openTab(session);
    for (const [i, tab] of tabs.entries()) {
      const others = tabs.filter((t) => t !== tab);
      for (const [j, other] of others.entries()) {
        await session.switchTo(other);
        await startWriting(session, `${mine}r${i}-${j}`);
      }
      const start = await count();
      await until("some writes", async () => (await count()) >= start + 10);
      await session.switchTo(tab);
      await session.refresh();
      await openTab(session);
      const reopened = await count();
      await until("writes after the reload", async () => (await count()) >= reopened + 10);
      for (const other of others) {
        await session.switchTo(other);
        runs.push(await stopWriting(session));
      }
    }
    assert.deepEqual(runs.flatMap((r) => r.errors), [], "no write failed except with Interrupted");
    const read = (sql) => session.run(async (sql, glob) => (await erth.db.getAll(sql, [glob])).map((r) => Object.values(r)[0]), sql, `${mine}*`);
    const seen = {
      titles: await read("SELECT title FROM todos WHERE title GLOB ? ORDER BY title"),
      notes: await read("SELECT body FROM notes WHERE body GLOB ? ORDER BY body"),
    };
    const integrity = await session.run(async () => (await erth.db.getAll("PRAGMA integrity_check")).map((r) => Object.values(r)[0]));
    assert.deepEqual(integrity, ["ok"]);
    const acked = runs.flatMap((r) => r.todos);
    const interrupted = runs.flatMap((r) => r.todosInterrupted);
    for (const title of acked) assert.equal(seen.titles.filter((t) => t === title).length, 1, `todo ${title} once`);
    for (const title of seen.titles) assert.ok(acked.includes(title) || interrupted.includes(title), `unexpected todo ${title}`);
    assert.equal(new Set(seen.titles).size, seen.titles.length, "no todo twice");
    assert.deepEqual(seen.notes, [...notes, ...runs.flatMap((r) => r.notes)].sort(), "every acknowledged note once");
    // After a sync, the server has exactly the same (read by a fresh native replica).
    await session.run(() => erth.db.sync());
    const schema = join(WORK, `${ENGINE}-tabs.schema.json`);
    await writeFile(schema, JSON.stringify(TABS_SCHEMA));
    const db = `${ENGINE}-tabs-check.db`;
    cli(db, "--schema", schema, "sync");
    const server = (sql) => cli(db, "--schema", schema, "sql", sql, "--params", JSON.stringify([`${mine}*`])).map((r) => Object.values(r)[0]);
    assert.deepEqual(server("SELECT title FROM todos WHERE title GLOB ? ORDER BY title"), seen.titles, "the server's todos");
    assert.deepEqual(server("SELECT body FROM notes WHERE body GLOB ? ORDER BY body"), seen.notes, "the server's notes");
  } finally {
    await browser.close();
  }
});

const { passed, failed } = await runTests(tests);
pageServer.closeAllConnections();
pageServer.close();
console.log(`e2e: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
