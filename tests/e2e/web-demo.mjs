// End-to-end test of the web demo (web-demo/) as users run it: the page and
// the built npm package served by xtask's demo server, Debian's Chromium
// driven by playwright-core, two persistent browser profiles as two devices
// (A and B), and the native `erth` CLI as a third replica. Run by
// `cargo xtask test e2e`, once per sync order (and by `cargo xtask
// screenshot`, B first, for the README picture), which starts a fresh
// `tursodb --sync-server` and the demo's static server and passes:
//
//   ERTH_DEMO_URL         the demo page with its config's key (http://127.0.0.1:PORT/#config=KEY)
//   ERTH_TEST_HRANA_URL   the tursodb server the page's /config.json names
//   ERTH_CLI              the native `erth` binary
//   ERTH_NODE_MODULES     node_modules holding playwright-core
//   ERTH_CHROMIUM         the Chromium binary
//   ERTH_E2E_WORK         an empty scratch directory (profiles, CLI replicas)
//   ERTH_E2E_SHOTS        where to write the screenshots
//   ERTH_E2E_ORDER        "a-first" or "b-first": who syncs first after the offline edits
//
// The story is one scenario: each step needs the previous one, so the first
// failure ends the run. It prints `ok`/`FAIL` per step and
// `e2e: N passed, M failed` last.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { request } from "node:http";
import { join } from "node:path";
// The environment reader, Chromium's flags and playwright-core, shared with
// the package's browser tests.
import { env, FLAGS as SHARED_FLAGS, playwrightChromium } from "../../bindings-wasm/tests/e2e/harness.mjs";

const PAGE = new URL(env("ERTH_DEMO_URL"));
/** The per-run key to the page's config (which may hold a token), from the address's fragment. */
const CONFIG_KEY = new URLSearchParams(PAGE.hash.slice(1)).get("config") ?? "";
const SERVER = env("ERTH_TEST_HRANA_URL").replace(/\/$/, "");
const CLI = env("ERTH_CLI");
const CHROMIUM = env("ERTH_CHROMIUM");
const WORK = env("ERTH_E2E_WORK");
const SHOTS = env("ERTH_E2E_SHOTS");
const ORDER = env("ERTH_E2E_ORDER");
if (ORDER !== "a-first" && ORDER !== "b-first") {
  console.error(`e2e: ERTH_E2E_ORDER must be a-first or b-first, not ${ORDER}`);
  process.exit(2);
}
const chromium = playwrightChromium();
const FLAGS = ["--headless", ...SHARED_FLAGS];
/** A phone-sized window: the README screenshot shows the narrow layout. */
const VIEWPORT = { width: 430, height: 820 };
const WAIT_MS = 20000;
/** The whole run may not take longer than this. */
const RUN_LIMIT_MS = 5 * 60 * 1000;

const TITLES = ["Buy milk", "Write the report", "Call the plumber"];
const RENAMED_BY_A = "Buy oat milk";
const RENAMED_BY_B = "Call the plumber before 9";
const LATE_TITLE = "Plan the weekend";

// ---- browsers and pages ----

/** Console errors and uncaught exceptions of every page. */
const consoleErrors = [];
/** Console errors of the engine's Workers, where a panic is logged. */
const workerErrors = [];
/** Logged on a worker's console by a step, to prove the watch sees it. */
const WORKER_PROBE = "erth-e2e: worker console probe";
/** What the engine logs when it panics (see bindings-wasm/src/error.rs). */
const PANIC = "internal error";

function watch(page, device) {
  // Playwright also repeats a worker's messages on the page, marked with
  // `msg.worker()`: those are counted once, as the worker's.
  page.on("console", (msg) => {
    if (msg.type() === "error" && !msg.worker?.()) consoleErrors.push(`${device}: ${msg.text()}`);
  });
  page.on("pageerror", (e) => consoleErrors.push(`${device}: ${e}`));
  const watchWorker = (worker) =>
    worker.on("console", (msg) => {
      if (msg.type() === "error") workerErrors.push(`${device} worker: ${msg.text()}`);
    });
  page.on("worker", watchWorker);
  page.workers().forEach(watchWorker);
}

/** Device `name`'s browser: a persistent profile, so it survives a restart. */
async function launch(name) {
  const context = await chromium.launchPersistentContext(join(WORK, `profile-${name}`), {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: VIEWPORT,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  watch(page, name);
  return { name, context, page };
}

/** The demo page for device `name`; extra query parameters in `query`. */
function pageUrl(name, query = "") {
  const url = new URL(PAGE);
  url.search = `?device=${name}${query}`;
  return url.href;
}

async function open(device, query = "") {
  await device.page.goto(pageUrl(device.name, query));
  await device.page.waitForSelector("html[data-ready=true]", { timeout: WAIT_MS });
}

async function until(what, check, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The list as the page shows it: `[{ id, title, completed }]`, top to bottom. */
const listOf = (device) =>
  device.page.$$eval("#list > li", (items) =>
    items.map((li) => ({
      id: li.dataset.id,
      title: li.querySelector(".title").textContent,
      completed: li.querySelector(".check").checked,
    })),
  );

/** What the sync panel shows. */
const panelOf = (device) =>
  device.page.evaluate(() => ({
    state: document.getElementById("state").dataset.state,
    pending: document.getElementById("pending").textContent,
    server: document.getElementById("server").textContent,
    lastError: document.getElementById("last-error").textContent,
  }));

/** The Lists card (a live query): `[{ name, open }]`, top to bottom. */
const listsOf = (device) =>
  device.page.$$eval("#lists > li[data-id]", (items) =>
    items.map((li) => ({ name: li.querySelector(".name").textContent, open: li.querySelector(".open")?.textContent ?? null })),
  );

/** The Private notes card: `[{ plain, sealed }]` (sealed: the server's cell the page read, or null). */
const notesOf = (device) =>
  device.page.$$eval("#notes > tr[data-id]", (rows) =>
    rows.map((tr) => ({ plain: tr.querySelector(".plain").textContent, sealed: tr.querySelector(".sealed").dataset.value ?? null })),
  );

/** `sql`'s first column on the server itself (Hrana over HTTP), as text. */
async function serverColumn(sql) {
  const response = await fetch(`${SERVER}/v2/pipeline`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    // No close request: tursodb answers only execute and batch.
    body: JSON.stringify({ requests: [{ type: "execute", stmt: { sql } }] }),
  });
  assert.equal(response.status, 200, `the server answered ${response.status}`);
  const result = (await response.json()).results[0].response.result;
  return result.rows.map((r) => r[0].value);
}

const row = (device, id) => device.page.locator(`#list > li[data-id="${id}"]`);
const onlineSwitch = (device) => device.page.getByRole("switch", { name: "Online" });
const syncButton = (device) => device.page.getByRole("button", { name: "Sync now" });

async function addTodo(device, title) {
  const input = device.page.getByLabel("New todo");
  await input.fill(title);
  await input.press("Enter");
  await until(`${device.name} to show ${title}`, async () =>
    (await listOf(device)).some((t) => t.title === title),
  );
}

async function renameTodo(device, id, title) {
  const item = row(device, id);
  await item.getByRole("button", { name: /^Rename / }).click();
  const box = item.getByRole("textbox", { name: /^New title for / });
  await box.fill(title);
  await box.press("Enter");
  await until(`${device.name} to show ${title}`, async () =>
    (await listOf(device)).some((t) => t.id === id && t.title === title),
  );
}

async function completeTodo(device, id) {
  await row(device, id).getByRole("checkbox").check();
  await until(`${device.name} to show the todo completed`, async () =>
    (await listOf(device)).some((t) => t.id === id && t.completed),
  );
}

async function deleteTodo(device, id) {
  await row(device, id).getByRole("button", { name: /^Delete / }).click();
  await until(`${device.name} to drop the todo`, async () => !(await listOf(device)).some((t) => t.id === id));
}

async function setOnline(device, online) {
  const toggle = onlineSwitch(device);
  if ((await toggle.getAttribute("aria-checked")) !== String(online)) await toggle.click();
  await until(`${device.name} to be ${online ? "online" : "offline"}`, async () => {
    const panel = await panelOf(device);
    return (await toggle.getAttribute("aria-checked")) === String(online) && (panel.state === "offline") !== online;
  });
}

/** Waits until the device has nothing pending and its last sync succeeded. */
async function settled(device) {
  return until(`${device.name} to be up to date`, async () => {
    const panel = await panelOf(device);
    return panel.state === "synced" && panel.pending === "0" ? panel : null;
  });
}

async function syncNow(device) {
  const note = device.page.locator("#note");
  const before = await note.getAttribute("data-seq");
  await syncButton(device).click();
  await until(`${device.name}'s Sync now to finish`, async () => (await note.getAttribute("data-seq")) !== before);
  const text = await note.textContent();
  assert.match(text, /^Synced:/, `${device.name}: ${text}`);
}

// ---- the native replica ----

function cli(db, ...args) {
  const clean = { ...process.env };
  delete clean.ERTH_AUTH_TOKEN;
  delete clean.ERTH_DATABASE_URL;
  return execFileSync(CLI, ["--db", join(WORK, db), "--remote", SERVER, ...args], {
    encoding: "utf8",
    env: clean,
  });
}

/** A fresh CLI replica's list after one sync, shaped like the page's. */
function cliList(db) {
  cli(db, "sync");
  return JSON.parse(cli(db, "--json", "list")).map((t) => ({ id: t.id, title: t.title, completed: t.is_completed }));
}

// ---- the page server itself ----

/** A raw GET (no URL normalisation, so `..` reaches the server as sent). */
function rawGet(path) {
  return new Promise((resolve, reject) => {
    const req = request({ host: PAGE.hostname, port: PAGE.port, path, method: "GET" }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, type: res.headers["content-type"], body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

// ---- the story ----

const steps = [];
const step = (name, fn) => steps.push({ name, fn });
const ids = [];
let A;
let B;
const [first, second] = ORDER === "a-first" ? ["A", "B"] : ["B", "A"];
const device = (name) => (name === "A" ? A : B);

step("the demo server serves the page, the package and the config (only under its key) with their types", async () => {
  assert.match(CONFIG_KEY, /^[0-9a-f]{32}$/, "the page's address carries the config's key");
  const configPath = `/config/${CONFIG_KEY}.json`;
  for (const [path, type] of [
    ["/", "text/html; charset=utf-8"],
    ["/app.js", "text/javascript; charset=utf-8"],
    ["/style.css", "text/css; charset=utf-8"],
    ["/erth-sync/index.js", "text/javascript; charset=utf-8"],
    ["/erth-sync/worker.js", "text/javascript; charset=utf-8"],
    ["/erth-sync/erth_wasm.js", "text/javascript; charset=utf-8"],
    [configPath, "application/json"],
  ]) {
    const res = await rawGet(path);
    assert.equal(res.status, 200, path);
    assert.equal(res.type, type, path);
  }
  const wasm = await rawGet("/erth-sync/erth_wasm_bg.wasm");
  assert.equal(wasm.type, "application/wasm");
  assert.deepEqual([...wasm.body.subarray(0, 4)], [0, 0x61, 0x73, 0x6d]);
  const config = JSON.parse((await rawGet(configPath)).body.toString());
  assert.deepEqual(Object.keys(config).sort(), ["authToken", "columnKey", "url"]);
  assert.equal(config.url, SERVER);
  assert.equal(config.authToken, null);
  assert.match(config.columnKey, /^[0-9a-f]{64}$/, "the key of the private notes");
  // Anyone who can reach 127.0.0.1 but has not seen the key gets nothing.
  const wrong = CONFIG_KEY.replace(/^./, (c) => (c === "0" ? "1" : "0"));
  for (const path of ["/config.json", `/config/${wrong}.json`, "/config/", "/config"]) {
    const res = await rawGet(path);
    assert.equal(res.status, 404, path);
    assert.ok(!res.body.toString().includes(SERVER), path);
  }
  for (const path of ["/../Cargo.toml", "/erth-sync/../../Cargo.toml", "/%2e%2e/Cargo.toml", "/.git/config"]) {
    assert.equal((await rawGet(path)).status, 404, path);
  }
});

step("devices A and B (two browser profiles) open the page, online and empty", async () => {
  [A, B] = await Promise.all([launch("A"), launch("B")]);
  for (const d of [A, B]) {
    await open(d);
    assert.deepEqual(await listOf(d), []);
    assert.equal(await onlineSwitch(d).getAttribute("aria-checked"), "true");
    const panel = await panelOf(d);
    assert.equal(panel.server, SERVER);
    assert.equal(panel.pending, "0");
    assert.equal(await d.page.locator("#device-name").textContent(), d.name);
  }
});

step("the engine Worker's console is watched on both devices", async () => {
  for (const d of [A, B]) {
    const worker = await until(`${d.name}'s engine worker`, async () => d.page.workers()[0]);
    await worker.evaluate((text) => console.error(text), `${WORKER_PROBE} ${d.name}`);
    await until(`the probe, heard through ${d.name}'s worker console`, async () =>
      workerErrors.includes(`${d.name} worker: ${WORKER_PROBE} ${d.name}`),
    );
  }
});

step("A adds three todos online; auto-sync sends them", async () => {
  for (const title of TITLES) await addTodo(A, title);
  const list = await listOf(A);
  assert.deepEqual(
    list.map((t) => t.title),
    [...TITLES].reverse(),
    "newest first",
  );
  // todo 1 is the first added (the bottom row).
  ids.push(...list.map((t) => t.id).reverse());
  await settled(A);
});

step("B shows them after Sync now", async () => {
  await syncNow(B);
  await until("B to list A's three todos", async () => JSON.stringify(await listOf(B)) === JSON.stringify(await listOf(A)));
  await settled(B);
});

step("both go offline; Sync now is disabled", async () => {
  await setOnline(A, false);
  await setOnline(B, false);
  for (const d of [A, B]) assert.equal(await syncButton(d).isDisabled(), true, d.name);
});

step("offline edits: A renames 1, completes 2, deletes 3; B completes 1, renames 3", async () => {
  await renameTodo(A, ids[0], RENAMED_BY_A);
  await completeTodo(A, ids[1]);
  await deleteTodo(A, ids[2]);
  await completeTodo(B, ids[0]);
  await renameTodo(B, ids[2], RENAMED_BY_B);
  await until("A to count 3 pending changes", async () => (await panelOf(A)).pending === "3");
  await until("B to count 2 pending changes", async () => (await panelOf(B)).pending === "2");
  for (const d of [A, B]) assert.equal((await panelOf(d)).state, "offline", d.name);
  // Offline means offline: the server still has the three untouched todos.
  assert.deepEqual(
    cliList("probe.db"),
    [...TITLES].reverse().map((title, i) => ({ id: ids[2 - i], title, completed: false })),
  );
});

step(`both go online, ${first} first, and sync`, async () => {
  await setOnline(device(first), true);
  await settled(device(first));
  await setOnline(device(second), true);
  await settled(device(second));
  // The first one pulls what the second one pushed.
  await syncNow(device(first));
  await settled(device(first));
});

const EXPECTED = () => [
  { id: ids[1], title: TITLES[1], completed: true },
  { id: ids[0], title: RENAMED_BY_A, completed: true },
];

step("A, B and a native CLI replica list the same: 1 renamed (A) and completed (B), 2 completed, 3 gone", async () => {
  const [listA, listB] = [await listOf(A), await listOf(B)];
  assert.deepEqual(listA, EXPECTED(), "device A");
  assert.deepEqual(listB, EXPECTED(), "device B");
  assert.deepEqual(cliList("native.db"), EXPECTED(), "CLI replica");
});

step("reload B: same list, nothing pending", async () => {
  await B.page.reload();
  await B.page.waitForSelector("html[data-ready=true]", { timeout: WAIT_MS });
  assert.deepEqual(await listOf(B), EXPECTED());
  assert.equal((await panelOf(B)).pending, "0");
  await settled(B);
  assert.deepEqual(await listOf(B), EXPECTED());
});

step("a second tab of device B shares its database: writes show in both tabs at once, and B keeps it after the tab closes", async () => {
  const tab = await B.context.newPage();
  watch(tab, "B, second tab");
  const second = { name: "B", page: tab, context: B.context };
  await tab.goto(pageUrl("B"));
  await tab.waitForSelector("html[data-ready=true]", { timeout: WAIT_MS });
  assert.deepEqual(await listOf(second), EXPECTED(), "the second tab lists B's todos");
  const title = "added in B's second tab";
  await addTodo(second, title);
  await until("B's first tab to show the second tab's todo", async () => (await listOf(B)).some((t) => t.title === title));
  const id = (await listOf(B)).find((t) => t.title === title).id;
  await deleteTodo(B, id);
  await until("the second tab to drop it", async () => !(await listOf(second)).some((t) => t.id === id));
  await tab.close();
  await syncNow(B);
  assert.deepEqual(await listOf(B), EXPECTED());
});

step("a ?url= link opens a database of its own (writes there never reach the device's); without the config key the page is local-only", async () => {
  const tab = await A.context.newPage();
  watch(tab, "A, ?url= tab");
  const other = { name: "A via ?url=", page: tab };
  try {
    // The same server spelled differently: a database of its own, which pulls the server's todos.
    await open({ ...other, name: "A" }, `&url=${encodeURIComponent(`${SERVER}/`)}`);
    assert.match(await tab.locator("#device-name").textContent(), /own database/);
    await settled(other);
    assert.deepEqual(await listOf(other), EXPECTED());
    await setOnline(other, false);
    await addTodo(other, "written through a ?url= link");
    // A's own database (open in A's first tab) neither shows it nor went offline.
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await listOf(A), EXPECTED(), "A's database is untouched");
    assert.equal((await panelOf(A)).pending, "0");
    assert.equal(await onlineSwitch(A).getAttribute("aria-checked"), "true");

    // No key in the address: the page cannot read the config, so it syncs with nothing.
    const keyless = new URL(pageUrl("keyless"));
    keyless.hash = "";
    await tab.goto(keyless.href);
    await tab.waitForSelector("html[data-ready=true]", { timeout: WAIT_MS });
    const panel = await panelOf(other);
    assert.equal(panel.server, "none: local only");
    assert.equal(panel.state, "local");
  } finally {
    await tab.close();
  }
});

step("restart both browsers: the same lists from each device's own storage, nothing pending", async () => {
  await Promise.all([A.context.close(), B.context.close()]);
  [A, B] = await Promise.all([launch("A"), launch("B")]);
  for (const d of [A, B]) {
    // `?url=` opens the device local-only: the list can only come from its OPFS database.
    await open(d, "&url=");
    assert.deepEqual(await listOf(d), EXPECTED(), `${d.name}, local-only`);
    const panel = await panelOf(d);
    assert.equal(panel.pending, "0", d.name);
    assert.equal(panel.state, "local", d.name);
    assert.equal(panel.server, "none: local only", d.name);
    await open(d);
    assert.deepEqual(await listOf(d), EXPECTED(), `${d.name}, synced`);
    await syncNow(d);
    await settled(d);
    assert.deepEqual(await listOf(d), EXPECTED(), `${d.name}, after a sync`);
  }
});

step("auto-sync: a todo added on A shows up on B without a click", async () => {
  await addTodo(A, LATE_TITLE);
  await settled(A);
  await until("B to show A's new todo", async () => (await listOf(B)).some((t) => t.title === LATE_TITLE));
  await settled(B);
  assert.deepEqual(await listOf(B), await listOf(A));
});

step("lists (schema v2, a live query): A adds a list and a todo in it; B sees the count; completing it on B clears both", async () => {
  const input = A.page.getByLabel("New list");
  await input.fill("Home");
  await input.press("Enter");
  await until("A to show the list", async () => JSON.stringify(await listsOf(A)) === JSON.stringify([{ name: "Home", open: "0 open" }]));
  await A.page.getByLabel("In list").selectOption({ label: "Home" });
  await addTodo(A, "Water the plants");
  await until("A's live count", async () => JSON.stringify(await listsOf(A)) === JSON.stringify([{ name: "Home", open: "1 open" }]));
  await settled(A);
  await until("B's live count, pulled by auto-sync", async () =>
    JSON.stringify(await listsOf(B)) === JSON.stringify([{ name: "Home", open: "1 open" }]),
  );
  const plants = (await listOf(B)).find((t) => t.title === "Water the plants");
  await completeTodo(B, plants.id);
  await until("B's count after completing", async () => JSON.stringify(await listsOf(B)) === JSON.stringify([{ name: "Home", open: "0 open" }]));
  await settled(B);
  await until("A's count after B's change", async () => JSON.stringify(await listsOf(A)) === JSON.stringify([{ name: "Home", open: "0 open" }]));
  // The native CLI (no schema: the built-in todos table) leaves list_id alone and still lists the todo.
  assert.ok(cliList("native-lists.db").some((t) => t.id === plants.id && t.completed));
});

step("private notes (end-to-end encrypted): A adds one, B reads it; the server's table, shown beside it, holds only ciphertext", async () => {
  const secret = `Door code 4711 (${ORDER})`;
  const input = A.page.getByLabel("New private note");
  await input.fill(secret);
  await input.press("Enter");
  await until("A to show the note", async () => (await notesOf(A)).some((n) => n.plain === secret));
  await settled(A);
  await until("B to show the note in clear, pulled by auto-sync", async () => (await notesOf(B)).some((n) => n.plain === secret));
  for (const d of [A, B]) {
    const sealed = await until(`${d.name} to show the server's cell beside the note`, async () =>
      (await notesOf(d)).find((n) => n.plain === secret)?.sealed,
    );
    assert.match(sealed, /^e1\.[A-Za-z0-9_-]+$/, `${d.name} shows ${sealed}`);
    assert.ok(!sealed.includes("4711") && !sealed.includes("Door"), sealed);
  }
  const cells = await serverColumn("SELECT body FROM notes");
  assert.ok(cells.length >= 1, "the server has the note");
  for (const cell of cells) {
    assert.match(cell, /^e1\./, "every server cell is sealed");
    assert.ok(!cell.includes("4711") && !cell.includes("Door"), cell);
  }
  assert.ok(cells.includes((await notesOf(A)).find((n) => n.plain === secret).sealed), "the page shows the server's own cell");
});

step("an older app version (?schema=1, no list per todo) syncs with them and shows the column it does not know", async () => {
  const tab = await A.context.newPage();
  watch(tab, "old version");
  const old = { name: "old", page: tab };
  try {
    await open(old, "&schema=1");
    assert.equal(await tab.locator("#schema-version").textContent(), "schema v1");
    assert.equal(await tab.getByLabel("In list").isHidden(), true, "no list picker in version 1");
    await syncNow(old);
    await settled(old);
    assert.deepEqual(await listOf(old), await listOf(A), "the same todos as version 2");
    // The lists sync too; version 1 has no count (no list_id).
    assert.deepEqual(await listsOf(old), [{ name: "Home", open: null }]);
    assert.equal(await tab.locator("#unknown").textContent(), "todos.list_id");
    assert.equal(await tab.locator("#unknown-row").isVisible(), true);
    assert.equal(await A.page.locator("#unknown-row").isVisible(), false, "version 2 knows every column");
    await addTodo(old, "From the old version");
    await settled(old);
    await until("B to show the old version's todo", async () =>
      (await listOf(B)).some((t) => t.title === "From the old version"),
    );
    await settled(B);
    // Its count in version 2 is unchanged: the todo has no list.
    assert.deepEqual(await listsOf(B), [{ name: "Home", open: "0 open" }]);
  } finally {
    await tab.close();
  }
});

step("screenshots of both devices", async () => {
  await mkdir(SHOTS, { recursive: true });
  const shots = {};
  for (const d of [A, B]) {
    // No focus ring in the picture (the last input typed into keeps it).
    await d.page.evaluate(() => document.activeElement?.blur());
    await d.page.evaluate(() => document.fonts.ready);
    const file = join(SHOTS, `device-${d.name.toLowerCase()}.png`);
    await d.page.screenshot({ path: file, fullPage: true });
    shots[d.name] = (await readFile(file)).toString("base64");
  }
  // Both devices side by side, for the README.
  const page = await A.context.newPage();
  watch(page, "screenshot");
  await page.setViewportSize({ width: 2 * VIEWPORT.width + 72, height: 400 });
  await page.setContent(`<!doctype html>
    <style>
      body { margin: 0; background: #dcd8cc; font: 600 15px system-ui, sans-serif; color: #3a423e; }
      .both { display: flex; gap: 24px; padding: 20px 24px 24px; width: max-content; background: #dcd8cc; }
      figure { margin: 0; }
      figcaption { margin: 0 0 8px 4px; }
      img { display: block; width: ${VIEWPORT.width}px; border-radius: 14px; box-shadow: 0 2px 12px rgb(0 0 0 / 18%); }
    </style>
    <div class="both">
      <figure><figcaption>Device A</figcaption><img src="data:image/png;base64,${shots.A}"></figure>
      <figure><figcaption>Device B</figcaption><img src="data:image/png;base64,${shots.B}"></figure>
    </div>`);
  await page.locator(".both").screenshot({ path: join(SHOTS, "both.png") });
  await page.close();
});

step("no errors in any page's or worker's console", async () => {
  assert.deepEqual(consoleErrors, []);
  assert.deepEqual(workerErrors.filter((text) => text.includes(PANIC)), [], "a panic reached a worker's console");
  assert.deepEqual(workerErrors.filter((text) => !text.includes(WORKER_PROBE)), []);
});

// ---- run ----

const limit = setTimeout(() => {
  console.error(`e2e: the run took longer than ${RUN_LIMIT_MS / 1000} s`);
  console.log(`e2e: 0 passed, 1 failed`);
  process.exit(1);
}, RUN_LIMIT_MS);
limit.unref();

console.log(`web demo e2e at ${PAGE.href}, server ${SERVER}, order ${ORDER}`);
let passed = 0;
let failed = 0;
try {
  for (const { name, fn } of steps) {
    const started = Date.now();
    try {
      await fn();
      passed += 1;
      console.log(`ok   ${name} (${Date.now() - started} ms)`);
    } catch (e) {
      failed += 1;
      console.log(`FAIL ${name} (${Date.now() - started} ms)\n${e && e.stack ? e.stack : e}`);
      const errors = [...consoleErrors, ...workerErrors];
      if (errors.length > 0) console.log(`console errors so far:\n  ${errors.join("\n  ")}`);
      for (const d of [A, B]) {
        if (!d) continue;
        const file = join(SHOTS, `failure-${d.name.toLowerCase()}.png`);
        await mkdir(SHOTS, { recursive: true });
        await d.page.screenshot({ path: file, fullPage: true }).then(
          () => console.log(`  screenshot of ${d.name}: ${file}`),
          () => {},
        );
      }
      break;
    }
  }
} finally {
  await Promise.allSettled([A?.context.close(), B?.context.close()]);
}
const skipped = steps.length - passed - failed;
if (skipped > 0) console.log(`(${skipped} later step(s) not run: they build on the failed one)`);
console.log(`e2e: ${passed} passed, ${failed + skipped} failed`);
process.exit(failed + skipped === 0 ? 0 : 1);
