// Faults a running job must survive. (A worker killed with SIGKILL: durability.test.ts.)
import { afterEach, describe, expect, it } from "vitest";
import { createPlatform, type Platform } from "./platform.ts";

let platform: Platform | undefined;

afterEach(async () => {
  await platform?.close();
  platform = undefined;
});

async function until<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe("an MCP server killed in the middle of a call", () => {
  it("is started again and the call made again with its idempotency key; the job goes on", async () => {
    platform = await createPlatform("server-killed");
    const current = platform;
    await current.startWorker({ STEP_RETRY_BACKOFF_MS: "50" });
    const job = await current.submit({
      code: [
        "await control.echo({ before: true });",
        "const slept = await control.sleep({ ms: 1500 });",
        "await control.echo({ after: true });",
        "return 'went on';",
      ].join("\n"),
    });
    // The server is killed while it sleeps on the job's second call.
    const sleeping = await until("the sleep call", async () =>
      (await current.executions()).find((line) => line.tool === "sleep"),
    );
    process.kill(sleeping.pid, "SIGKILL");

    const done = await current.waitFor(job.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({ status: "succeeded", result: "went on", executedSteps: 3 });
    const calls = await current.executions();
    const sleeps = calls.filter((line) => line.tool === "sleep");
    // Made again in a new server process, with the same idempotency key.
    expect(sleeps).toHaveLength(2);
    expect(sleeps[1]?.idempotencyKey).toBe(sleeps[0]?.idempotencyKey);
    expect(sleeps[1]?.pid).not.toBe(sleeps[0]?.pid);
    expect(calls.filter((line) => line.tool === "echo")).toHaveLength(2);
    const steps = await current.db.step.findMany({ where: { jobId: job.id } });
    expect(steps.map((step) => step.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
  });

  it("fails the call with a ToolError the program can catch once the retries are spent", async () => {
    platform = await createPlatform("server-gone");
    const current = platform;
    await current.startWorker({ STEP_RETRIES: "0" });
    const job = await current.submit({
      code: [
        "try {",
        "  await control.sleep({ ms: 1500 });",
        "  return 'slept';",
        "} catch (error) {",
        "  return { code: error.code, caught: error instanceof ToolError };",
        "}",
      ].join("\n"),
    });
    const sleeping = await until("the sleep call", async () =>
      (await current.executions()).find((line) => line.tool === "sleep"),
    );
    process.kill(sleeping.pid, "SIGKILL");
    const done = await current.waitFor(job.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({
      status: "succeeded",
      result: { code: "server_unavailable", caught: true },
    });
  });
});
