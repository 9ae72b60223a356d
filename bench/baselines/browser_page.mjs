// What the browser benchmarks share (`browser.mjs`, `browser_sync.mjs`): a
// static server on 127.0.0.1 for the built package (`/pkg/`), the official
// SQLite WASM build (`/sqlite-wasm/`) and the script's own files, served
// cross-origin isolated (COOP/COEP), which only makes Chromium's
// `performance.now()` resolution 5 µs instead of 100 µs (nothing the
// package or SQLite does depends on it); and Debian's headless Chromium
// driven by playwright-core on a persistent profile (OPFS needs one).
//
// Environment: ERTH_PKG_DIR (the built package), ERTH_BENCH_NODE_DIR (a
// directory whose node_modules holds playwright-core and
// @sqlite.org/sqlite-wasm), ERTH_CHROMIUM (the Chromium binary).
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize, resolve, sep } from 'node:path';

const PKG = resolve(process.env.ERTH_PKG_DIR);
const require = createRequire(join(process.env.ERTH_BENCH_NODE_DIR, 'package.json'));
const SQLITE_WASM = dirname(require.resolve('@sqlite.org/sqlite-wasm/package.json'));
const SQLITE_WASM_DIST = join(SQLITE_WASM, 'dist');
export const SQLITE_WASM_PACKAGE =
  `@sqlite.org/sqlite-wasm ${JSON.parse(await readFile(join(SQLITE_WASM, 'package.json'), 'utf8')).version}`;

const PAGE = '<!doctype html><meta charset="utf-8"><title>erth-sync bench</title><p>erth-sync bench</p>';
const MIME = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json' };
const ISOLATED = { 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' };

function inside(root, path, prefix) {
  const file = normalize(join(root, decodeURIComponent(path.slice(prefix.length))));
  return file.startsWith(root + sep) ? file : null;
}

/** Serves `/` (an empty page), `/pkg/…`, `/sqlite-wasm/…` and `scripts` ({ '/name.mjs': source }); resolves to the origin. */
export async function serve(scripts) {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const send = (type, body) => res.writeHead(200, { 'content-type': type, ...ISOLATED }).end(body);
    if (path === '/') return send('text/html', PAGE);
    if (Object.hasOwn(scripts, path)) return send('text/javascript', scripts[path]);
    const file = path.startsWith('/pkg/') ? inside(PKG, path, '/pkg/')
      : path.startsWith('/sqlite-wasm/') ? inside(SQLITE_WASM_DIST, path, '/sqlite-wasm/') : null;
    if (!file) return res.writeHead(404).end();
    try {
      send(MIME[extname(file)] ?? 'application/octet-stream', await readFile(file));
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  return { server, origin: `http://127.0.0.1:${server.address().port}` };
}

/** Headless Chromium on the persistent profile `profile`. */
export function launch(profile) {
  const { chromium } = require('playwright-core');
  return chromium.launchPersistentContext(profile, {
    executablePath: process.env.ERTH_CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** A page of `context` at `origin`, its errors printed. */
export async function openPage(context, origin) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(`${origin}/`);
  return page;
}

/** "Chromium N (headless)", from the page's user agent. */
export async function browserVersion(page) {
  const agent = await page.evaluate(() => navigator.userAgent);
  return `Chromium ${/Chrome\/([\d.]+)/.exec(agent)?.[1] ?? 'unknown'} (headless)`;
}
