// `npm start` supervises its API and worker: one that dies is started again after a back-off,
// the other keeps running, and SIGTERM still stops both.
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Backoff } from "@turtle/core";
import { createDb, type Db } from "@turtle/db";
import {
  eventually,
  freePort,
  it,
  REPO_ROOT,
  TEST_SECRETS_KEY,
  type TestDatabase,
  testQueueName,
} from "@turtle/test-support";
import { afterAll, describe, expect } from "vitest";
import { createApiKey } from "../src/index.ts";

describe("Backoff", () => {
  it("doubles the wait with each death up to its cap, and starts over after a stable run", () => {
    const backoff = new Backoff({ initialMs: 1000, maxMs: 5000, stableMs: 60_000 });
    expect([10, 10, 10, 10, 10].map((upMs) => backoff.died(upMs))).toEqual([
      1000, 2000, 4000, 5000, 5000,
    ]);
    expect(backoff.died(60_000)).toBe(1000);
    expect(backoff.died(10)).toBe(2000);
  });
});

let database: TestDatabase;
let db: Db;
let key: string;

it.beforeAll(async ({ database: made }) => {
  database = made;
  db = createDb(database.url, { max: 2 });
  ({ key } = await createApiKey(db, "start-test"));
});

afterAll(async () => {
  // The database fixture drops the database after the file.
  await db.$disconnect();
});

/** The pid of the child of `parent` running `entry` (the API's or the worker's main file). */
function childRunning(parent: number, entry: string): number | undefined {
  let children: string[];
  try {
    children = readFileSync(`/proc/${parent}/task/${parent}/children`, "utf8")
      .split(" ")
      .filter((pid) => pid !== "");
  } catch {
    return undefined; // `npm start` itself has exited
  }
  for (const pid of children) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(entry)) return Number(pid);
    } catch {
      // It exited meanwhile.
    }
  }
  return undefined;
}

describe("npm start", () => {
  it("starts a worker killed with SIGKILL again while the API answers throughout; SIGTERM stops both", async () => {
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const start: ChildProcess = spawn(process.execPath, [`${REPO_ROOT}scripts/start.ts`], {
      env: {
        PATH: process.env.PATH ?? "",
        DATABASE_URL: database.url,
        TURTLE_QUEUE: testQueueName(),
        SECRETS_KEY: TEST_SECRETS_KEY,
        PORT: String(port),
        LOG_LEVEL: "info",
        WORKER_CONCURRENCY: "2",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    start.stdout?.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    start.stderr?.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    const exited = new Promise<number | null>((resolve) => start.once("exit", resolve));
    const pid = start.pid ?? 0;
    try {
      const worker = await eventually("the worker to be ready", () =>
        output.includes('"msg":"worker ready"')
          ? childRunning(pid, "apps/worker/src/main.ts")
          : undefined,
      );
      const api = await eventually("the API to answer", async () =>
        (await fetch(`${base}/healthz`).catch(() => undefined))?.ok
          ? childRunning(pid, "apps/api/src/server.ts")
          : undefined,
      );

      // The API is asked every 50 ms from before the kill until the job has run.
      const health: number[] = [];
      let watching = true;
      const watch = (async () => {
        while (watching) {
          const answer = await fetch(`${base}/healthz`).catch(() => undefined);
          health.push(answer?.status ?? 0);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      process.kill(worker, "SIGKILL");
      const restarted = await eventually("a new worker", () => {
        const now = childRunning(pid, "apps/worker/src/main.ts");
        return now !== undefined && now !== worker ? now : undefined;
      });
      expect(output).toContain("worker exited by SIGKILL");
      expect(output).toContain("starting it again in 1 s");

      const submitted = await fetch(`${base}/v1/jobs?wait=30`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ code: "return 'after the restart'" }),
      });
      expect(await submitted.json()).toMatchObject({
        status: "succeeded",
        result: "after the restart",
      });
      watching = false;
      await watch;
      expect(health.length).toBeGreaterThan(0);
      expect(health.filter((status) => status !== 200)).toEqual([]);
      expect(childRunning(pid, "apps/api/src/server.ts")).toBe(api);

      // Killed again soon after: the next wait is twice as long.
      process.kill(restarted, "SIGKILL");
      await eventually("the second restart to be announced", () =>
        output.includes("starting it again in 2 s") ? true : undefined,
      );

      start.kill("SIGTERM");
      expect(await exited).toBe(0);
      for (const child of [api, restarted]) {
        expect(() => process.kill(child, 0)).toThrow();
      }
    } finally {
      if (start.exitCode === null) {
        for (const entry of ["apps/api/src/server.ts", "apps/worker/src/main.ts"]) {
          const child = childRunning(pid, entry);
          if (child !== undefined) process.kill(child, "SIGKILL");
        }
        start.kill("SIGKILL");
      }
    }
  });
});
