// Browser latencies of the built npm package (bindings-wasm/pkg) in Debian's
// headless Chromium, driven by playwright-core: the page imports the package
// as an app does, opens a database on OPFS (in the package's Worker) and
// times `todos.add` and `todos.listActive()` as the page sees them (the
// message round trip to the Worker included), then the same adds on an
// in-memory database. Run by erth-bench:
//
//   ERTH_PKG_DIR          the built package
//   ERTH_BENCH_NODE_DIR   a directory whose node_modules holds playwright-core
//   ERTH_CHROMIUM         the Chromium binary
//   --work DIR --adds N --list-rows N --list-reps N
//
// Prints one JSON object: samples in milliseconds and the browser version.
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    work: { type: 'string' },
    adds: { type: 'string' },
    'list-rows': { type: 'string' },
    'list-reps': { type: 'string' },
  },
});
const PKG = resolve(process.env.ERTH_PKG_DIR);
const require = createRequire(join(process.env.ERTH_BENCH_NODE_DIR, 'package.json'));
const { chromium } = require('playwright-core');

const PAGE = '<!doctype html><meta charset="utf-8"><title>erth-sync bench</title><p>erth-sync bench</p>';
const MIME = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/') return res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
  const file = normalize(join(PKG, decodeURIComponent(path.replace(/^\/pkg\//, ''))));
  if (!path.startsWith('/pkg/') || !file.startsWith(PKG + sep)) return res.writeHead(404).end();
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'content-type': MIME[extname(file)] ?? 'application/octet-stream' }).end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((ok) => server.listen(0, '127.0.0.1', ok));

const context = await chromium.launchPersistentContext(join(args.work, 'profile'), {
  executablePath: process.env.ERTH_CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`http://127.0.0.1:${server.address().port}/`);
  const out = await page.evaluate(async ({ adds, listRows, listReps }) => {
    const { ErthDb } = await import('/pkg/index.js');
    const db = await ErthDb.open({ name: 'bench', storage: 'opfs' });
    const warm = 5;
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
    return { add, list, memoryAdd };
  }, { adds: Number(args.adds), listRows: Number(args['list-rows']), listReps: Number(args['list-reps']) });
  const agent = await page.evaluate(() => navigator.userAgent);
  out.version = `Chromium ${/Chrome\/([\d.]+)/.exec(agent)?.[1] ?? 'unknown'} (headless)`;
  console.log(JSON.stringify(out));
} finally {
  await context.close();
  server.close();
}
