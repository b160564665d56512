// The state strip of a 1,000,000-window backfill renders from bucketed
// counts: the page never asks for window rows beyond one page of failed
// windows, and the counts endpoint's size and time are printed. Run by
// tests/tests/suite/console.rs with TIDEMARK_URL, TOKEN, BACKFILL,
// SCREENSHOTS (and CHROMIUM). The same tenant's `grid10k` has 10,000
// windows for the grid.
import assert from "node:assert/strict";
import { env, open } from "./lib.mjs";

const URL = env("TIDEMARK_URL");
const id = env("BACKFILL");
const { page, step, shot, until, finish } = await open();

const api = [];
page.on("response", async (r) => {
  const u = new globalThis.URL(r.url());
  if (!u.pathname.startsWith("/api/v1/")) return;
  const timing = r.request().timing();
  const body = await r.body().catch(() => Buffer.alloc(0));
  api.push({ path: u.pathname, query: u.search, bytes: body.length, ms: timing.responseEnd });
});

await step("sign in and open the backfill", async () => {
  await page.goto(`${URL}/ui/`);
  await page.getByLabel("API token").fill(env("TOKEN"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Workflows" }).waitFor();
  await page.goto(`${URL}/ui/#/backfills/${id}`);
});

await step("the strip shows all 1,000,000 windows from 300 bucket counts", async () => {
  const bar = page.locator("svg.strip-bar");
  await bar.waitFor({ timeout: 60_000 });
  assert.equal(await bar.getAttribute("data-windows"), "1000000");
  assert.equal(await bar.getAttribute("data-buckets"), "300");
  assert.equal(await bar.locator("g.strip-col").count(), 300);
  // Every hundredth window failed: each column shows some red.
  assert.equal(await bar.locator("g.strip-col:has(rect.s-failed)").count(), 300);
  await until("the strip response", async () => api.some((a) => a.path.endsWith("/strip")));
  await shot("strip-million");
});

await step("no request loaded window rows beyond one page of failed windows", async () => {
  const windows = api.filter((a) => a.path.endsWith("/windows"));
  assert.ok(windows.every((a) => /state=failed/.test(a.query) && /limit=50/.test(a.query)), JSON.stringify(windows));
  const total = api.reduce((n, a) => n + a.bytes, 0);
  assert.ok(total < 512 * 1024, `the page fetched ${total} bytes of API responses`);
  const strip = api.find((a) => a.path.endsWith("/strip"));
  console.log(
    `strip of 1,000,000 windows in 300 buckets: ${strip.bytes} bytes, ${Math.round(strip.ms)} ms in the browser; all API responses ${total} bytes`,
  );
});

await step("clicking a column zooms into its time range", async () => {
  const before = api.filter((a) => a.path.endsWith("/strip")).length;
  await page.locator("svg.strip-bar g.strip-col").nth(150).click();
  await page.getByRole("button", { name: "Zoom out" }).waitFor();
  const zoomed = await until("the zoomed strip", async () => {
    const n = await page.locator("svg.strip-bar").getAttribute("data-windows");
    return n !== "1000000" ? Number(n) : null;
  });
  // One column of 300 held about 1,000,000 / 300 windows.
  assert.ok(zoomed > 3000 && zoomed < 3700, `zoomed into ${zoomed} windows`);
  // The response is recorded when it has finished, which may be after
  // the page drew it.
  const strip = await until("the zoomed strip's response", async () =>
    api.filter((a) => a.path.endsWith("/strip"))[before] ?? null,
  );
  assert.match(strip.query, /from=\d+&to=\d+/);
  console.log(`zoomed strip (${zoomed} windows): ${strip.bytes} bytes, ${Math.round(strip.ms)} ms in the browser`);
  await shot("strip-zoomed");
});

await step("the grid of 10,000 windows renders only the rows on screen", async () => {
  await page.goto(`${URL}/ui/#/workflows/grid10k/grid`);
  await page.getByLabel("Windows from").fill("2020-01-01");
  await page.getByRole("button", { name: "Show" }).click();
  await page.getByRole("status").filter({ hasText: "10000 windows" }).waitFor({ timeout: 60_000 });
  const rows = () => page.locator('.grid-rows [role="row"]');
  const rendered = await rows().count();
  assert.ok(rendered > 10 && rendered < 80, `${rendered} rows in the DOM`);
  // Newest first; scrolled to the end, the oldest window (2020-01-01 00:00 UTC).
  await page.locator(".grid-body").evaluate((el) => {
    el.scrollTop = el.scrollHeight;
  });
  await until("the last row", async () =>
    (await rows().last().textContent()).includes("2020-01-01 00:00:00"),
  );
  assert.ok((await rows().count()) < 80);
  assert.equal(await page.locator('.grid-rows [role="row"]').last().getAttribute("aria-rowindex"), "10001");
  await shot("grid-10k");
});

await finish();
