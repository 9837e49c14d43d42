// The API with a real worker process and a real MCP server: submit → wait → result, cancel of a
// running job, resume with edited code (completed steps replayed, not executed again).
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { channels, DEFAULT_PROJECT_ID, serverRef } from "@turtle/core";
import { CONTROL_SERVER, eventually, it, type TestApi, type TestFleet } from "@turtle/test-support";
import { describe, expect } from "vitest";

let fleet: TestFleet;
let api: TestApi;
let countFile: string;

it.override("fleetOptions", {
  servers: (dir) => {
    countFile = join(dir, "executions.jsonl");
    return [
      {
        name: "control",
        command: process.execPath,
        args: [CONTROL_SERVER],
        env: { COUNT_FILE: countFile },
      },
      // Named like a global of Node's, which the sandbox does not have.
      { name: "fetch", command: process.execPath, args: [CONTROL_SERVER] },
    ];
  },
});

it.beforeAll(async ({ fleet: started }) => {
  fleet = started;
  ({ api } = fleet);
});

/** Tool executions the control server recorded, for one job. */
function executions(jobId: string): Array<{ tool: string; args: Record<string, unknown> }> {
  let text = "";
  try {
    text = readFileSync(countFile, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line))
    .filter((entry) => String(entry.idempotencyKey ?? "").startsWith(jobId));
}

describe("jobs run by a real worker", () => {
  it("run with a server named like a global of Node's (fetch) as a namespace", async () => {
    const response = await api.call({
      method: "POST",
      url: "/v1/jobs?wait=30",
      payload: { code: "return (await fetch.echo({ n: 7 })).n;", servers: ["fetch", "control"] },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ status: "succeeded", result: 7, error: null });
  });

  it("submit with ?wait= answers with the result, its logs, stats and steps", async () => {
    const response = await api.call({
      method: "POST",
      url: "/v1/jobs?wait=30",
      payload: {
        code: "const echoed = await control.echo({ n: input.n });\nconsole.log('got', echoed.n);\nreturn echoed.n * 2;",
        input: { n: 21 },
        servers: ["control"],
      },
    });
    expect(response.statusCode).toBe(200);
    const job = response.json();
    expect(job).toMatchObject({
      status: "succeeded",
      result: 42,
      error: null,
      logs: [expect.objectContaining({ level: "log", message: "got 21" })],
      stats: { executedSteps: 1, replayedSteps: 0, attempts: 1 },
      servers: ["control"],
    });
    expect(job.stats.wallMs).toBeGreaterThanOrEqual(0);
    const steps = (await api.call({ method: "GET", url: `/v1/jobs/${job.id}/steps` })).json();
    expect(steps).toEqual({
      steps: [
        expect.objectContaining({
          server: "control",
          tool: "echo",
          status: "succeeded",
          attempt: 1,
          replayed: false,
        }),
      ],
      nextCursor: null,
    });
  });

  it("reports a failing program's error with its line, and lists it among failed jobs", async () => {
    const response = await api.call({
      method: "POST",
      url: "/v1/jobs?wait=30",
      payload: { code: "const a = 1;\nthrow new Error('broken on purpose');" },
    });
    expect(response.statusCode).toBe(200);
    const job = response.json();
    expect(job.status).toBe("failed");
    expect(job.error).toMatchObject({
      message: expect.stringContaining("broken on purpose"),
      line: 2,
    });
    const failed = await api.call({ method: "GET", url: "/v1/jobs?status=failed" });
    expect(failed.json().jobs.map((j: { id: string }) => j.id)).toContain(job.id);
  });

  it("runs a job submitted twice with one idempotency key once", async () => {
    const payload = {
      code: "return await control.echo({ once: input.tag })",
      input: { tag: randomUUID() },
      idempotencyKey: randomUUID(),
    };
    const first = await api.call({ method: "POST", url: "/v1/jobs?wait=30", payload });
    expect(first.statusCode).toBe(200);
    expect(first.json().status).toBe("succeeded");
    const second = await api.call({ method: "POST", url: "/v1/jobs?wait=30", payload });
    expect(second.statusCode).toBe(200);
    expect(second.json()).toMatchObject({ id: first.json().id, status: "succeeded" });
    expect(executions(first.json().id)).toHaveLength(1);
  });

  it("cancels a running job: its isolate is stopped and it ends cancelled", async () => {
    const submitted = await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "await control.sleep({ ms: 120000 });\nreturn 'slept'", timeoutMs: 300_000 },
    });
    const { id } = submitted.json();
    await eventually("the job to run", async () => {
      const job = (await api.call({ method: "GET", url: `/v1/jobs/${id}` })).json();
      return job.status === "running" && executions(id).length === 1 ? true : undefined;
    });
    const cancelled = await api.call({ method: "POST", url: `/v1/jobs/${id}/cancel?wait=30` });
    expect(cancelled.statusCode).toBe(200);
    expect(cancelled.json()).toMatchObject({
      id,
      status: "cancelled",
      result: null,
      error: { code: "cancelled" },
    });
    const again = await api.call({ method: "POST", url: `/v1/jobs/${id}/cancel` });
    expect(again.statusCode).toBe(409);
  });

  it("resumes a failed job with edited code, replaying the steps that completed", async () => {
    const loop = (body: string) =>
      `const out: number[] = [];\nfor (let i = 0; i < 10; i++) {\n  const r = await control.echo({ item: i });\n${body}  out.push(r.item);\n}\nreturn out;`;
    const first = await api.call({
      method: "POST",
      url: "/v1/jobs?wait=30",
      payload: { code: loop('  if (i === 5) throw new Error("cannot handle item " + i);\n') },
    });
    expect(first.statusCode).toBe(200);
    const { id } = first.json();
    expect(first.json()).toMatchObject({
      status: "failed",
      error: { message: expect.stringContaining("cannot handle item 5"), line: 4 },
      stats: { executedSteps: 6 },
    });
    expect(executions(id)).toHaveLength(6);

    const resumed = await api.call({
      method: "POST",
      url: `/v1/jobs/${id}/resume?wait=30`,
      payload: { code: loop("") },
    });
    expect(resumed.statusCode).toBe(200);
    expect(resumed.json()).toMatchObject({
      id,
      status: "succeeded",
      result: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      error: null,
      stats: { executedSteps: 10, replayedSteps: 6, attempts: 2 },
    });
    // Items 0-5 were not called again; 6-9 were called once.
    const calls = executions(id).map((call) => call.args.item);
    expect(calls.sort((a, b) => Number(a) - Number(b))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const steps = (await api.call({ method: "GET", url: `/v1/jobs/${id}/steps` })).json().steps;
    expect(steps.map((step: { replayed: boolean }) => step.replayed)).toEqual([
      ...Array(6).fill(true),
      ...Array(4).fill(false),
    ]);
  });

  it("a server stored under a name that shadows a global does not break the project's other jobs", async () => {
    // Registration refuses such names now; a row stored before that check is renamed in
    // programs (toString → toString_) instead of making every run of the project fail.
    await api.db.server.create({
      data: {
        projectId: DEFAULT_PROJECT_ID,
        name: "toString",
        config: { command: process.execPath, args: [CONTROL_SERVER] },
      },
    });
    const changed = channels(api.config.TURTLE_QUEUE).servers;
    await api.app.redis.publish(changed, serverRef(DEFAULT_PROJECT_ID, "toString"));
    try {
      // The worker hears of the new row on pub/sub; until then a run may not know toString_.
      const job = await eventually("a job using both servers", async () => {
        const response = await api.call({
          method: "POST",
          url: "/v1/jobs?wait=30",
          payload: {
            code: "const a = await control.echo({ n: 1 });\nconst b = await toString_.echo({ n: 2 });\nreturn [a.n, b.n, typeof toString];",
          },
        });
        const body = response.json();
        return body.status === "failed" && body.error.message.includes("toString_ is not defined")
          ? undefined
          : body;
      });
      expect(job).toMatchObject({ status: "succeeded", result: [1, 2, "function"] });
    } finally {
      await api.db.server.delete({
        where: { projectId_name: { projectId: DEFAULT_PROJECT_ID, name: "toString" } },
      });
      await api.app.redis.publish(changed, serverRef(DEFAULT_PROJECT_ID, "toString"));
    }
  });
});
