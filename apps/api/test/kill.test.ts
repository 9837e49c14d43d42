// The API killed (SIGKILL) at every point of a submission — after the job's row is written, after
// its queue entry is added, before the answer, after a resume's run is recorded — and at random
// during 200 concurrent submissions: once an API runs again, every accepted job (every 2xx
// answer, every row in Postgres) runs to the end, and none runs twice.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createJobQueue, createRedis } from "@turtle/core";
import { createDb, type Db, type Job } from "@turtle/db";
import {
  CONTROL_SERVER,
  createTestDatabase,
  eventually,
  freePort,
  REPO_ROOT,
  startWorker,
  type TestDatabase,
  type TestWorker,
  testConfig,
} from "@turtle/test-support";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createApiKey } from "../src/index.ts";
import type { KillPoint } from "../src/jobs/lifecycle.ts";

const SERVER = `${REPO_ROOT}apps/api/src/server.ts`;

let database: TestDatabase;
let db: Db;
let dir: string;
let key: string;
let config: ReturnType<typeof testConfig>;
const processes: ChildProcess[] = [];

beforeEach(async () => {
  database = await createTestDatabase("kill");
  db = createDb(database.url, { max: 2 });
  ({ key } = await createApiKey(db, "kill-test"));
  dir = mkdtempSync(join(tmpdir(), "turtle-kill-"));
  // The stuck jobs are looked for every half second; a dead worker's lock lapses in a second.
  config = testConfig(database.url, { REQUEUE_AFTER_MS: "500", WORKER_LOCK_MS: "1000" });
});

afterEach(async () => {
  for (const child of processes.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGKILL");
      await exited;
    }
  }
  await db.$disconnect();
  await database.drop();
  rmSync(dir, { recursive: true, force: true });
});

interface Api {
  child: ChildProcess;
  url: string;
  exited: Promise<NodeJS.Signals | null>;
}

/** `npm run api` on the test's database and queue, ready once /healthz answers. */
async function startApiProcess(killAt?: KillPoint): Promise<Api> {
  const port = await freePort();
  const child = spawn(process.execPath, [SERVER], {
    cwd: dir,
    env: {
      PATH: process.env.PATH ?? "",
      DATABASE_URL: config.DATABASE_URL,
      TURTLE_QUEUE: config.TURTLE_QUEUE,
      SECRETS_KEY: config.SECRETS_KEY ?? "",
      REQUEUE_AFTER_MS: String(config.REQUEUE_AFTER_MS),
      WORKER_LOCK_MS: String(config.WORKER_LOCK_MS),
      HOST: "127.0.0.1",
      PORT: String(port),
      LOG_LEVEL: "warn",
      ...(killAt === undefined ? {} : { TEST_KILL_AT: killAt }),
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  processes.push(child);
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.once("exit", (_code, signal) => resolve(signal)),
  );
  const url = `http://127.0.0.1:${port}`;
  await eventually("the API to answer /healthz", async () => {
    if (child.exitCode !== null) throw new Error("the API exited before it was ready");
    return (await fetch(`${url}/healthz`).catch(() => undefined))?.ok ? true : undefined;
  });
  return { child, url, exited };
}

/** A POST's status and body, or null when the connection broke (the API died). */
async function post(
  api: Api,
  path: string,
  body: unknown,
): Promise<{ status: number; body: { id: string; status: string } } | null> {
  try {
    const response = await fetch(`${api.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as never };
  } catch {
    return null;
  }
}

async function worker(): Promise<TestWorker> {
  const started = await startWorker({ config }, dir, {
    WORKER_LOCK_MS: String(config.WORKER_LOCK_MS),
  });
  processes.push(started.child);
  return started;
}

/**
 * Every listed job, and every job in Postgres, ends succeeded; none was started twice but those
 * whose worker died under them (`redelivered`).
 */
async function allSucceedOnce(ids: string[], redelivered: string[] = []): Promise<Job[]> {
  const jobs = await eventually(
    "every accepted job to succeed",
    async () => {
      const rows = await db.job.findMany();
      return rows.length >= ids.length && rows.every((row) => row.status === "succeeded")
        ? rows
        : undefined;
    },
    60_000,
  );
  const found = new Set(jobs.map((job) => job.id));
  expect(ids.filter((id) => !found.has(id))).toEqual([]);
  const once = jobs.filter((job) => !redelivered.includes(job.id));
  expect(once.filter((job) => job.attempts !== 1).map((job) => [job.id, job.attempts])).toEqual([]);
  return jobs;
}

describe("an API killed in the middle of a submission", () => {
  it.each(["after-insert", "after-enqueue", "before-answer"] as const)(
    "%s: the recorded job runs once, and its key returns it",
    async (point) => {
      const dying = await startApiProcess(point);
      const answer = await post(dying, "/v1/jobs", {
        code: "return input.n * 2",
        input: { n: 21 },
        idempotencyKey: point,
      });
      expect(answer).toBeNull();
      expect(await dying.exited).toBe("SIGKILL");
      const [row] = await db.job.findMany();
      expect(row).toMatchObject({ status: "queued", idempotencyKey: point });

      const api = await startApiProcess();
      await worker();
      const [job] = await allSucceedOnce([row?.id ?? ""]);
      expect(job?.result).toBe(42);
      // The client that never heard back retries with its key: the same job, not a second one.
      const retried = await post(api, "/v1/jobs", {
        code: "return input.n * 2",
        input: { n: 21 },
        idempotencyKey: point,
      });
      expect(retried).toEqual({ status: 200, body: { id: row?.id, status: "succeeded" } });
      expect(await db.job.count()).toBe(1);
    },
  );

  it("before a resume's run is queued: the resumed run runs", async () => {
    let api = await startApiProcess();
    await worker();
    const submitted = await post(api, "/v1/jobs?wait=30", { code: "throw new Error('bug')" });
    expect(submitted?.body.status).toBe("failed");
    const id = submitted?.body.id ?? "";
    api.child.kill("SIGTERM");
    await api.exited;

    const dying = await startApiProcess("before-requeue");
    expect(await post(dying, `/v1/jobs/${id}/resume`, { code: "return 'fixed'" })).toBeNull();
    expect(await dying.exited).toBe("SIGKILL");
    expect(await db.job.findUniqueOrThrow({ where: { id } })).toMatchObject({
      status: "queued",
      run: 1,
    });

    api = await startApiProcess();
    const job = await eventually("the resumed run to succeed", async () => {
      const row = await db.job.findUniqueOrThrow({ where: { id } });
      return row.status === "succeeded" ? row : undefined;
    });
    expect(job).toMatchObject({ run: 1, result: "fixed", attempts: 2 });
  });

  it("at random during 200 concurrent submissions: every accepted job runs once", async () => {
    const first = await startApiProcess();
    await worker();
    // Killed once this many have been answered: somewhere in the middle of the burst.
    const killAfter = 1 + Math.floor(Math.random() * 100);
    let answered = 0;
    const accepted: string[] = [];
    const answers = await Promise.all(
      Array.from({ length: 200 }, async (_, n) => {
        const answer = await post(first, "/v1/jobs", {
          code: "return input.n",
          input: { n },
          idempotencyKey: `burst-${n}`,
        });
        if (answer !== null && answer.status < 300) accepted.push(answer.body.id);
        answered++;
        if (answered === killAfter) first.child.kill("SIGKILL");
        return answer;
      }),
    );
    await first.exited;
    const lost = answers.filter((answer) => answer === null).length;
    expect(lost, `killed after ${killAfter} answers`).toBeGreaterThan(0);

    const api = await startApiProcess();
    await allSucceedOnce(accepted);
    // The clients that heard nothing retry with their keys: each gets its job, none a second.
    const retried = await Promise.all(
      Array.from({ length: 200 }, (_, n) =>
        post(api, "/v1/jobs", {
          code: "return input.n",
          input: { n },
          idempotencyKey: `burst-${n}`,
        }),
      ),
    );
    expect(retried.filter((answer) => answer === null || answer.status >= 300)).toEqual([]);
    const jobs = await allSucceedOnce(accepted);
    expect(jobs).toHaveLength(200);
    expect(new Set(jobs.map((job) => job.result)).size).toBe(200);
  });
});

describe("Redis restarted without its data", () => {
  it("loses no job: those queued and one whose worker died are queued again and run", async () => {
    const api = await startApiProcess();
    const registered = await fetch(`${api.url}/v1/servers`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "control", command: process.execPath, args: [CONTROL_SERVER] }),
    });
    expect(registered.status).toBe(201);
    const first = await worker();
    const sleeper = await post(api, "/v1/jobs", {
      code: "await control.sleep({ ms: 1500 });\nreturn 'slept';",
      timeoutMs: 5000,
    });
    const sleeping = sleeper?.body.id ?? "";
    await eventually("the job to run", async () =>
      (await db.job.findUniqueOrThrow({ where: { id: sleeping } })).status === "running"
        ? true
        : undefined,
    );
    // Its worker dies with it, and jobs wait with no worker to take them.
    first.child.kill("SIGKILL");
    await first.exited;
    const waiting = [];
    for (let n = 0; n < 5; n++) {
      waiting.push((await post(api, "/v1/jobs", { code: `return ${n}` }))?.body.id ?? "");
    }
    // Everything Redis held for the queue is gone, as from a Redis without persistence.
    const redis = createRedis(config.REDIS_URL, "kill-test");
    const queue = createJobQueue(config.TURTLE_QUEUE, redis);
    await queue.obliterate({ force: true });
    await queue.close();
    redis.disconnect();

    await worker();
    const jobs = await allSucceedOnce(waiting, [sleeping]);
    expect(jobs).toHaveLength(6);
    expect(jobs.find((job) => job.id === sleeping)).toMatchObject({ result: "slept", attempts: 2 });
  });
});
