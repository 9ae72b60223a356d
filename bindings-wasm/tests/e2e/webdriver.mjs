// A minimal W3C WebDriver client (plain HTTP, https://www.w3.org/TR/webdriver2/)
// for the browsers Playwright cannot drive in their stock builds: Debian's
// Firefox ESR through geckodriver, and WebKitGTK through WebKitWebDriver.
// Used by engines.mjs. One driver process serves one session at a time.

import { spawn } from "node:child_process";
import { createServer } from "node:net";

/** A free TCP port on 127.0.0.1. */
export async function freePort() {
  const server = createServer();
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  const { port } = server.address();
  await new Promise((ok) => server.close(ok));
  return port;
}

/** A running driver (geckodriver, WebKitWebDriver) on 127.0.0.1. */
export class Driver {
  #child;
  #log = [];

  constructor(child, url) {
    this.#child = child;
    this.url = url;
  }

  /**
   * Starts `command` with `args(port)` and waits until its `/status` answers.
   * `group`: run it in a process group of its own and stop the whole group
   * (for wrappers such as xvfb-run, whose children outlive a plain kill).
   */
  static async start(command, args, { env = process.env, timeoutMs = 30000, group = false } = {}) {
    const port = await freePort();
    const child = spawn(command, args(port), { env, stdio: ["ignore", "pipe", "pipe"], detached: group });
    child.group = group;
    const driver = new Driver(child, `http://127.0.0.1:${port}`);
    const keep = (chunk) => {
      driver.#log.push(String(chunk));
      if (driver.#log.length > 200) driver.#log.shift();
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const exited = new Promise((resolve) => child.once("exit", (code) => resolve(code)));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const early = await Promise.race([exited, new Promise((r) => setTimeout(() => r(undefined), 100))]);
      if (early !== undefined) throw new Error(`${command} exited (${early}) before answering:\n${driver.log()}`);
      try {
        const res = await fetch(`${driver.url}/status`);
        if (res.ok) return driver;
      } catch {
        // Not listening yet.
      }
      if (Date.now() > deadline) {
        driver.stop();
        throw new Error(`${command} did not answer on ${driver.url} within ${timeoutMs} ms:\n${driver.log()}`);
      }
    }
  }

  /** The driver's recent output (for failure messages). */
  log() {
    return this.#log.join("").split("\n").slice(-40).join("\n");
  }

  /** A new session with `capabilities` (the `alwaysMatch` object). */
  async session(capabilities) {
    const value = await request(this.url, "POST", "/session", { capabilities: { alwaysMatch: capabilities } });
    return new Session(this.url, value.sessionId);
  }

  stop() {
    try {
      if (this.#child.group) process.kill(-this.#child.pid, "SIGTERM");
      else this.#child.kill("SIGTERM");
    } catch {
      // Already gone.
    }
  }
}

async function request(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`WebDriver ${method} ${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 300)}`);
  }
  if (!res.ok || parsed?.value?.error) {
    const { error, message } = parsed?.value ?? {};
    throw new Error(`WebDriver ${method} ${path}: ${error ?? res.status}: ${message ?? text.slice(0, 300)}`);
  }
  return parsed.value;
}

/** One browser session: windows (tabs) and scripts in the current one. */
export class Session {
  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  #call(method, path, body) {
    return request(this.base, method, `/session/${this.id}${path}`, body);
  }

  goto(url) {
    return this.#call("POST", "/url", { url });
  }

  refresh() {
    return this.#call("POST", "/refresh", {});
  }

  /** The current window's handle. */
  window() {
    return this.#call("GET", "/window");
  }

  /** Opens a new tab and returns its handle (the current window does not change). */
  async newTab() {
    return (await this.#call("POST", "/window/new", { type: "tab" })).handle;
  }

  switchTo(handle) {
    return this.#call("POST", "/window", { handle });
  }

  /** Closes the current window; switch to another before the next command. */
  closeWindow() {
    return this.#call("DELETE", "/window");
  }

  /**
   * Runs `fn(...args)` (an async function, serialized as source) in the
   * current window and returns its JSON result; a throw becomes an Error here.
   */
  async run(fn, ...args) {
    const script =
      "const done = arguments[arguments.length - 1];" +
      `Promise.resolve().then(() => (${fn})(...Array.from(arguments).slice(0, -1)))` +
      ".then((value) => done({ ok: true, value: value === undefined ? null : value }), " +
      "(e) => done({ ok: false, error: String((e && e.stack) || e) + (e && e.code ? ` (code ${e.code})` : '') }));";
    const out = await this.#call("POST", "/execute/async", { script, args });
    if (!out?.ok) throw new Error(`in the page: ${out?.error}`);
    return out.value;
  }

  async setScriptTimeout(ms) {
    await this.#call("POST", "/timeouts", { script: ms });
  }

  /** Ends the session (the browser quits). */
  async end() {
    await this.#call("DELETE", "");
  }
}
