// A server's bad answer, or a server that never starts, costs only the job that met it: the
// other job's calls on the same connection run once each and succeed, the server is not
// restarted, and a job waits for a stuck server no longer than its own deadline.
import { readFileSync } from "node:fs";
import { createSecretBox, DEFAULT_PROJECT_ID, saveServer } from "@turtle/core";
import {
  CONTROL_SERVER,
  eventually,
  test as it,
  type Platform,
  type TestWorker,
} from "@turtle/test-support";
import { describe, expect } from "vitest";

/** Peak resident memory of a process so far (VmHWM), in MB. */
function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
  return kb / 1024;
}

/** Ten calls in flight at once, each long enough to be running when the bad answer comes. */
const NEIGHBOUR = [
  "const slept = await Promise.all(",
  "  Array.from({ length: 10 }, (_, n) => control.sleep({ ms: 600 + n })),",
  ");",
  "return slept.map((s) => s.slept);",
].join("\n");

/** Runs the neighbour and a job whose one call answers badly, side by side on one worker. */
async function besideNeighbour(current: Platform, worker: TestWorker, badCall: string) {
  // The server is up before both start, so they share its connection from their first call.
  const warm = await current.submit({ code: "return await control.noop();" });
  await current.waitFor(warm.id, ["succeeded"]);
  const rssBefore = peakRssMb(worker.child.pid as number);
  const neighbour = await current.submit({ code: NEIGHBOUR });
  await eventually("the neighbour's calls to run", async () =>
    (await current.executions()).filter((line) => line.tool === "sleep").length >= 10
      ? true
      : undefined,
  );
  const bad = await current.submit({
    code: [
      "try {",
      `  await ${badCall};`,
      "  return 'answered';",
      "} catch (error) {",
      "  return { caught: error instanceof ToolError, code: error.code, message: error.message };",
      "}",
    ].join("\n"),
  });
  const badDone = await current.waitFor(bad.id, ["succeeded", "failed"]);
  const neighbourDone = await current.waitFor(neighbour.id, ["succeeded", "failed"]);
  const rssGrowthMb = peakRssMb(worker.child.pid as number) - rssBefore;
  const calls = await current.executions();
  const sleeps = calls.filter((line) => line.tool === "sleep");
  return { badDone, neighbourDone, calls, sleeps, rssGrowthMb };
}

describe("a bad answer beside another job's calls on the same server", () => {
  it.override("platformOptions", { label: "bad-answer" });

  it.for<[string, string, string]>([
    ["a 12 MB answer", "control.big({ bytes: 12 * 1024 * 1024 })", "result_too_large"],
    ["a 300 MB answer", "control.big({ bytes: 300 * 1024 * 1024, raw: true })", "result_too_large"],
    ["a malformed answer", 'control.malformed({ kind: "json" })', "malformed_result"],
  ])("%s fails only its own call, once", async ([what, badCall, code], { platform: current }) => {
    const worker = await current.startWorker({ STEP_RETRY_BACKOFF_MS: "50" });
    const { badDone, neighbourDone, calls, sleeps, rssGrowthMb } = await besideNeighbour(
      current,
      worker,
      badCall,
    );
    console.log(
      `${what}: worker peak RSS +${rssGrowthMb.toFixed(0)} MB; executions ${JSON.stringify(
        Object.groupBy(calls, (line) => line.tool),
        (key, value) => (Array.isArray(value) && key !== "" ? value.length : value),
      )}`,
    );
    expect(badDone).toMatchObject({ status: "succeeded", result: { caught: true, code } });
    expect(neighbourDone).toMatchObject({
      status: "succeeded",
      result: Array.from({ length: 10 }, (_, n) => 600 + n),
    });
    // Each call ran once, all in the one server process: nothing was retried or restarted.
    expect(sleeps).toHaveLength(10);
    expect(new Set(sleeps.map((line) => line.idempotencyKey)).size).toBe(10);
    const badTool = badCall.slice("control.".length, badCall.indexOf("("));
    expect(calls.filter((line) => line.tool === badTool)).toHaveLength(1);
    expect(new Set(calls.map((line) => line.pid)).size).toBe(1);
  });
});

describe("a server that hangs at start-up", () => {
  it.override("platformOptions", { label: "stuck-server" });

  it("fails a job with a 3 s deadline as a timeout naming the server", async ({
    platform: current,
  }) => {
    await saveServer(
      current.db,
      createSecretBox(current.env),
      { projectId: DEFAULT_PROJECT_ID, name: "stuck" },
      { command: process.execPath, args: [CONTROL_SERVER], env: { HANG_ON_START: "1" } },
    );
    await current.startWorker();
    const job = await current.submit({
      code: "return await stuck.noop();",
      servers: ["stuck"],
      timeoutMs: 3_000,
    });
    const done = await current.waitFor(job.id, ["succeeded", "failed"]);
    const tookMs = (done.finishedAt?.getTime() ?? 0) - (done.startedAt?.getTime() ?? 0);
    console.log(`a 3 s job against a server stuck at start-up ended after ${tookMs} ms`);
    expect(done).toMatchObject({ status: "failed", error: { code: "timeout" } });
    expect((done.error as { message: string }).message).toMatch(
      /3000 ms deadline \(timeoutMs\) passed .*MCP server "stuck" had not finished starting/,
    );
  });
});
