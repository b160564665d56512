// The console end to end, in headless Chromium against a real daemon. Run by
// tests/tests/suite/console.rs, which starts `tidemark serve` on a temporary
// data dir and passes (env):
//   TIDEMARK_URL     the daemon
//   DEFAULT_TOKEN    tenant `default` (examples applied, `fragile` workflow)
//   OTHER_TOKEN      tenant `other` (only workflow `secret-wf`)
//   ADMIN_TOKEN      the admin token
//   RETRY_RUN        a failed run of `fragile` that a retry repairs
//   SCREENSHOTS      where to save screenshots
//   CHROMIUM         the browser (default /usr/bin/chromium)
// It prints one line per step and exits non-zero on the first failure.
import assert from "node:assert/strict";
import { env, open } from "./lib.mjs";

const URL = env("TIDEMARK_URL");
const { page, step, shot, until, finish } = await open();

async function signIn(token) {
  await page.goto(`${URL}/ui/`);
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}
async function signOut() {
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByLabel("API token").waitFor();
}
async function textOf(selector) {
  return (await page.locator(selector).first().textContent())?.trim() ?? "";
}

await step("the daemon serves the console with a strict CSP at /", async () => {
  const resp = await page.goto(`${URL}/`);
  assert.equal(resp.status(), 200);
  assert.match(page.url(), /\/ui\/$/);
  const csp = resp.headers()["content-security-policy"];
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(await page.locator("script:not([src])").count(), 0, "no inline scripts");
});

await step("a wrong token is refused with the server's message", async () => {
  await signIn("tm_not_a_real_token");
  await page.getByRole("alert").filter({ hasText: "invalid or revoked token" }).waitFor();
  assert.equal(await page.getByLabel("API token").isVisible(), true);
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await shot("signin-refused");
});

await step("sign in as a tenant; the token stays out of the URL", async () => {
  await page.getByLabel("API token").fill(env("DEFAULT_TOKEN"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Workflows" }).waitFor();
  assert.ok(!page.url().includes(env("DEFAULT_TOKEN")));
  const stored = await page.evaluate(() => sessionStorage.getItem("tidemark.session"));
  assert.ok(stored.includes(env("DEFAULT_TOKEN")), "token in session storage");
});

await step("the workflows list shows the example workflows and no other tenant's", async () => {
  const etl = page.locator('tr[data-workflow="etl"]');
  await etl.waitFor();
  const row = await etl.textContent();
  assert.match(row, /0 \* \* \* \*/);
  assert.match(row, /Europe\/Berlin/);
  await page.locator('tr[data-workflow="heartbeat"]').waitFor();
  assert.equal(await page.locator('tr[data-workflow="etl-daily"] td.upstream').textContent(), "etl");
  assert.equal(await page.locator('tr[data-workflow="etl"] td.upstream').textContent(), "—");
  assert.equal(await page.locator('tr[data-workflow="secret-wf"]').count(), 0);
  // Times are in the workflow's zone with the UTC instant on hover.
  const title = await etl.locator("time").first().getAttribute("title");
  assert.match(title, /Z \(UTC\)$/);
  await shot("workflows");
});

await step("the workflow page draws the task DAG with dagre and lists versions", async () => {
  await page.getByRole("link", { name: "etl", exact: true }).click();
  await page.getByRole("heading", { name: "etl" }).waitFor();
  await page.locator("svg.dag").waitFor();
  assert.equal(await page.locator("g.dag-node").count(), 3);
  assert.equal(await page.locator("polyline.dag-edge").count(), 2);
  // Laid out left to right: extract, transform, load.
  const xs = [];
  for (const t of ["extract", "transform", "load"]) {
    xs.push(Number(await page.locator(`g.dag-node[data-task="${t}"] rect`).getAttribute("x")));
  }
  assert.ok(xs[0] < xs[1] && xs[1] < xs[2], `x positions ${xs}`);
  await page.getByRole("cell", { name: "1 (current)" }).waitFor();
  // Its downstream, from every workflow's upstream list.
  await page.locator("dd").getByRole("link", { name: "etl-daily" }).waitFor();
  await shot("workflow");
});

await step("pause and unpause make new versions, and the diff shows the change", async () => {
  await page.getByRole("button", { name: "Pause" }).click();
  await page.getByRole("button", { name: "Unpause" }).waitFor();
  await page.getByRole("cell", { name: "2 (current)" }).waitFor();
  const diff = await until("the diff", async () => {
    const t = await page.locator("pre.diff").textContent().catch(() => "");
    return t.includes('+   "paused": true') ? t : null;
  });
  assert.match(diff, /-   "paused": false/);
  await page.getByRole("button", { name: "Unpause" }).click();
  await page.getByRole("button", { name: "Pause" }).waitFor();
  await page.getByRole("cell", { name: "3 (current)" }).waitFor();
});

await step("the grid shows windows × tasks; a cell opens its attempts", async () => {
  await page.getByRole("link", { name: "Grid" }).first().click();
  await page.locator('[role="grid"]').waitFor();
  const cell = page.locator("button.cell").first();
  await cell.waitFor();
  assert.equal(await page.locator('[role="columnheader"]').count(), 5);
  await cell.click();
  const panel = page.getByRole("complementary");
  await panel.getByText("Fuel used").first().waitFor();
  await panel.getByText("Error kind").first().waitFor();
  await panel.locator("pre.log").first().waitFor();
  await shot("grid");
});

let etlBackfill;
await step("the launcher previews the plan, then starts the backfill", async () => {
  await page.goto(`${URL}/ui/#/backfills/new?workflow=etl`);
  await page.getByLabel("Workflow", { exact: true }).waitFor();
  assert.equal(await page.getByLabel("Workflow", { exact: true }).inputValue(), "etl");
  await page.getByLabel("Start date").fill("2024-03-01");
  await page.getByLabel("End date (exclusive)").fill("2024-03-02");
  await page.getByLabel("Parallelism").fill("4");
  const confirm = page.getByRole("button", { name: "Confirm and start" });
  assert.equal(await confirm.isDisabled(), true, "no confirm before a preview");
  // A zero budget is refused, naming the field.
  await page.getByLabel("Budget: max fuel").fill("0");
  await page.getByRole("button", { name: "Preview" }).click();
  await page.getByText(/budget\.max_fuel: must be positive/).waitFor();
  await page.getByLabel("Budget: max fuel").fill("");
  await page.getByRole("button", { name: "Preview" }).click();
  await page.locator(".plan-summary").filter({ hasText: "24 windows to run, 0 skipped" }).waitFor();
  assert.equal(await page.locator(".plan-table tbody tr").count(), 24);
  const first = await page.locator(".plan-table tbody tr").first().textContent();
  assert.match(first, /2024-03-01 00:00:00/, "windows in the workflow's zone");
  assert.match(first, /missing: never succeeded/);
  // The estimate of what the 24 windows will cost (3 tasks each).
  assert.match(await textOf(".estimate-total"), /task-runs 72 \(72–/);
  assert.match(await textOf(".estimate-table tbody tr"), /etl v\d+.*extract: \w+ \(\d+\)/);
  await shot("launcher-preview");
  // Changing the request invalidates the preview.
  await page.getByLabel("Order").selectOption("desc");
  assert.equal(await confirm.isDisabled(), true);
  await page.getByRole("button", { name: "Preview" }).click();
  await page.locator(".plan-summary").waitFor();
  const firstDesc = await page.locator(".plan-table tbody tr").first().textContent();
  assert.match(firstDesc, /2024-03-01 23:00:00/, "newest first");
  await confirm.click();
  await page.waitForURL(/#\/backfills\/\d+$/);
  etlBackfill = Number(page.url().match(/backfills\/(\d+)$/)[1]);
});

await step("the backfill page shows live progress until it succeeds", async () => {
  await page.locator(".backfill-state").filter({ hasText: "succeeded" }).waitFor({ timeout: 90_000 });
  await until("24 succeeded", async () => (await textOf(".count-succeeded")) === "24");
  assert.equal(await textOf(".count-failed"), "0");
  const strip = page.locator('figure.strip[data-workflow="etl"] svg.strip-bar');
  await until("the strip to count 24 windows", async () => (await strip.getAttribute("data-windows")) === "24");
  await page.getByText("None.").waitFor();
  // What it spent, next to the estimate it was created with.
  const taskRuns = page.locator('.cost-table tr[data-figure="Task-runs"]');
  assert.equal(await taskRuns.locator(".cost-actual").textContent(), "72");
  assert.match(await taskRuns.textContent(), /72 \(72–/);
  // What the estimate rests on, per task: level, samples and ranges.
  const basis = page.locator("table.estimate-basis tbody tr");
  assert.equal(await basis.count(), 3);
  assert.match(await basis.first().locator("th").textContent(), /^etl v\d+ \/ extract$/);
  assert.match(await basis.first().locator("td.basis").textContent(), /^(version|plugin|default)$/);
  assert.match(await basis.first().locator("td.samples").textContent(), /^\d+$/);
  assert.match(await basis.first().textContent(), /[\d,]+ \([\d,]+–[\d,]+\)/);
  assert.equal(await textOf(".backfill-calendar"), "any time");
  await shot("backfill");
});

await step("a failed window shows its error, and Retry failed repairs it", async () => {
  await page.goto(`${URL}/ui/#/backfills/new?workflow=fragile`);
  await page.getByLabel("Workflow", { exact: true }).waitFor();
  await page.getByLabel("List of dates").check();
  for (const d of ["2024-05-01", "2024-05-03"]) {
    await page.getByLabel("Date", { exact: true }).fill(d);
    await page.getByRole("button", { name: "Add date" }).click();
  }
  await page.getByRole("list", { name: "Selected dates" }).getByText("2024-05-03").waitFor();
  await page.getByRole("button", { name: "Preview" }).click();
  await page.locator(".plan-summary").filter({ hasText: "2 windows to run" }).waitFor();
  await page.getByRole("button", { name: "Confirm and start" }).click();
  await page.waitForURL(/#\/backfills\/\d+$/);
  await page.locator(".backfill-state").filter({ hasText: "failed" }).waitFor({ timeout: 90_000 });
  const errors = page.locator("table.failed-windows td.window-error");
  await until("two failed windows", async () => (await errors.count()) === 2);
  assert.match(await errors.first().textContent(), /flaky: attempt 1 of 1 planned failures/);
  await shot("backfill-failed");
  await page.getByRole("button", { name: "Retry failed" }).click();
  await page.locator(".backfill-state").filter({ hasText: "succeeded" }).waitFor({ timeout: 90_000 });
  await until("2 succeeded", async () => (await textOf(".count-succeeded")) === "2");
  assert.equal(await textOf(".count-failed"), "0");
});

await step("the workflow page finds gaps with their reasons and proposes the repair", async () => {
  await page.goto(`${URL}/ui/#/workflows/fragile`);
  await page.getByLabel("Gaps from").fill("2024-05-01T00:00:00Z");
  await page.getByLabel("Gaps until").fill("2024-05-01T03:00:00Z");
  await page.getByRole("button", { name: "Find gaps" }).click();
  // 00:00 ran (the backfill above); 01:00 and 02:00 never did.
  await page.locator(".gap-summary").filter({ hasText: "2 missing among 3 due windows" }).waitFor();
  const rows = page.locator('table.gap-list tr[data-kind="missing"]');
  assert.equal(await rows.count(), 2);
  assert.match(await rows.first().textContent(), /missing: never ran/);
  await page.getByRole("button", { name: "Propose repair" }).click();
  await page.waitForURL(/#\/backfills\/\d+$/);
  await page.locator("p.pause-reason").filter({ hasText: "Paused: proposed by the gap detector (2 missing)" }).waitFor();
  assert.equal(await textOf(".gap-repair"), "requested (2 windows)");
  await page.locator(".backfill-state").filter({ hasText: "paused" }).waitFor();
  await shot("gap-proposal");
});

let waitingBackfill;
await step("allowed hours: an impossible calendar is refused, closed hours wait", async () => {
  await page.goto(`${URL}/ui/#/backfills/new?workflow=etl-daily`);
  await page.getByLabel("Workflow", { exact: true }).waitFor();
  await page.getByLabel("Start date").fill("2024-03-01");
  await page.getByLabel("End date (exclusive)").fill("2024-03-02");
  const spans = page.getByLabel("Allowed hours (one span per line)");
  await page.getByLabel("Allowed hours: time zone").fill("UTC");
  // No hour open: the server's 400 names the field, and nothing is planned.
  await spans.fill("20:00-20:00");
  await page.getByRole("button", { name: "Preview" }).click();
  await page.getByRole("alert").filter({ hasText: 'allowed_hours: span "20:00-20:00" allows no time' }).waitFor();
  assert.equal(await page.locator(".plan-summary").count(), 0);
  // Hours that are closed now (two to three hours ahead, UTC), and a
  // start-at far ahead: the preview shows both and waits for the start-at.
  const h = new Date().getUTCHours();
  const pad = (n) => String(n % 24).padStart(2, "0");
  const span = `Mon-Sun ${pad(h + 2)}:00-${pad(h + 3)}:00`;
  await spans.fill(span);
  await page.getByLabel("Start at").fill("2099-01-01T00:00");
  await page.getByRole("button", { name: "Preview" }).click();
  await page.locator(".plan-summary").filter({ hasText: "1 window to run" }).waitFor();
  assert.equal(await textOf(".when-hours"), `${span} (UTC)`);
  assert.match(await textOf(".when-start-at"), /^2099-01-01 00:00:00/);
  assert.equal(await textOf(".when-waiting"), "waiting: start-at 2099-01-01T00:00:00Z");
  await page.getByLabel("Start at").fill("");
  await page.getByRole("button", { name: "Preview" }).click();
  await page.locator(".plan-summary").waitFor();
  assert.equal(await textOf(".when-start-at"), "now");
  const off = new RegExp(`^waiting: off-peak until \\S+Z \\(${pad(h + 2)}:00 UTC\\)$`);
  assert.match(await textOf(".when-waiting"), off);
  await shot("launcher-calendar");
  await page.getByRole("button", { name: "Confirm and start" }).click();
  await page.waitForURL(/#\/backfills\/\d+$/);
  waitingBackfill = Number(page.url().match(/backfills\/(\d+)$/)[1]);
  assert.equal(await textOf(".backfill-calendar"), `allowed hours ${span} (UTC)`);
  await until("the wait", async () => off.test(await textOf(".backfill-throttled")));
  assert.equal(await textOf(".count-running"), "0");
  await shot("backfill-waiting");
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Cancel" }).click();
  await page.locator(".backfill-state").filter({ hasText: "cancelled" }).waitFor();
});

await step("the run page draws its attempts as a Gantt chart", async () => {
  const dates = await page.goto(`${URL}/ui/#/workflows/fragile/grid`);
  void dates;
  await page.getByLabel("Windows from").fill("2024-05-01");
  await page.getByRole("button", { name: "Show" }).click();
  await page.getByRole("status").filter({ hasText: "2 windows" }).waitFor();
  await page.locator('[role="row"] a[href^="#/runs/"]').first().click();
  await page.locator("svg.gantt").waitFor();
  // a, f (failed, then succeeded after the retry), c.
  assert.equal(await page.locator("rect.gantt-bar").count(), 4);
  assert.equal(await page.locator("rect.gantt-bar.s-failed").count(), 1);
  await page.locator('tr[data-task="f"]').getByText("succeeded").waitFor();
  assert.equal(await page.getByRole("button", { name: "Retry from failed" }).isDisabled(), true);
  // Provenance: the backfill launched above made it, with the console's
  // token, and each task names the component digest it ran.
  const why = page.getByRole("region", { name: "Provenance" });
  await why.locator('.why-cause[data-kind="backfill"]').waitFor();
  assert.match(await why.locator(".why-cause").textContent(), /^backfill \d+ \(/);
  assert.match(await why.locator(".why-asker").textContent(), /^token \d+ \(.+\)$/);
  assert.match(await why.locator('tr[data-task="f"] td.digest').textContent(), /^sha256:[0-9a-f]{64}$/);
  assert.match(await why.locator('tr[data-task="f"] td').first().textContent(), /^flaky/);
  await shot("run");
});

await step("Retry from failed records who asked and when, in the provenance", async () => {
  await page.goto(`${URL}/ui/#/runs/${env("RETRY_RUN")}`);
  const why = page.getByRole("region", { name: "Provenance" });
  await why.locator(".why-retries").getByText("never").waitFor();
  await page.getByRole("button", { name: "Retry from failed" }).click();
  await page.locator('tr[data-task="f"]').getByText("succeeded").waitFor({ timeout: 60_000 });
  await until("the retry in the provenance", async () => (await why.locator(".why-retry").count()) === 1);
  assert.match(await why.locator(".why-retry").textContent(), /^by token \d+ \(.+\) at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
  // The run's cause and first requester stay what they were.
  assert.match(await why.locator(".why-cause").textContent(), /^manual/);
  await shot("run-retried");
});

await step("the tenant page shows quotas and usage", async () => {
  await page.getByRole("link", { name: "Tenant" }).click();
  await page.getByRole("heading", { name: "Tenant default" }).waitFor();
  const row = await page.locator('tr[data-quota="concurrent_attempts"]').textContent();
  assert.match(row, /concurrent attempts/);
  await page.locator('tr[data-quota="dataset_bytes"]').waitFor();
  await shot("tenant");
});

await step("usable at phone width", async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.getByRole("link", { name: "Workflows" }).click();
  await page.locator('tr[data-workflow="etl"]').waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
  assert.ok(overflow <= 1, `the page is ${overflow}px wider than the screen`);
  await shot("phone-workflows");
  await page.setViewportSize({ width: 1280, height: 800 });
});

await step("a revoked token returns to the sign-in page with a message", async () => {
  await page.getByRole("link", { name: "Tenant" }).click();
  await page.getByLabel("New token label").fill("console-e2e");
  await page.getByRole("button", { name: "Create token" }).click();
  const secret = (await page.locator("code.secret").textContent()).trim();
  assert.match(secret, /^tm_/);
  await signOut();
  await page.getByLabel("API token").fill(secret);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("link", { name: "Tenant" }).click();
  page.once("dialog", (d) => d.accept());
  const own = page.locator("table.tokens tr").filter({ hasText: "console-e2e" });
  await own.getByRole("button", { name: "Revoke" }).click();
  await page.getByRole("status").filter({ hasText: "the server refused the token" }).waitFor();
  await page.getByLabel("API token").waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem("tidemark.session")), null);
});

await step("another tenant sees only its own workflows", async () => {
  await page.getByLabel("API token").fill(env("OTHER_TOKEN"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator('tr[data-workflow="secret-wf"]').waitFor();
  assert.equal(await page.locator('tr[data-workflow="etl"]').count(), 0);
  await page.goto(`${URL}/ui/#/workflows/etl`);
  await page.getByRole("alert").filter({ hasText: 'workflow "etl" not found' }).waitFor();
  await page.goto(`${URL}/ui/#/backfills/${etlBackfill}`);
  await page.getByRole("alert").filter({ hasText: "not found" }).waitFor();
  await signOut();
});

await step("the admin manages tenants and tokens", async () => {
  await page.getByLabel("API token").fill(env("ADMIN_TOKEN"));
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Admin" }).waitFor();
  // The embedded daemon is the one node, and it leads.
  const node = page.locator("table.nodes tbody tr");
  await node.first().waitFor();
  assert.equal(await node.count(), 1);
  assert.equal(await node.locator("td").first().textContent(), "leader");
  const summary = await page.locator(".cluster-summary").textContent();
  assert.match(summary, /^Embedded store, 1 node; leader \S+$/);
  await page.locator('tr[data-tenant="default"]').waitFor();
  await page.locator('tr[data-tenant="other"]').waitFor();
  await page.getByLabel("New tenant name").fill("third");
  await page.getByRole("button", { name: "Create tenant" }).click();
  await page.getByRole("status").filter({ hasText: "Tenant third created" }).waitFor();
  await page.locator('tr[data-tenant="third"]').getByRole("button", { name: "third" }).click();
  await page.getByRole("heading", { name: "Tenant third" }).waitFor();
  await page.locator("table.tokens tbody tr").first().waitFor();
  assert.equal(await page.locator("table.tokens tbody tr").count(), 1);
  await page.getByLabel("New token label").fill("ci");
  await page.getByRole("button", { name: "Create token" }).click();
  const row = page.locator("table.tokens tbody tr").filter({ hasText: "ci" });
  await row.waitFor();
  page.once("dialog", (d) => d.accept());
  await row.getByRole("button", { name: "Revoke" }).click();
  await row.getByText("revoked").waitFor();
  // Bad input gets the server's message and changes nothing.
  await page.getByLabel("New tenant name").fill("Not A Name!");
  await page.getByRole("button", { name: "Create tenant" }).click();
  await page.getByRole("alert").first().waitFor();
  assert.equal(await page.locator("table.tenants tbody tr").count(), 3);
  await shot("admin");
});

await finish();
