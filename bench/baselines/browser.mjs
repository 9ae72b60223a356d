// Browser latencies of the built npm package (bindings-wasm/pkg) in Debian's
// headless Chromium, driven by playwright-core: the page imports the package
// as an app does, opens a database on OPFS (in the package's Worker) and
// times `todos.add`, `todos.listActive()` and `db.status()` as the page sees
// them (the message round trip to the Worker included), then the same adds
// on an in-memory database.
//
// The floor: the official SQLite WASM build (`@sqlite.org/sqlite-wasm`) in a
// dedicated Worker of its own on its OPFS sahpool VFS
// (`installOpfsSAHPoolVfs`), doing one-row INSERT transactions into the same
// table and indexes as erth's `todos` (DDL and INSERT come from erth-bench),
// timed in the page around the postMessage round trip as erth's add is, and
// inside the worker around BEGIN..COMMIT alone. Every mode in `--floor`
// (a list of pragmas) gets its own database file; the pragmas each database really runs with
// are read back and reported. A bare round trip to that worker (no SQLite)
// is timed too, so the page-side numbers can be split into message passing,
// SQLite work and the OPFS commit. Each measurement runs on its own, one
// after the other: interleaving them was tried and made each mode's commits
// queue behind the others' flushes on the same disk (the floor in erth's
// mode then took longer than erth's add).
//
// The page is served cross-origin isolated (COOP/COEP), which only makes
// Chromium's `performance.now()` resolution 5 µs instead of 100 µs; nothing
// the package or SQLite does depends on it.
//
// Run by erth-bench:
//
//   ERTH_PKG_DIR          the built package
//   ERTH_BENCH_NODE_DIR   a directory whose node_modules holds playwright-core
//                         and @sqlite.org/sqlite-wasm
//   ERTH_CHROMIUM         the Chromium binary
//   --work DIR --adds N --list-rows N --list-reps N --floor JSON
//     JSON: { ddl: [sql...], insert: sql, params: [...], count: sql,
//             modes: [{ name, pragmas: [sql...] }] }   ([] = sqlite-wasm's defaults)
//     (`params`: the INSERT's values, where the string "$id" is replaced by a fresh id
//     and "$title" by the todo's title)
//
// Prints one JSON object: samples in milliseconds and the browser version.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { browserVersion, launch, openPage, serve, SQLITE_WASM_PACKAGE } from './browser_page.mjs';

const { values: args } = parseArgs({
  options: {
    work: { type: 'string' },
    adds: { type: 'string' },
    'list-rows': { type: 'string' },
    'list-reps': { type: 'string' },
    floor: { type: 'string' },
  },
});
const floor = JSON.parse(args.floor);

// The floor's worker: sqlite-wasm on the sahpool VFS, one database per mode.
const FLOOR_WORKER = `
import sqlite3InitModule from '/sqlite-wasm/index.mjs';
let sqlite3, pool;
const dbs = new Map();
const statements = new Map();
function one(db, sql) {
  return db.selectValue(sql);
}
self.onmessage = async ({ data }) => {
  try {
    if (data.op === 'noop') return self.postMessage({ ok: true });
    if (data.op === 'init') {
      sqlite3 = await sqlite3InitModule();
      pool = await sqlite3.installOpfsSAHPoolVfs({ name: 'floor-sahpool', directory: '.floor-sahpool', initialCapacity: 16, clearOnInit: true });
      return self.postMessage({ ok: true, value: sqlite3.version.libVersion });
    }
    if (data.op === 'open') {
      const { mode, ddl, insert } = data;
      const db = new pool.OpfsSAHPoolDb('/floor-' + mode.name + '.sqlite3');
      for (const pragma of mode.pragmas) db.exec(pragma);
      for (const sql of ddl) db.exec(sql);
      dbs.set(mode.name, db);
      statements.set(mode.name, db.prepare(insert));
      const actual = {
        journal: one(db, 'PRAGMA journal_mode'),
        sync: ['OFF', 'NORMAL', 'FULL', 'EXTRA'][one(db, 'PRAGMA synchronous')],
        locking: one(db, 'PRAGMA locking_mode'),
      };
      return self.postMessage({ ok: true, value: actual });
    }
    if (data.op === 'add') {
      const db = dbs.get(data.mode);
      const stmt = statements.get(data.mode);
      const t = performance.now();
      db.exec('BEGIN IMMEDIATE');
      stmt.bind(data.params).stepReset();
      stmt.clearBindings();
      db.exec('COMMIT');
      return self.postMessage({ ok: true, value: performance.now() - t });
    }
    if (data.op === 'count') {
      return self.postMessage({ ok: true, value: dbs.get(data.mode).selectValue(data.sql) });
    }
    throw new Error('unknown op ' + data.op);
  } catch (e) {
    self.postMessage({ ok: false, error: String(e && e.message || e) });
  }
};
`;

const { server, origin } = await serve({ '/floor-worker.mjs': FLOOR_WORKER });
const context = await launch(join(args.work, 'profile'));
try {
  const page = await openPage(context, origin);
  const out = await page.evaluate(async ({ adds, listRows, listReps, floor }) => {
    if (!crossOriginIsolated) throw new Error('the bench page is not cross-origin isolated');
    const warm = 5;
    const { ErthDb } = await import('/pkg/index.js');
    const db = await ErthDb.open({ name: 'bench', storage: 'opfs' });
    const storage = (await db.status()).storage;
    if (storage !== 'opfs') throw new Error(`the database is on ${storage}, not OPFS`);
    for (let i = 0; i < warm; i++) await db.todos.add(`warm ${i}`);
    const add = [];
    for (let i = 0; i < adds; i++) {
      const t = performance.now();
      await db.todos.add(`todo ${i}`);
      add.push(performance.now() - t);
    }
    for (let i = warm + adds; i < listRows; i++) await db.todos.add(`fill ${i}`);
    await db.todos.listActive();
    const list = [];
    for (let i = 0; i < listReps; i++) {
      const t = performance.now();
      const todos = await db.todos.listActive();
      list.push(performance.now() - t);
      if (todos.length !== listRows) throw new Error(`listActive returned ${todos.length} of ${listRows}`);
    }
    // What the Worker computes for the "status" event it posts after writes
    // (worker.js queueStatus), timed here as one call.
    for (let i = 0; i < warm; i++) await db.status();
    const status = [];
    for (let i = 0; i < adds; i++) {
      const t = performance.now();
      await db.status();
      status.push(performance.now() - t);
    }
    await db.close();
    // The same adds without OPFS: what the Worker round trip and the engine cost.
    const mem = await ErthDb.open({ name: 'bench-memory', storage: 'memory' });
    for (let i = 0; i < warm; i++) await mem.todos.add(`warm ${i}`);
    const memoryAdd = [];
    for (let i = 0; i < adds; i++) {
      const t = performance.now();
      await mem.todos.add(`todo ${i}`);
      memoryAdd.push(performance.now() - t);
    }
    await mem.close();

    // The floor, in its own Worker.
    const worker = new Worker('/floor-worker.mjs', { type: 'module' });
    let next = null;
    worker.onmessage = ({ data }) => next(data);
    worker.onerror = (e) => next({ ok: false, error: `floor worker: ${e.message}` });
    const call = (message) => new Promise((ok, fail) => {
      next = (data) => (data.ok ? ok(data.value) : fail(new Error(data.error)));
      worker.postMessage(message);
    });
    const sqliteVersion = await call({ op: 'init' });
    const roundTrip = [];
    for (let i = 0; i < warm + adds; i++) {
      const t = performance.now();
      await call({ op: 'noop' });
      if (i >= warm) roundTrip.push(performance.now() - t);
    }
    const modes = [];
    for (const mode of floor.modes) {
      const actual = await call({ op: 'open', mode, ddl: floor.ddl, insert: floor.insert });
      const page = [];
      const inWorker = [];
      for (let i = 0; i < warm + adds; i++) {
        const params = floor.params.map((p) => (p === '$id' ? crypto.randomUUID() : p === '$title' ? `todo ${i}` : p));
        const t = performance.now();
        const w = await call({ op: 'add', mode: mode.name, params });
        if (i >= warm) {
          page.push(performance.now() - t);
          inWorker.push(w);
        }
      }
      const rows = await call({ op: 'count', mode: mode.name, sql: floor.count });
      if (rows !== warm + adds) throw new Error(`floor ${mode.name}: ${rows} rows, not ${warm + adds}`);
      modes.push({ name: mode.name, actual, page, worker: inWorker });
    }
    worker.terminate();
    return { add, list, memoryAdd, status, floor: { sqliteVersion, roundTrip, modes } };
  }, {
    adds: Number(args.adds), listRows: Number(args['list-rows']), listReps: Number(args['list-reps']), floor,
  });
  out.version = await browserVersion(page);
  out.floor.package = SQLITE_WASM_PACKAGE;
  console.log(JSON.stringify(out));
} finally {
  await context.close();
  server.close();
}
