// What the browser tests share: the environment, Chromium, and steps that
// print one line each and stop the run (with a screenshot) on the first
// failure.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

export function env(k) {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
}

export async function open() {
  const shots = env("SCREENSHOTS");
  mkdirSync(shots, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    // Root in a container needs --no-sandbox; the rest keep Chromium off
    // the (closed) network.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  const problems = [];
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.setDefaultTimeout(20_000);
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    // CSP violations are console errors; failed requests the tests make on
    // purpose (4xx) are not problems.
    if (m.type() === "error" && !/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) {
      problems.push(`console: ${m.text()}`);
    }
  });
  let n = 0;
  const shot = (name) => page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  async function step(name, f) {
    n += 1;
    const t = Date.now();
    try {
      await f();
    } catch (e) {
      await shot(`failed-step-${n}`).catch(() => {});
      console.error(`FAIL step ${n}: ${name}\n${e.stack ?? e}`);
      await browser.close();
      process.exit(1);
    }
    console.log(`ok ${n} ${name} (${Date.now() - t} ms)`);
  }
  async function until(what, f, timeout = 60_000) {
    const end = Date.now() + timeout;
    for (;;) {
      const v = await f();
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await page.waitForTimeout(200);
    }
  }
  async function finish() {
    await step("no page errors and no CSP violations", async () => {
      if (problems.length) throw new Error(problems.join("\n"));
    });
    await browser.close();
    console.log(`all ${n} steps passed; screenshots in ${shots}`);
  }
  return { page, step, shot, until, finish };
}
