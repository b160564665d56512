// The backfill page's "Verify outputs" button, in headless Chromium
// against a real daemon whose backfill published object-storage outputs.
// Run by tests/tests/suite/console.rs with TIDEMARK_URL, TOKEN, BACKFILL,
// TAMPER (an object of the backfill's second window, on disk), SCREENSHOTS
// (and CHROMIUM). The first check finds everything consistent; after the
// test deletes TAMPER behind Tidemark's back, the second names it.
import assert from "node:assert/strict";
import { unlinkSync } from "node:fs";
import { env, open } from "./lib.mjs";

const URL = env("TIDEMARK_URL");
const id = env("BACKFILL");
const { page, step, shot, finish } = await open();

const verifies = [];
page.on("request", (r) => {
  if (r.method() === "POST" && r.url().endsWith(`/api/v1/backfills/${id}/verify`)) verifies.push(r.url());
});
const section = page.getByRole("region", { name: "Output consistency" });
const summary = section.getByRole("status");

await step("sign in and open the backfill", async () => {
  await page.goto(`${URL}/ui/`);
  await page.getByLabel("API token").fill(env("TOKEN"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Workflows" }).waitFor();
  await page.goto(`${URL}/ui/#/backfills/${id}`);
  await section.getByRole("heading", { name: "Object-storage outputs" }).waitFor();
  assert.equal(await summary.count(), 0, "nothing is verified before the click");
  assert.equal(verifies.length, 0, "the page does not verify by itself");
});

await step("Verify outputs re-reads every output: all consistent", async () => {
  await section.getByRole("button", { name: "Verify outputs" }).click();
  await summary.filter({ hasText: "2 windows, 2 outputs: 2 consistent, 0 inconsistent" }).waitFor();
  assert.equal(verifies.length, 1);
  assert.equal(await section.locator("table.verify-problems").count(), 0);
  await section.getByRole("button", { name: "Verify outputs" }).waitFor();
  await shot("verify-consistent");
});

await step("an object deleted behind Tidemark's back is named", async () => {
  unlinkSync(env("TAMPER"));
  await section.getByRole("button", { name: "Verify outputs" }).click();
  await summary.filter({ hasText: "1 consistent, 1 inconsistent" }).waitFor();
  assert.equal(verifies.length, 2);
  const rows = section.locator("table.verify-problems tbody tr");
  assert.equal(await rows.count(), 1);
  const row = await rows.first().textContent();
  assert.match(row, /checked\/write/);
  assert.match(row, /lake/);
  assert.match(row, /missing: part-0001\.bin/);
  // The window is shown in the workflow's zone, with the UTC instant on hover.
  const title = await rows.first().locator("time").getAttribute("title");
  assert.match(title, /2024-03-01T01:00.*Z \(UTC\)$/);
  await shot("verify-inconsistent");
});

await finish();
