// What the package's browser tests (run.mjs, bundlers.mjs) share: their
// environment (set by `cargo xtask test wasm`), Chromium's flags and
// playwright-core.

import { createRequire } from "node:module";
import { join } from "node:path";

/** The environment variable `name`; exits with a hint when it is missing. */
export function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`e2e: ${name} is not set: run this through \`cargo xtask test wasm\``);
    process.exit(2);
  }
  return value;
}

/** Chromium flags that work on these machines (see TOOLCHAIN.md). */
export const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** playwright-core's `chromium`, from `ERTH_NODE_MODULES`. */
export function playwrightChromium() {
  return createRequire(join(env("ERTH_NODE_MODULES"), "noop.js"))("playwright-core").chromium;
}
