// Fair shares of the fleet's run slots between projects, with a real API, two worker processes
// and the control MCP server: one project's jobs waiting on slow tool calls (more of them than
// the fleet has slots) do not hold back another project's runnable jobs.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CONTROL_SERVER,
  eventually,
  startApi,
  startWorker,
  type TestApi,
  type TestWorker,
} from "@turtle/test-support";
import type { InjectOptions } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let api: TestApi;
let dir: string;
const workers: TestWorker[] = [];

interface Project {
  id: string;
  call(request: InjectOptions): ReturnType<TestApi["call"]>;
}

async function project(name: string): Promise<Project> {
  // Its jobs call the tests' own stdio server.
  const made = await api.call({
    method: "POST",
    url: "/v1/projects",
    payload: { name, allowStdioServers: true },
  });
  expect(made.statusCode, made.body).toBe(201);
  const { project: row, key } = made.json();
  return {
    id: row.id,
    call: (request) =>
      api.app.inject({
        ...request,
        headers: { authorization: `Bearer ${key.key}`, ...request.headers },
      }),
  };
}

async function submit(owner: Project, payload: Record<string, unknown>): Promise<string> {
  const response = await owner.call({ method: "POST", url: "/v1/jobs", payload });
  expect(response.statusCode, response.body).toBe(202);
  return response.json().id;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "turtle-fair-"));
  api = await startApi();
  // Two workers of 16 slots each: 32, fewer than the slow project's jobs.
  for (let i = 0; i < 2; i++) {
    workers.push(
      await startWorker(api, dir, { WORKER_CONCURRENCY: "16", WORKER_PROJECT_CONCURRENCY: "8" }),
    );
  }
});

afterAll(async () => {
  for (const worker of workers) {
    worker.child.kill("SIGKILL");
    await worker.exited;
  }
  await api?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("fair shares between projects", () => {
  it("runs one project's trivial jobs while another's 40 jobs wait on tool calls", async () => {
    const slow = await project("slow");
    const quick = await project("quick");
    const registered = await slow.call({
      method: "POST",
      url: "/v1/servers",
      payload: { name: "control", command: process.execPath, args: [CONTROL_SERVER] },
    });
    expect(registered.statusCode, registered.body).toBe(201);

    // Every call of the slow project's jobs waits until this file exists.
    const gate = join(dir, "open");
    const slowIds: string[] = [];
    for (let i = 0; i < 40; i++) {
      slowIds.push(
        await submit(slow, {
          code: `await control.gate({ path: ${JSON.stringify(gate)} }); return input.i;`,
          input: { i },
          timeoutMs: 120_000,
        }),
      );
    }
    await eventually("the slow project's jobs to be running", async () => {
      const running = await api.db.job.count({ where: { projectId: slow.id, status: "running" } });
      return running >= 16 ? running : undefined;
    });

    const quickIds: string[] = [];
    for (let i = 0; i < 20; i++) quickIds.push(await submit(quick, { code: `return ${i};` }));
    const quickJobs = await eventually("every quick job to succeed", async () => {
      const rows = await api.db.job.findMany({ where: { id: { in: quickIds } } });
      return rows.every((row) => row.status === "succeeded") ? rows : undefined;
    });
    expect(quickJobs).toHaveLength(20);
    // Ordering, not timing: none of the slow project's calls has been let through yet.
    expect(existsSync(gate)).toBe(false);
    expect(
      await api.db.job.count({
        where: { projectId: slow.id, status: { notIn: ["queued", "running"] } },
      }),
    ).toBe(0);

    writeFileSync(gate, "");
    const slowJobs = await eventually(
      "every slow job to succeed",
      async () => {
        const rows = await api.db.job.findMany({ where: { id: { in: slowIds } } });
        return rows.every((row) => row.status === "succeeded") ? rows : undefined;
      },
      60_000,
    );
    expect(slowJobs.map((row) => row.result).sort((a, b) => Number(a) - Number(b))).toEqual(
      Array.from({ length: 40 }, (_, i) => i),
    );
    // A job given back to the queue for another project's sake was never delivered: every job
    // started once.
    expect(new Set([...slowJobs, ...quickJobs].map((row) => row.deliveries))).toEqual(new Set([1]));
  });
});
