// The dashboard in a real browser (headless Chromium, driven by playwright-core) against a real
// API, worker process and MCP server: a user logs in with the API key, watches a job's life live,
// cancels, resumes and retries it, reads a failure at its line, and looks at servers, workers and
// the queue board. Screenshots of each stage go to test-results/dashboard/.
import { mkdirSync } from "node:fs";
import {
  CONTROL_SERVER,
  REPO_ROOT,
  startFleet,
  type TestApi,
  type TestFleet,
} from "@turtle/test-support";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CHROMIUM_ARGS, chromiumPath } from "./chromium.ts";

export const SCREENSHOTS = `${REPO_ROOT}test-results/dashboard/`;

let fleet: TestFleet;
let api: TestApi;
let base: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

beforeAll(async () => {
  const executablePath = chromiumPath();
  mkdirSync(SCREENSHOTS, { recursive: true });
  fleet = await startFleet({
    servers: () => [
      {
        name: "control",
        command: process.execPath,
        args: [CONTROL_SERVER],
        env: { ANNOTATED_TOOLS: "1" },
      },
    ],
    workerEnv: { WORKER_METRICS_MS: "500" },
  });
  ({ api, base } = fleet);
  browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  page = await context.newPage();
  page.on("pageerror", (error) => pageErrors.push(error.message));
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await fleet?.close();
});

const shot = (name: string) =>
  page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });

async function submit(code: string): Promise<string> {
  const response = await api.call({ method: "POST", url: "/v1/jobs", payload: { code } });
  expect(response.statusCode).toBe(202);
  return response.json().id;
}

describe("the dashboard in Chromium", () => {
  it("logs a user in with the API key, and keeps the key out of the browser", async () => {
    await page.goto(`${base}/dashboard`);
    await page.waitForURL(/\/dashboard\/login\?next=/);
    await shot("01-login");
    await page.fill("#key", "tt_wrong");
    await page.click("button[type=submit]");
    await expect.poll(() => page.locator("[role=alert]").textContent()).toContain("not valid");
    await page.fill("#key", api.key);
    await page.click("button[type=submit]");
    await page.waitForURL(`${base}/dashboard`);
    await page.locator("h1", { hasText: "Jobs" }).waitFor();
    const cookies = await context.cookies();
    expect(cookies.map((cookie) => cookie.name)).toEqual(["turtle_session"]);
    expect(cookies[0]?.httpOnly).toBe(true);
    expect(JSON.stringify(cookies)).not.toContain(api.key);
    expect(await page.evaluate(() => JSON.stringify(localStorage))).not.toContain(api.key);
  });

  it("follows a job live, cancels it, resumes it by replay and retries it", async () => {
    await page.goto(`${base}/dashboard`);
    await page.locator(".live-live").waitFor();
    const code = [
      "const seen = [];",
      "for (let i = 0; i < 8; i++) {",
      "  await control.sleep({ ms: 700 + i });",
      "  console.log('slept ' + i);",
      "  seen.push(i);",
      "}",
      "return { slept: seen.length };",
    ].join("\n");
    const id = await submit(code);
    // The new job appears in the list without a reload, and turns running.
    const row = page.locator(`tr[data-job="${id}"]`);
    await row.waitFor();
    await page.locator(`tr[data-job="${id}"][data-status="running"]`).waitFor();
    await shot("02-jobs-live");

    await row.locator("a").click();
    await page.waitForURL(`${base}/dashboard/jobs/${id}`);
    // Logs and steps arrive while it runs.
    await page.locator(".log-message", { hasText: "slept 2" }).waitFor();
    expect(await page.locator(".tl-row[data-step]").count()).toBeGreaterThanOrEqual(3);
    await shot("03-job-running");

    await page.click("button:has-text('Cancel')");
    await page.locator(".page-head .badge", { hasText: "cancelled" }).waitFor();
    const done = (await api.db.step.count({ where: { jobId: id, status: "succeeded" } })) as number;
    expect(done).toBeGreaterThanOrEqual(3);
    expect(done).toBeLessThan(8);

    await page.click("button:has-text('Resume')");
    await page.locator(".page-head .badge", { hasText: "succeeded" }).waitFor({ timeout: 30_000 });
    await expect
      .poll(() => page.locator("[data-testid=result]").textContent())
      .toContain('"slept": 8');
    // The steps that had succeeded were replayed, not called again: over both runs, each of
    // the 8 calls was executed once.
    expect(await page.locator(".tl-row.replayed").count()).toBe(done);
    await expect.poll(() => page.locator(".stats dd").nth(4).textContent()).toBe(`8 / ${done}`);
    await shot("04-job-resumed");

    await page.click("button:has-text('Retry as new job')");
    await page.waitForURL(
      (url) => url.pathname.startsWith("/dashboard/jobs/") && !url.pathname.endsWith(id),
    );
    await page.locator(".page-head .badge", { hasText: "succeeded" }).waitFor({ timeout: 30_000 });
    const retried = page.url().split("/").at(-1) ?? "";
    const program = await api.call({ method: "GET", url: `/v1/jobs/${retried}/program` });
    expect(program.json().code).toBe(code);
    expect(await page.locator(".tl-row.replayed").count()).toBe(0);
  });

  it("shows a failed job's error at its line of code", async () => {
    const id = await submit(
      [
        "const a = await control.echo({ n: 1 });",
        "",
        "throw new Error('the third line broke');",
      ].join("\n"),
    );
    await api.call({ method: "GET", url: `/v1/jobs/${id}?wait=30` });
    await page.goto(`${base}/dashboard/jobs/${id}`);
    await page.locator(".job-error").waitFor();
    expect(await page.locator(".job-error").textContent()).toContain("the third line broke");
    expect(await page.locator(".job-error").textContent()).toContain("line 3");
    expect(await page.locator(".error-line .line-no").textContent()).toBe("3");
    await shot("05-job-failed");

    // The list filters by status.
    await page.goto(`${base}/dashboard`);
    await page.selectOption("select[name=status]", "failed");
    await page.waitForURL(/status=failed/);
    await page.locator(`tr[data-job="${id}"]`).waitFor();
    const statuses = await page
      .locator("tr[data-job]")
      .evaluateAll((rows) => rows.map((row) => row.getAttribute("data-status")));
    expect(new Set(statuses)).toEqual(new Set(["failed"]));
  });

  it("shows a call waiting for approval, and approving it lets the job go on", async () => {
    const id = await submit(
      "const gone = await control.delete_record({ id: 'r-17' });\nreturn { deleted: gone.id };",
    );
    await page.goto(`${base}/dashboard/jobs/${id}`);
    await page.locator(".page-head .badge", { hasText: "waiting" }).waitFor();
    const request = page.locator("[data-approval][data-status=pending]");
    await request.waitFor();
    expect(await request.locator(".tool-name").textContent()).toBe("control.delete_record");
    expect(await request.locator("pre").textContent()).toContain('"r-17"');
    await shot("09-job-waiting-approval");
    await request.locator("input").fill("checked with the owner");
    await request.locator("button:has-text('Approve')").click();
    await page.locator(".page-head .badge", { hasText: "succeeded" }).waitFor({ timeout: 30_000 });
    await expect.poll(() => page.locator("[data-testid=result]").textContent()).toContain("r-17");
    expect(await page.locator("[data-approval][data-status=approved]").count()).toBe(1);
  });

  it("shows each server's tools and declarations, and the live workers with throughput", async () => {
    await page.goto(`${base}/dashboard/servers`);
    await page.locator("[data-tool=echo]").waitFor();
    expect(await page.locator(".declarations").textContent()).toContain(
      "declare namespace control",
    );
    await shot("06-servers");

    await page.goto(`${base}/dashboard/workers`);
    await expect.poll(() => page.locator("[data-testid=worker-count]").textContent()).toBe("1");
    await page.locator(`tr[data-worker*=":${fleet.worker.child.pid}:"]`).waitFor();
    await page.locator("[data-testid=throughput-chart] canvas").waitFor();
    await shot("07-workers");
  });

  it("opens BullMQ's board with the same login, and logs out", async () => {
    await page.goto(`${base}/admin/queues`);
    await page.getByText(api.config.TURTLE_QUEUE).first().waitFor();
    await shot("08-queue-board");

    await page.goto(`${base}/dashboard`);
    await page.click("button:has-text('Log out')");
    await page.waitForURL(/\/dashboard\/login/);
    await page.goto(`${base}/admin/queues`);
    await page.waitForURL(/\/dashboard\/login\?next=%2Fadmin%2Fqueues/);
    await page.fill("#key", api.key);
    await page.click("button[type=submit]");
    await page.waitForURL(`${base}/admin/queues`);
    expect(pageErrors).toEqual([]);
  });
});
