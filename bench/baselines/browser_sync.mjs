// A fresh browser device's first sync, and reads from the owner tab and a
// second tab, with the built npm package (bindings-wasm/pkg) in Debian's
// headless Chromium (served and launched by browser_page.mjs).
//
// For each size (a tursodb server that erth-bench filled with that many
// todos): tab A opens a new OPFS database on the server and times
// `db.sync()`, the first pull of every row; meanwhile tab A and tab B (a
// second page of the same origin, which joins as a client) each run point
// reads by id back to back (a 2 ms pause between two), and the time of
// every read is kept: the longest is the pull's worst read stall. The RSS
// of the browser's renderer processes (the tabs and the package's Worker;
// /proc, every 25 ms) is sampled through the pull: the peak is reported;
// after the pull, the package Worker's own heap (JavaScript and
// WebAssembly, `performance.measureUserAgentSpecificMemory()`, which runs
// a garbage collection first). Each size runs in a browser of its own.
//
// The floor of the same pull, in the same profile: the official SQLite
// WASM build (`@sqlite.org/sqlite-wasm`) in a dedicated Worker on its OPFS
// sahpool VFS, in erth's pragmas, fetches the same rows from the same
// server as plain SELECT pages over Hrana (keyset on `_seq`, the page size
// erth-bench gives) and inserts them into a plain table (the rows' columns,
// primary key `id`, WITHOUT ROWID) in one transaction: fetching (the
// response read and parsed) and inserting are timed apart and add up to the
// floor. Fetch and insert do not overlap: that is the floor's own choice.
//
// Reads (on the first size's database, after its pull): a point read by id
// and a 100-row query (by id range), each `reads` times from tab A (the
// owner) and from tab B (a client, through the owner), in turn; floors: a
// bare postMessage round trip to a Worker that does nothing, and the same
// two queries on the floor's database in the sqlite-wasm Worker, both timed
// in the page.
//
//   --work DIR --job JSON
//     JSON: { sizes: [{ url, rows, probe }], reads, ids: [id...],
//             floor: { ddl: [sql...], pragmas: [sql...], select: sql, insert: sql,
//                      pageRows, point: sql, range: sql },
//             point: sql, range: sql }
//     (`select` takes the cursor and the page size; `point` and `range` take an id)
//
// Prints one JSON object; times in milliseconds.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { browserVersion, launch, openPage, serve, SQLITE_WASM_PACKAGE } from './browser_page.mjs';

const { values: args } = parseArgs({ options: { work: { type: 'string' }, job: { type: 'string' } } });
const job = JSON.parse(args.job);

const FLOOR_WORKER = `
import sqlite3InitModule from '/sqlite-wasm/index.mjs';
let sqlite3, pool;
const dbs = new Map();
function cell(v) {
  switch (v.type) {
    case 'null': return null;
    case 'integer': { const n = Number(v.value); return Number.isSafeInteger(n) ? n : BigInt(v.value); }
    case 'float': return v.value;
    case 'text': return v.value;
    case 'blob': return Uint8Array.from(atob(v.base64), (c) => c.charCodeAt(0));
    default: throw new Error('unknown Hrana value type ' + v.type);
  }
}
async function execute(url, sql, args) {
  const res = await fetch(url + '/v2/pipeline', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ requests: [{ type: 'execute', stmt: { sql, args } }] }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error('HTTP ' + res.status + ': ' + text.slice(0, 200));
  const r = JSON.parse(text).results[0];
  if (r.type !== 'ok') throw new Error(JSON.stringify(r.error));
  return { rows: r.response.result.rows, bytes: text.length };
}
const int = (n) => ({ type: 'integer', value: String(n) });
self.onmessage = async ({ data }) => {
  try {
    if (data.op === 'noop') return self.postMessage({ ok: true });
    if (data.op === 'init') {
      sqlite3 = await sqlite3InitModule();
      pool = await sqlite3.installOpfsSAHPoolVfs({ name: 'pull-sahpool', directory: '.pull-sahpool', initialCapacity: 8, clearOnInit: true });
      return self.postMessage({ ok: true, value: sqlite3.version.libVersion });
    }
    if (data.op === 'pull') {
      const { url, name, floor } = data;
      const db = new pool.OpfsSAHPoolDb('/' + name + '.sqlite3');
      for (const sql of [...floor.pragmas, ...floor.ddl]) db.exec(sql);
      dbs.set(name, db);
      const stmt = db.prepare(floor.insert);
      let fetchMs = 0, insertMs = 0, bytes = 0, rows = 0, cursor = 0, requests = 0;
      db.exec('BEGIN');
      for (;;) {
        let t = performance.now();
        const page = await execute(url, floor.select, [int(cursor), int(floor.pageRows)]);
        fetchMs += performance.now() - t;
        bytes += page.bytes;
        requests++;
        if (page.rows.length === 0) break;
        t = performance.now();
        for (const row of page.rows) {
          // The last column is _seq, the cursor; the rest are the row.
          stmt.bind(row.slice(0, -1).map(cell)).stepReset();
        }
        insertMs += performance.now() - t;
        rows += page.rows.length;
        cursor = Number(page.rows[page.rows.length - 1].at(-1).value);
        if (page.rows.length < floor.pageRows) break;
      }
      stmt.finalize();
      const t = performance.now();
      db.exec('COMMIT');
      insertMs += performance.now() - t;
      return self.postMessage({ ok: true, value: { fetchMs, insertMs, bytes, rows, requests } });
    }
    if (data.op === 'query') {
      return self.postMessage({ ok: true, value: dbs.get(data.name).selectObjects(data.sql, data.params).length });
    }
    throw new Error('unknown op ' + data.op);
  } catch (e) {
    self.postMessage({ ok: false, error: String(e && e.message || e) });
  }
};
`;

// The page's side: erth's database as an app opens it, and a client for the floor's Worker.
const PAGE_SETUP = () => {
  window.bench = {
    db: null,
    stop: false,
    async open(name, url) {
      this.stop = false;
      const { ErthDb } = await import('/pkg/index.js');
      this.db = await ErthDb.open({ name, storage: 'opfs', url });
    },
    // Point reads back to back until `stop`: each one's time, in ms.
    async readLoop(sql, id) {
      const times = [];
      while (!this.stop) {
        const t = performance.now();
        const row = await this.db.getOptional(sql, [id]);
        times.push(performance.now() - t);
        if (row && row.id !== id) throw new Error(`read ${row.id}, not ${id}`);
        await new Promise((ok) => setTimeout(ok, 2));
      }
      return times;
    },
    async timed(reps, fn) {
      for (let i = 0; i < 5; i++) await fn(i);
      const times = [];
      for (let i = 0; i < reps; i++) {
        const t = performance.now();
        await fn(i);
        times.push(performance.now() - t);
      }
      return times;
    },
    worker: null,
    call(message) {
      if (!this.worker) {
        this.worker = new Worker('/floor-worker.mjs', { type: 'module' });
        this.worker.onmessage = ({ data }) => this.next(data);
        this.worker.onerror = (e) => this.next({ ok: false, error: `floor worker: ${e.message}` });
      }
      return new Promise((ok, fail) => {
        this.next = (data) => (data.ok ? ok(data.value) : fail(new Error(data.error)));
        this.worker.postMessage(message);
      });
    },
  };
};

/** The summed RSS (bytes) of the renderer processes under the browser on `profile`. */
function rendererRss(profile) {
  const parent = new Map();
  const cmdline = new Map();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      parent.set(pid, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      cmdline.set(pid, readFileSync(`/proc/${pid}/cmdline`, 'latin1'));
    } catch {
      // The process ended meanwhile.
    }
  }
  const roots = [...cmdline].filter(([, c]) => c.includes(`--user-data-dir=${profile}`) && !c.includes('--type=')).map(([p]) => p);
  const under = (pid) => {
    for (let p = pid; p && p !== '0' && p !== '1'; p = parent.get(p)) if (roots.includes(p)) return true;
    return false;
  };
  let total = 0;
  for (const [pid, c] of cmdline) {
    if (!c.includes('--type=renderer') || !under(pid)) continue;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      // The process ended meanwhile.
    }
  }
  return total;
}

const { server, origin } = await serve({ '/floor-worker.mjs': FLOOR_WORKER });
const out = { sizes: [] };
try {
  for (const [i, size] of job.sizes.entries()) {
    // A browser of its own per size, so that each size's memory starts from the same place.
    const profile = join(args.work, `profile-${size.rows}`);
    const context = await launch(profile);
    try {
      out.sizes.push(await atSize(context, profile, size, i === 0));
    } finally {
      await context.close();
    }
  }
  console.log(JSON.stringify(out));
} finally {
  server.close();
}

/** One size's pull, its floor, and (`reads`) the reads. */
async function atSize(context, profile, size, reads) {
  const a = await openPage(context, origin);
  const b = await context.newPage();
  b.on('pageerror', (e) => console.error(`page error (tab B): ${e.message}`));
  await b.goto(`${origin}/`);
  for (const tab of [a, b]) await tab.evaluate(PAGE_SETUP);
  if (!(await a.evaluate(() => crossOriginIsolated))) throw new Error('the bench page is not cross-origin isolated');
  out.version = await browserVersion(a);
  out.package = SQLITE_WASM_PACKAGE;
  out.sqliteVersion = await a.evaluate(() => bench.call({ op: 'init' }));

  const name = `sync-${size.rows}`;
  await a.evaluate(({ name, url }) => bench.open(name, url), { name, url: size.url });
  await b.evaluate(({ name, url }) => bench.open(name, url), { name, url: size.url });
  const rssBefore = rendererRss(profile);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => { rssPeak = Math.max(rssPeak, rendererRss(profile)); }, 25);
  const readsA = a.evaluate(({ sql, id }) => bench.readLoop(sql, id), { sql: job.point, id: size.probe });
  const readsB = b.evaluate(({ sql, id }) => bench.readLoop(sql, id), { sql: job.point, id: size.probe });
  let pull;
  try {
    pull = await a.evaluate(async () => {
      const t = performance.now();
      const report = await bench.db.sync();
      const ms = performance.now() - t;
      bench.stop = true;
      return { ms, pulled: report.pulled };
    });
  } finally {
    clearInterval(sampler);
  }
  // Both tabs' reads end before the count below, which is not part of the pull.
  await b.evaluate(() => { bench.stop = true; });
  const [timesA, timesB] = [await readsA, await readsB];
  rssPeak = Math.max(rssPeak, rendererRss(profile));
  const held = await a.evaluate(async () => (await bench.db.get('SELECT count(*) AS n FROM todos')).n);
  if (pull.pulled !== size.rows || held !== size.rows) {
    throw new Error(`the pull brought ${pull.pulled} rows, the table holds ${held}, not ${size.rows}`);
  }
  // The package Worker's own heap (JavaScript and WebAssembly), after a garbage collection.
  const workerHeap = await a.evaluate(async () => {
    const { breakdown } = await performance.measureUserAgentSpecificMemory();
    return breakdown
      .filter((b) => b.attribution.some((x) => x.scope === 'DedicatedWorkerGlobalScope' && x.url.endsWith('/pkg/worker.js')))
      .reduce((sum, b) => sum + b.bytes, 0);
  });
  const result = { rows: size.rows, ms: pull.ms, readsA: timesA, readsB: timesB, rssBefore, rssPeak, workerHeap };

  const ids = job.ids;
  if (reads) {
    const point = (tab) => tab.evaluate(({ reps, sql, ids }) => bench.timed(reps, (k) => bench.db.get(sql, [ids[k % ids.length]])), { reps: job.reads, sql: job.point, ids });
    const range = (tab) => tab.evaluate(({ reps, sql, ids }) => bench.timed(reps, async (k) => {
      const rows = await bench.db.getAll(sql, [ids[k % ids.length]]);
      if (rows.length !== 100) throw new Error(`the range read returned ${rows.length} rows`);
    }), { reps: job.reads, sql: job.range, ids });
    result.reads = { pointA: await point(a), pointB: await point(b), rangeA: await range(a), rangeB: await range(b) };
  }
  await b.evaluate(() => bench.db.close());
  await a.evaluate(() => bench.db.close());

  const floorName = `floor-${size.rows}`;
  result.floor = await a.evaluate(({ url, name, floor }) => bench.call({ op: 'pull', url, name, floor }), { url: size.url, name: floorName, floor: job.floor });
  if (result.floor.rows !== size.rows) throw new Error(`the floor fetched ${result.floor.rows} rows, not ${size.rows}`);
  if (reads) {
    result.reads.roundTrip = await a.evaluate((reps) => bench.timed(reps, () => bench.call({ op: 'noop' })), job.reads);
    const floorQuery = (sql, want) => a.evaluate(({ reps, sql, ids, name, want }) => bench.timed(reps, async (k) => {
      const n = await bench.call({ op: 'query', name, sql, params: [ids[k % ids.length]] });
      if (n !== want) throw new Error(`the floor's query returned ${n} rows, not ${want}`);
    }), { reps: job.reads, sql, ids, name: floorName, want });
    result.reads.floorPoint = await floorQuery(job.floor.point, 1);
    result.reads.floorRange = await floorQuery(job.floor.range, 100);
  }
  console.error(`browser_sync.mjs: ${size.rows} rows: erth ${Math.round(pull.ms)} ms, floor ${Math.round(result.floor.fetchMs + result.floor.insertMs)} ms`);
  return result;
}
