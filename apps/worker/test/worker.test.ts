import { createPlatform, type Platform } from "@turtle/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// One platform and worker for the whole file (the platform fixture is one per test).
let platform: Platform;

beforeAll(async () => {
  platform = await createPlatform({ label: "worker" });
  await platform.startWorker();
});

afterAll(async () => {
  await platform?.close();
});

describe("a worker process", () => {
  it("runs a job and records its result, logs and stats", async () => {
    const job = await platform.submit({
      code: "console.log('hi', input.n);\nreturn input.n * 2;",
      input: { n: 21 },
    });
    const done = await platform.waitFor(job.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({ status: "succeeded", result: 42, attempts: 1, executedSteps: 0 });
    expect(done.logs).toEqual([expect.objectContaining({ level: "log", message: "hi 21" })]);
    expect(done.finishedAt).not.toBeNull();
  });

  it("checkpoints every tool call of a fan-out as a step", async () => {
    const job = await platform.submit({
      code: `const items = Array.from({ length: 50 }, (_, i) => i);
const echoed = await Promise.all(items.map((i) => control.echo({ item: i })));
return echoed.reduce((sum, e) => sum + e.item, 0);`,
    });
    const done = await platform.waitFor(job.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({
      status: "succeeded",
      result: 1225,
      executedSteps: 50,
      replayedSteps: 0,
    });
    const steps = await platform.db.step.findMany({
      where: { jobId: job.id },
      orderBy: { seq: "asc" },
    });
    expect(steps).toHaveLength(50);
    expect(steps.every((step) => step.status === "succeeded" && step.tool === "echo")).toBe(true);
    const executions = (await platform.executions()).filter((e) =>
      e.idempotencyKey?.startsWith(job.id),
    );
    expect(executions).toHaveLength(50);
    expect(new Set(executions.map((e) => e.idempotencyKey)).size).toBe(50);
  });

  it("stores a NUL or a lone surrogate, which Postgres JSON cannot hold, as U+FFFD and finishes the job", async () => {
    // A literal backslash before "u0000" is not a NUL and must come back as it went in.
    const job = await platform.submit({
      code: `const echoed = await control.echo({ s: "a\\u0000b", literal: "c\\\\u0000d" });
console.log("log \\u0000 line");
return { echoed, direct: "e\\u0000f", lone: "g\\ud800h", pair: "\\ud83d\\udc22" };`,
    });
    const done = await platform.waitFor(job.id, ["succeeded", "failed"], 15_000);
    expect(done).toMatchObject({
      status: "succeeded",
      result: {
        echoed: { s: "a\ufffdb", literal: "c\\u0000d" },
        direct: "e\ufffdf",
        lone: "g\ufffdh",
        pair: "\u{1f422}",
      },
    });
    expect(done.logs).toEqual([expect.objectContaining({ message: "log \ufffd line" })]);
    const [step] = await platform.db.step.findMany({ where: { jobId: job.id } });
    expect(step).toMatchObject({ status: "succeeded", result: { s: "a\ufffdb" } });
  });

  it("reports a failing program with its TypeScript line, and a tool error with server and tool", async () => {
    const job = await platform.submit({
      code: "const x: number = 1;\nawait control.fail({ message: 'nope' });",
    });
    const done = await platform.waitFor(job.id, ["succeeded", "failed"]);
    expect(done.status).toBe("failed");
    expect(done.error).toMatchObject({
      code: "tool_error",
      name: "ToolError",
      line: 2,
      server: "control",
      tool: "fail",
    });
  });

  it("fails a job that names an unregistered server, clearly", async () => {
    const job = await platform.submit({ code: "return 1", servers: ["nope"] });
    const done = await platform.waitFor(job.id, ["succeeded", "failed"]);
    expect(done.error).toMatchObject({
      code: "unknown_server",
      message: 'server "nope" is not registered',
    });
  });
});
