// Turso Sync (npm `@tursodatabase/sync`) on the benchmark's device-A/device-B
// scenario; the same steps as turso_sync.py (see there). The package is
// loaded from the cache directory named by ERTH_BENCH_NODE_DIR. Prints one
// JSON object of milliseconds per step.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    dir: { type: 'string' },
    rows: { type: 'string' },
    edits: { type: 'string' },
  },
});
const rows = Number(args.rows);
const edits = Number(args.edits);
const require = createRequire(join(process.env.ERTH_BENCH_NODE_DIR, 'package.json'));
const entry = require.resolve('@tursodatabase/sync');
const { connect } = await import(pathToFileURL(entry).href);
const pkg = JSON.parse(readFileSync(join(dirname(entry), '..', 'package.json'), 'utf8'));

const SCHEMA = 'CREATE TABLE IF NOT EXISTS todos (id TEXT PRIMARY KEY, title TEXT NOT NULL, ' +
  'is_completed INTEGER NOT NULL DEFAULT 0, is_deleted INTEGER NOT NULL DEFAULT 0, ' +
  'created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL)';
const pad = (i) => String(i).padStart(8, '0');
const out = {};
const timed = async (key, f) => {
  const t = performance.now();
  const r = await f();
  out[key] = performance.now() - t;
  return r;
};
const count = async (db, sql) => (await (await db.prepare(sql)).get()).n;

const a = await connect({ path: join(args.dir, 'a.db'), url: args.url });
await a.exec(SCHEMA);
await a.push();

const now = Date.now();
await timed('create_ms', async () => {
  const insert = await a.prepare('INSERT INTO todos VALUES (?, ?, ?, ?, ?, ?)');
  await a.exec('BEGIN');
  for (let i = 0; i < rows; i++) await insert.run(`todo-${pad(i)}`, `todo ${i}`, 0, 0, now, now);
  await a.exec('COMMIT');
});
await timed('push_ms', () => a.push());

const b = await timed('pull_ms', () => connect({ path: join(args.dir, 'b.db'), url: args.url }));
let got = await count(b, 'SELECT count(*) AS n FROM todos');
if (got !== rows) throw new Error(`device B has ${got} of ${rows} rows after bootstrap`);

const step = Math.max(1, Math.floor(rows / edits));
const update = await a.prepare('UPDATE todos SET title = ?, updated_at = ? WHERE id = ?');
for (let k = 0; k < edits; k++) await update.run(`edited ${k}`, now + 1, `todo-${pad(k * step)}`);
await timed('edit_push_ms', () => a.push());
await timed('edit_pull_ms', () => b.pull());
got = await count(b, "SELECT count(*) AS n FROM todos WHERE title LIKE 'edited %'");
if (got !== edits) throw new Error(`device B sees ${got} of ${edits} edits`);
await a.close();
await b.close();
out.version = `@tursodatabase/sync ${pkg.version} on Node ${process.version}`;
console.log(JSON.stringify(out));
