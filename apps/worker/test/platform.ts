/**
 * A real platform for tests: a fresh Postgres database, a queue name of its own, and worker
 * processes started the way `npm run worker` starts them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  channels,
  createJobQueue,
  createRedis,
  createSecretBox,
  DEFAULT_PROJECT_ID,
  generateSecretsKey,
  type JobQueue,
  type NewJob,
  saveServer,
  submitJob,
} from "@turtle/core";
import type { Db, Job, JobStatus } from "@turtle/db";
import { createDb } from "@turtle/db";
import { createTestDatabase, type TestDatabase } from "@turtle/db/testing";
import type { Redis } from "ioredis";

export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const WORKER_MAIN = join(ROOT, "apps/worker/src/main.ts");
export const CONTROL_SERVER = join(ROOT, "packages/bindings/test/servers/control-server.ts");

export interface WorkerProcess {
  process: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

export interface Platform {
  db: Db;
  queue: JobQueue;
  redis: Redis;
  env: Record<string, string>;
  countFile: string;
  startWorker(env?: Record<string, string>): Promise<WorkerProcess>;
  submit(job: Partial<NewJob> & { code: string }): Promise<Job>;
  waitFor(jobId: string, statuses: JobStatus[], timeoutMs?: number): Promise<Job>;
  executions(): Promise<
    Array<{
      tool: string;
      args: Record<string, unknown>;
      idempotencyKey?: string;
      pid: number;
      /** When the server began executing it (epoch ms). */
      at: number;
    }>
  >;
  close(): Promise<void>;
}

export async function createPlatform(
  label: string,
  env: Record<string, string> = {},
  options: { databaseServer?: string } = {},
): Promise<Platform> {
  const database: TestDatabase = await createTestDatabase(label, options.databaseServer);
  const queueName = `test-${label}-${randomBytes(4).toString("hex")}`;
  const dir = await mkdtemp(join(tmpdir(), "turtle-worker-"));
  const countFile = join(dir, "executions.jsonl");
  const platformEnv: Record<string, string> = {
    DATABASE_URL: database.url,
    TURTLE_QUEUE: queueName,
    LOG_LEVEL: "info",
    WORKER_LOCK_MS: "1000",
    SECRETS_KEY: generateSecretsKey(),
    // The control server shares a file with the test and is killed by pid: unconfined (the
    // sandbox's PID namespace would hide its pid). Confinement has tests of its own.
    STDIO_SANDBOX: "none",
    ...env,
  };
  const db = createDb(database.url);
  const redis = createRedis(
    env.REDIS_URL ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    "test",
  );
  // Tests that stop Redis expect its connections to fail for a while: not worth a report each.
  redis.on("error", () => {});
  const queue = createJobQueue(queueName, redis);
  queue.on("error", () => {});
  await saveServer(
    db,
    createSecretBox(platformEnv),
    { projectId: DEFAULT_PROJECT_ID, name: "control" },
    {
      command: process.execPath,
      args: [CONTROL_SERVER],
      env: { COUNT_FILE: countFile },
    },
  );
  const workers: WorkerProcess[] = [];

  return {
    db,
    queue,
    redis,
    env: platformEnv,
    countFile,
    async startWorker(extra = {}) {
      const child = spawn(process.execPath, ["--no-node-snapshot", WORKER_MAIN], {
        cwd: ROOT,
        env: { ...process.env, ...platformEnv, ...extra },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let text = "";
      const ready = new Promise<void>((resolve, reject) => {
        const onData = (chunk: Buffer) => {
          text += chunk.toString();
          if (text.includes('"msg":"worker ready"')) resolve();
        };
        child.stdout?.on("data", onData);
        child.stderr?.on("data", (chunk: Buffer) => {
          text += chunk.toString();
        });
        child.once("exit", (code) =>
          reject(new Error(`worker exited (${code}) before ready:\n${text}`)),
        );
      });
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      const worker: WorkerProcess = {
        process: child,
        output: () => text,
        exited,
        kill: (signal) => child.kill(signal),
      };
      workers.push(worker);
      await ready;
      return worker;
    },
    async submit(job) {
      const { job: row } = await submitJob(db, queue, {
        projectId: DEFAULT_PROJECT_ID,
        timeoutMs: 60_000,
        memoryMb: 64,
        ...job,
      });
      return row;
    },
    async waitFor(jobId, statuses, timeoutMs = 60_000) {
      // Wait on the job events the worker publishes; Postgres is read after each to be sure.
      const subscriber = redis.duplicate();
      try {
        await subscriber.subscribe(channels(queueName).jobEvents);
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const job = await db.job.findUniqueOrThrow({ where: { id: jobId } });
          if (statuses.includes(job.status)) return job;
          const remaining = deadline - Date.now();
          if (remaining <= 0) {
            throw new Error(
              `job ${jobId} is ${job.status}, not ${statuses.join("|")}, after ${timeoutMs} ms`,
            );
          }
          await new Promise<void>((resolve) => {
            const wake = () => {
              clearTimeout(timer);
              subscriber.off("message", wake);
              resolve();
            };
            const timer = setTimeout(wake, Math.min(remaining, 1000));
            subscriber.on("message", wake);
          });
        }
      } finally {
        subscriber.disconnect();
      }
    },
    async executions() {
      const text = await readFile(countFile, "utf8").catch(() => "");
      return text
        .split("\n")
        .filter((line) => line.length > 0)
        .map((line) => JSON.parse(line));
    },
    async close() {
      for (const worker of workers) {
        if (worker.process.exitCode === null && worker.process.signalCode === null) {
          worker.kill("SIGKILL");
          await worker.exited;
        }
      }
      await queue.obliterate({ force: true }).catch(() => {});
      await queue.close();
      redis.disconnect();
      await db.$disconnect();
      await database.drop();
    },
  };
}
