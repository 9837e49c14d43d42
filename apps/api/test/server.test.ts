// The API as a process on a real socket: `npm run api` as users run it.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createDb, type Db } from "@turtle/db";
import {
  CONTROL_SERVER,
  eventually,
  freePort,
  it,
  REPO_ROOT,
  startWorker,
  TEST_SECRETS_KEY,
  type TestDatabase,
  testConfig,
  testQueueName,
} from "@turtle/test-support";
import { afterAll, describe, expect } from "vitest";
import { createApiKey } from "../src/index.ts";

const SERVER = `${REPO_ROOT}apps/api/src/server.ts`;

let database: TestDatabase;
let db: Db;
let dir: string;
let key: string;

it.beforeAll(async ({ database: made }) => {
  database = made;
  db = createDb(database.url, { max: 2 });
  ({ key } = await createApiKey(db, "server-test"));
  // No .env here: the process sees only the environment the test gives it.
  dir = mkdtempSync(join(tmpdir(), "turtle-api-process-"));
});

afterAll(async () => {
  // The database fixture drops the database after the file.
  await db.$disconnect();
  rmSync(dir, { recursive: true, force: true });
});

interface Api {
  child: ChildProcess;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
}

async function startServer(env: Record<string, string>): Promise<Api> {
  const port = await freePort();
  const child = spawn(process.execPath, [SERVER], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? "",
      DATABASE_URL: database.url,
      TURTLE_QUEUE: testQueueName(),
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "info",
      SECRETS_KEY: TEST_SECRETS_KEY,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  return { child, url: `http://127.0.0.1:${port}`, output: () => output, exited };
}

describe("the API process", () => {
  it("serves over HTTP, keeps secrets out of its log, and closes gracefully on SIGTERM", async () => {
    const api = await startServer({});
    try {
      await eventually("the API to listen", async () => {
        const response = await fetch(`${api.url}/healthz`).catch(() => undefined);
        return response?.ok ? true : undefined;
      });
      const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };

      const unauthorized = await fetch(`${api.url}/v1/jobs`);
      expect(unauthorized.status).toBe(401);

      const registered = await fetch(`${api.url}/v1/servers`, {
        method: "POST",
        headers,
        body: JSON.stringify({ name: "s", command: "/nonexistent", env: { TOKEN: "hush-1" } }),
      });
      expect(registered.status).toBe(201);
      const unreachable = await fetch(`${api.url}/v1/servers/s/tools`, { headers });
      expect(unreachable.status).toBe(502);

      const submitted = await fetch(`${api.url}/v1/jobs`, {
        method: "POST",
        headers,
        body: JSON.stringify({ code: "return 1" }),
      });
      expect(submitted.status).toBe(202);
      const { id } = (await submitted.json()) as { id: string };

      // A client that hangs up on a wait, and one still waiting when the process is told to stop.
      const received = (wait: string) => () =>
        api.output().includes(`"url":"/v1/jobs/${id}?wait=${wait}"`) ? true : undefined;
      // (node:http without an agent: fetch would open a spare connection once this one is gone.)
      const abandoned = request(`${api.url}/v1/jobs/${id}?wait=59`, { agent: false, headers });
      const hungUp = new Promise((resolve) => abandoned.once("error", resolve));
      abandoned.end();
      await eventually("the first wait to arrive", received("59"));
      abandoned.destroy();
      await hungUp;
      const waiting = fetch(`${api.url}/v1/jobs/${id}?wait=60`, { headers });
      await eventually("the second wait to arrive", received("60"));
      // The job is only queued (no worker here): SIGTERM ends the wait with the job as it is.
      api.child.kill("SIGTERM");
      const answered = await waiting;
      expect(answered.status).toBe(202);
      expect(await answered.json()).toMatchObject({ id, status: "queued" });
      expect(await api.exited).toBe(0);

      expect(api.output()).toContain('"msg":"SIGTERM: closing"');
      expect(api.output()).not.toContain("hush-1");
      expect(api.output()).not.toContain(key);
    } finally {
      api.child.kill("SIGKILL");
      await api.exited;
    }
  });

  it("answers a long-poll cut by a restart; the job ends all the same, its call made once", async () => {
    const queue = testQueueName();
    const worker = await startWorker(
      { config: testConfig(database.url, { TURTLE_QUEUE: queue }) },
      dir,
    );
    const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
    const ready = (url: string) =>
      eventually("the API to listen", async () => {
        const response = await fetch(`${url}/healthz`).catch(() => undefined);
        return response?.ok ? true : undefined;
      });
    const first = await startServer({ TURTLE_QUEUE: queue });
    let second: Api | undefined;
    try {
      await ready(first.url);
      const registered = await fetch(`${first.url}/v1/servers/control`, {
        method: "PUT",
        headers,
        body: JSON.stringify({ command: process.execPath, args: [CONTROL_SERVER] }),
      }).then((response) => response.status);
      expect(registered).toBe(201);
      const waiting = fetch(`${first.url}/v1/jobs?wait=30`, {
        method: "POST",
        headers,
        body: JSON.stringify({
          code: "await control.sleep({ ms: 2000 });\nreturn 'slept';",
          servers: ["control"],
        }),
      });
      const running = await eventually("the job to run", async () => {
        const job = await db.job.findFirst({ where: { status: "running" } });
        return job ?? undefined;
      });
      first.child.kill("SIGTERM");
      const answered = await waiting;
      expect(answered.status).toBe(202);
      expect(await answered.json()).toMatchObject({ id: running.id, status: "running" });
      expect(await first.exited).toBe(0);

      second = await startServer({ TURTLE_QUEUE: queue });
      await ready(second.url);
      const ended = await fetch(`${second.url}/v1/jobs/${running.id}?wait=30`, { headers });
      expect(ended.status).toBe(200);
      expect(await ended.json()).toMatchObject({ status: "succeeded", result: "slept" });
      expect(await db.step.count({ where: { jobId: running.id } })).toBe(1);
    } finally {
      first.child.kill("SIGKILL");
      second?.child.kill("SIGKILL");
      worker.child.kill("SIGKILL");
      await Promise.all([first.exited, second?.exited, worker.exited]);
    }
  });

  it("stops at once with a message naming a bad setting", async () => {
    const api = await startServer({ PORT: "eighty", JOB_MEMORY_MB: "2" });
    expect(await api.exited).toBe(1);
    expect(api.output()).toContain('PORT="eighty"');
    expect(api.output()).toContain('JOB_MEMORY_MB="2"');
  });

  it("stops with a message naming the file when MCP_SERVERS_FILE is bad", async () => {
    const api = await startServer({ MCP_SERVERS_FILE: join(dir, "missing.json") });
    expect(await api.exited).toBe(1);
    expect(api.output()).toContain("missing.json: cannot read");
  });
});
