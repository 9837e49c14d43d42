/**
 * A whole platform for tests: a fresh Postgres database, a queue name of its own, the control
 * server registered as `control` (its calls recorded in `countFile`), worker processes started
 * the way `npm run worker` starts them, and the real API on the same database and queue, built
 * in this process the first time a test calls it, with a key of its own. `close()` kills the
 * workers still running, closes the API, empties the queue and drops the database.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApiKey } from "@turtle/api";
import {
  channels,
  createJobQueue,
  createRedis,
  createSecretBox,
  DEFAULT_PROJECT_ID,
  type JobQueue,
  loadConfig,
  type NewJob,
  saveServer,
  submitJob,
} from "@turtle/core";
import { createDb, type Db, type Job, type JobStatus } from "@turtle/db";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import type { Redis } from "ioredis";
import { startApi, type TestApi } from "./api.ts";
import { createTestDatabase, testQueueName } from "./database.ts";
import { CONTROL_SERVER, REPO_ROOT, TEST_SECRETS_KEY, UNCONFINED } from "./paths.ts";
import { killWorker, spawnWorker, type TestWorker } from "./processes.ts";

/** One call the control server executed, as it recorded it. */
export interface Execution {
  tool: string;
  args: Record<string, unknown>;
  idempotencyKey?: string;
  pid: number;
  /** When the server began executing it (epoch ms). */
  at: number;
}

export interface Platform {
  db: Db;
  queue: JobQueue;
  redis: Redis;
  /** The workers' environment (the API's too): database, queue, secrets key, lock duration. */
  env: Record<string, string>;
  countFile: string;
  /** An API key of the default project. */
  key: string;
  /** A worker process; `env` adds to (or overrides) the platform's. */
  startWorker(env?: Record<string, string>): Promise<TestWorker>;
  /** Submits a job straight to Postgres and the queue, the way the API does. */
  submit(job: Partial<NewJob> & { code: string }): Promise<Job>;
  /** Waits until the job is in one of `statuses`, woken by the workers' job events. */
  waitFor(jobId: string, statuses: JobStatus[], timeoutMs?: number): Promise<Job>;
  /** The calls the control server executed, in order. */
  executions(): Promise<Execution[]>;
  /** The real API on this platform (built on first use). */
  api(): Promise<TestApi>;
  /** Sends a request to the API with the platform's key. */
  call(request: InjectOptions): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export interface PlatformOptions {
  /** Goes into the database's and queue's names. */
  label?: string;
  /** Adds to (or overrides) the environment of the workers and the API. */
  env?: Record<string, string>;
  /** The Postgres server to make the database on (a URL of its maintenance database). */
  databaseServer?: string;
}

export async function createPlatform(options: PlatformOptions = {}): Promise<Platform> {
  const label = options.label ?? "platform";
  const env = options.env ?? {};
  const database = await createTestDatabase(label, options.databaseServer);
  const queueName = testQueueName(`test-${label}`);
  const dir = await mkdtemp(join(tmpdir(), "turtle-platform-"));
  const countFile = join(dir, "executions.jsonl");
  const platformEnv: Record<string, string> = {
    DATABASE_URL: database.url,
    TURTLE_QUEUE: queueName,
    LOG_LEVEL: "info",
    WORKER_LOCK_MS: "1000",
    SECRETS_KEY: TEST_SECRETS_KEY,
    // The control server shares a file with the test and is killed by pid.
    ...UNCONFINED,
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
    { command: process.execPath, args: [CONTROL_SERVER], env: { COUNT_FILE: countFile } },
  );
  const { key } = await createApiKey(db, "test");
  const workers: TestWorker[] = [];
  let api: Promise<TestApi> | undefined;
  const startedApi = () => {
    api ??= startApi({
      database,
      config: loadConfig({
        ...process.env,
        ...platformEnv,
        LOG_LEVEL: "silent",
        AUTH_FAILURES_PER_MINUTE: "1000000",
      }),
    });
    return api;
  };

  return {
    db,
    queue,
    redis,
    env: platformEnv,
    countFile,
    key,
    async startWorker(extra = {}) {
      const started = spawnWorker(
        { ...(process.env as Record<string, string>), ...platformEnv, ...extra },
        REPO_ROOT,
      );
      const worker = await started;
      workers.push(worker);
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
        .map((line) => JSON.parse(line) as Execution);
    },
    api: startedApi,
    async call(request) {
      const started = await startedApi();
      return started.app.inject({
        ...request,
        headers: { authorization: `Bearer ${key}`, ...request.headers },
      });
    },
    async close() {
      for (const worker of workers) await killWorker(worker);
      if (api !== undefined) await (await api.catch(() => undefined))?.app.close();
      await queue.obliterate({ force: true }).catch(() => {});
      await queue.close();
      redis.disconnect();
      await db.$disconnect();
      await database.drop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
