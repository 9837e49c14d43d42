import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  ActiveJobs,
  channels,
  createJobQueue,
  createRedis,
  createSecretBox,
  DEFAULT_PROJECT_ID,
  generateSecretsKey,
  type JobEvent,
  type JobQueue,
  JobStates,
  type NewJob,
  saveServer,
  submitJob,
  submitJobs,
} from "@turtle/core";
import { createDb, type Db, type JobStatus } from "@turtle/db";
import { createTestDatabase, type TestDatabase } from "@turtle/test-support/database";
import { Queue, Worker } from "bullmq";
import type { Redis } from "ioredis";
import ivm from "isolated-vm";
import { type Figure, percentile } from "./measure.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const CONTROL_SERVER = join(ROOT, "packages/bindings/test/servers/control-server.ts");
const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";

/**
 * The platform end to end — Postgres, Redis, real worker processes, a real stdio MCP server —
 * beside raw BullMQ, raw isolated-vm and a raw MCP SDK client measured in the same run.
 */
export async function benchPlatform(parts: readonly string[] = []): Promise<Figure[]> {
  const figures: Figure[] = [];
  const wanted = (part: string) => parts.length === 0 || parts.includes(part);
  const bench = await startBench();
  try {
    if (wanted("trivial")) figures.push(...(await trivialJobs(bench)));
    if (wanted("calls")) figures.push(...(await toolCallJobs(bench)));
    if (wanted("memory")) figures.push(await workerMemory(bench));
    if (wanted("fair")) figures.push(...(await fairShares(bench)));
  } finally {
    await bench.close();
  }
  return figures;
}

interface Bench {
  db: Db;
  finishes: Finishes;
  redis: Redis;
  queue: JobQueue;
  queueName: string;
  env: Record<string, string>;
  workers: ChildProcess[];
  startWorkers(count: number, env?: Record<string, string>): Promise<ChildProcess[]>;
  stopWorkers(): Promise<void>;
  run(
    job: Partial<NewJob> & { code: string },
  ): Promise<{ ms: number; job: Awaited<ReturnType<Db["job"]["findUniqueOrThrow"]>> }>;
  close(): Promise<void>;
}

async function startBench(): Promise<Bench> {
  const database: TestDatabase = await createTestDatabase("bench");
  const queueName = `bench-${randomBytes(4).toString("hex")}`;
  const db = createDb(database.url);
  const redis = createRedis(REDIS_URL, "bench");
  const queue = createJobQueue(queueName, redis);
  const secretsKey = generateSecretsKey();
  const server = { projectId: DEFAULT_PROJECT_ID, name: "control" };
  await saveServer(db, createSecretBox({ SECRETS_KEY: secretsKey }), server, {
    command: process.execPath,
    args: [CONTROL_SERVER],
  });
  const finishes = await watchFinishes(queueName);
  const env = {
    DATABASE_URL: database.url,
    TURTLE_QUEUE: queueName,
    LOG_LEVEL: "silent",
    SECRETS_KEY: secretsKey,
    // Confined, as in production: the control server lives in the repository, which confined
    // servers see only where the operator lists it.
    STDIO_SANDBOX_PATHS: dirname(CONTROL_SERVER),
  };
  const workers: ChildProcess[] = [];
  const bench: Bench = {
    db,
    finishes,
    redis,
    queue,
    queueName,
    env,
    workers,
    async startWorkers(count, extra = {}) {
      const started = await Promise.all(
        Array.from({ length: count }, () => startWorker({ ...env, LOG_LEVEL: "info", ...extra })),
      );
      workers.push(...started);
      return started;
    },
    async stopWorkers() {
      await Promise.all(
        workers.splice(0).map(
          (worker) =>
            new Promise<void>((resolve) => {
              worker.once("exit", () => resolve());
              worker.kill("SIGTERM");
            }),
        ),
      );
    },
    async run(job) {
      const started = performance.now();
      const { job: row } = await submitJob(db, queue, {
        projectId: DEFAULT_PROJECT_ID,
        timeoutMs: 120_000,
        memoryMb: 128,
        ...job,
      });
      const done = await waitFinished(bench, row.id);
      return { ms: performance.now() - started, job: done };
    },
    async close() {
      await bench.stopWorkers();
      finishes.close();
      await queue.obliterate({ force: true }).catch(() => {});
      await queue.close();
      redis.disconnect();
      await db.$disconnect();
      await database.drop();
    },
  };
  return bench;
}

function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const extraArgs = process.env.BENCH_WORKER_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  const child = spawn(
    process.execPath,
    ["--no-node-snapshot", ...extraArgs, join(ROOT, "apps/worker/src/main.ts")],
    {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  return new Promise((resolve, reject) => {
    let text = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('"msg":"worker ready"')) {
        text = "";
        resolve(child);
      }
      if (text.length > 10_000) text = text.slice(-1000);
    });
    child.once("exit", (code) => reject(new Error(`worker exited with ${code}`)));
  });
}

/**
 * Job ends as a client learns of them: the workers' job events (published once the end is
 * committed), so that waiting costs Postgres nothing while it is being measured.
 */
interface Finishes {
  /** `succeeded` events seen so far. */
  readonly succeeded: number;
  /** Resolves at the job's next end event, or after `ms` (a last look at the row decides). */
  next(id: string, ms: number): Promise<void>;
  /** Resolves once `count` jobs have succeeded in all. */
  reach(count: number): Promise<void>;
  close(): void;
}

async function watchFinishes(queueName: string): Promise<Finishes> {
  const subscriber = createRedis(REDIS_URL, "bench-events");
  const waiters = new Map<string, () => void>();
  let goal: { count: number; done: () => void } | undefined;
  let succeeded = 0;
  await subscriber.subscribe(channels(queueName).jobEvents);
  subscriber.on("message", (_channel: string, message: string) => {
    const event = JSON.parse(message) as JobEvent;
    if (event.status === "running" || event.status === "queued") return;
    if (event.status === "succeeded") succeeded++;
    waiters.get(event.jobId)?.();
    if (goal !== undefined && succeeded >= goal.count) goal.done();
  });
  return {
    get succeeded() {
      return succeeded;
    },
    next(id, ms) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, ms);
        function done() {
          clearTimeout(timer);
          waiters.delete(id);
          resolve();
        }
        waiters.set(id, done);
      });
    },
    reach(count) {
      if (succeeded >= count) return Promise.resolve();
      return new Promise<void>((resolve) => {
        goal = { count, done: resolve };
      });
    },
    close() {
      subscriber.disconnect();
    },
  };
}

/** Waits for the job's end, which must be `expected` (succeeded unless said). */
async function waitFinished(bench: Bench, id: string, expected: JobStatus = "succeeded") {
  for (;;) {
    // The event may have come before this wait began: the row has the last word.
    const job = await bench.db.job.findUniqueOrThrow({ where: { id } });
    if (job.status === "succeeded" || job.status === "failed" || job.status === "cancelled") {
      if (job.status !== expected)
        throw new Error(`bench job ${job.status}, not ${expected}: ${JSON.stringify(job.error)}`);
      return job;
    }
    await bench.finishes.next(id, 100);
  }
}

/** Trivial jobs added in bulk, counted until `succeeded` is in Postgres. */
async function trivialJobs(bench: Bench): Promise<Figure[]> {
  const total = 6000;
  const rawBull = await rawBullThroughput(10_000);
  const rawIsolates = rawIsolateRate(500);
  await bench.startWorkers(2, { WORKER_CONCURRENCY: "32" });
  // Warm both workers (first job per process connects, compiles, caches).
  await Promise.all(Array.from({ length: 8 }, () => bench.run({ code: "return 1" })));
  const started = performance.now();
  for (let offset = 0; offset < total; offset += 1000) {
    await submitJobs(
      bench.db,
      bench.queue,
      Array.from({ length: 1000 }, () => ({
        projectId: DEFAULT_PROJECT_ID,
        code: "return 1",
        timeoutMs: 10_000,
        memoryMb: 32,
      })),
    );
  }
  await bench.finishes.reach(total + 8);
  const perSecond = total / ((performance.now() - started) / 1000);
  const succeeded = await bench.db.job.count({ where: { status: "succeeded" } });
  if (succeeded !== total + 8) throw new Error(`${succeeded} jobs succeeded in Postgres`);
  await bench.stopWorkers();
  return [
    {
      name: `trivial jobs, bulk-added, until succeeded in Postgres (${total}, 2 workers)`,
      unit: "jobs/s",
      value: perSecond,
      baseline: { name: "raw BullMQ no-op worker, concurrency 50", value: rawBull },
      target: { kind: "min", value: 1000 },
    },
    {
      name: "  the other ceiling: raw isolate create+dispose rate",
      unit: "jobs/s",
      value: perSecond,
      baseline: { name: "raw isolated-vm isolates/s, one thread", value: rawIsolates },
      target: { kind: "info", value: 0 },
    },
  ];
}

async function rawBullThroughput(total: number): Promise<number> {
  const name = `bench-raw-${randomBytes(4).toString("hex")}`;
  const connection = createRedis(REDIS_URL, "bench-raw");
  const queue = new Queue(name, { connection });
  let completed = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });
  const workerConnection = createRedis(REDIS_URL, "bench-raw-worker");
  const worker = new Worker(name, async () => {}, {
    connection: workerConnection,
    concurrency: 50,
    autorun: false,
    removeOnComplete: { count: 0 },
  });
  worker.on("completed", () => {
    completed++;
    if (completed === total) finish();
  });
  const started = performance.now();
  for (let offset = 0; offset < total; offset += 1000) {
    await queue.addBulk(Array.from({ length: 1000 }, (_, i) => ({ name: "noop", data: { i } })));
  }
  void worker.run();
  await finished;
  const perSecond = total / ((performance.now() - started) / 1000);
  await worker.close();
  // BullMQ leaves a connection it was given open: the bench would never exit.
  workerConnection.disconnect();
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  return perSecond;
}

function rawIsolateRate(count: number): number {
  const started = performance.now();
  for (let i = 0; i < count; i++) {
    const isolate = new ivm.Isolate({ memoryLimit: 32 });
    isolate.createContextSync().evalSync("1");
    isolate.dispose();
  }
  return count / ((performance.now() - started) / 1000);
}

/** 1,000 no-op calls to a stdio MCP server: a raw SDK client against one checkpointed job. */
async function toolCallJobs(bench: Bench): Promise<Figure[]> {
  const calls = 1000;
  const raw = await rawClientRates(calls);
  await bench.startWorkers(1);
  const concurrentCode = `await Promise.all(Array.from({ length: ${calls} }, (_, i) => control.noop({ i }))); return 1;`;
  const sequentialCode = `for (let i = 0; i < ${calls}; i++) await control.noop({ i }); return 1;`;
  await bench.run({ code: "await control.noop({}); return 1;" });
  const concurrent = Math.min(
    ...(await repeat(3, () => bench.run({ code: concurrentCode }))).map((r) => r.ms),
  );
  const sequentialRuns = await repeat(3, () => bench.run({ code: sequentialCode }));
  const sequential = Math.min(...sequentialRuns.map((r) => r.ms));
  for (const run of sequentialRuns) {
    const steps = await bench.db.step.count({ where: { jobId: run.job.id, status: "succeeded" } });
    if (steps !== calls) throw new Error(`expected ${calls} checkpoints, found ${steps}`);
  }

  // Resume a job whose 1,000 steps are all checkpointed: everything replays. The platform's own
  // resume (core's JobStates, as POST /v1/jobs/:id/resume), of a program that fails after them.
  const states = new JobStates({
    db: bench.db,
    redis: bench.redis,
    queueName: bench.queueName,
    activeJobs: new ActiveJobs(bench.redis, bench.queueName),
    queue: bench.queue,
  });
  const failing = `${sequentialCode.replace("return 1;", "")} throw new Error("resume me");`;
  const { job: subject } = await submitJob(bench.db, bench.queue, {
    projectId: DEFAULT_PROJECT_ID,
    code: failing,
    timeoutMs: 120_000,
    memoryMb: 128,
  });
  let ended = await waitFinished(bench, subject.id, "failed");
  const resumeTimes: number[] = [];
  for (let i = 1; i <= 3; i++) {
    const started = performance.now();
    if (!(await states.resume(ended, { limit: 1_000 }))) throw new Error("resume refused");
    ended = await waitFinished(bench, subject.id, "failed");
    if (ended.replayedSteps !== calls * i)
      throw new Error(`resume replayed ${ended.replayedSteps}`);
    resumeTimes.push(performance.now() - started);
  }
  await bench.stopWorkers();
  const perSecond = (ms: number) => calls / (ms / 1000);
  return [
    {
      name: `job with ${calls} checkpointed no-op calls, concurrent`,
      unit: "calls/s",
      value: perSecond(concurrent),
      baseline: { name: "raw MCP SDK client, concurrent", value: raw.concurrent },
      target: { kind: "min-ratio", value: 0.5 },
    },
    {
      name: `job with ${calls} checkpointed no-op calls, sequential`,
      unit: "calls/s",
      value: perSecond(sequential),
      baseline: { name: "raw MCP SDK client, sequential", value: raw.sequential },
      target: { kind: "min-ratio", value: 0.5 },
    },
    {
      name: `resume: all ${calls} steps replayed`,
      unit: "ms",
      value: Math.min(...resumeTimes),
      baseline: { name: "its first run", value: sequential },
      target: { kind: "max-ratio", value: 0.1 },
    },
  ];
}

async function rawClientRates(calls: number): Promise<{ concurrent: number; sequential: number }> {
  const client = new Client({ name: "bench", version: "1" });
  await client.connect(
    new StdioClientTransport({ command: process.execPath, args: [CONTROL_SERVER] }),
  );
  const call = (i: number) => client.callTool({ name: "noop", arguments: { i } });
  await Promise.all(Array.from({ length: 100 }, (_, i) => call(i)));
  const best = { concurrent: 0, sequential: 0 };
  for (let round = 0; round < 3; round++) {
    let started = performance.now();
    await Promise.all(Array.from({ length: calls }, (_, i) => call(i)));
    best.concurrent = Math.max(best.concurrent, calls / ((performance.now() - started) / 1000));
    started = performance.now();
    for (let i = 0; i < calls; i++) await call(i);
    best.sequential = Math.max(best.sequential, calls / ((performance.now() - started) / 1000));
  }
  await client.close();
  return best;
}

/** Peak RSS of a worker running 16 jobs at once, less what its isolates' heaps hold. */
async function workerMemory(bench: Bench): Promise<Figure> {
  const [worker] = await bench.startWorkers(1, { WORKER_CONCURRENCY: "16" });
  if (worker?.pid === undefined) throw new Error("no worker");
  const idle = await rss(worker.pid);
  let peak = idle;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peak = Math.max(peak, await rss(worker.pid ?? 0));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  // Each job keeps ~24 MB live in its isolate and makes tool calls while the others run.
  const code = `const keep = Array.from({ length: 24 }, () => new Uint8Array(1 << 20).fill(1));
for (let i = 0; i < 50; i++) await control.echo({ i, pad: "x".repeat(10_000) });
return keep.length;`;
  const runs = await Promise.all(
    Array.from({ length: 16 }, () => bench.run({ code, memoryMb: 64, timeoutMs: 60_000 })),
  );
  sampling = false;
  await sampler;
  await bench.stopWorkers();
  const isolateBytes = 16 * 64 * 1024 * 1024;
  if (runs.length !== 16) throw new Error("memory jobs did not all run");
  return {
    name: `worker RSS, 16 jobs in flight (peak ${Math.round(peak / 1024 / 1024)} MB) beyond isolates' limits (16 × 64 MB)`,
    unit: "MB",
    value: Math.max(0, (peak - isolateBytes) / 1024 / 1024),
    baseline: { name: "worker RSS idle", value: idle / 1024 / 1024 },
    target: { kind: "max", value: 400 },
  };
}

async function rss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb * 1024;
}

async function repeat<T>(times: number, fn: () => Promise<T>): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < times; i++) results.push(await fn());
  return results;
}

/**
 * The scenario: project B's 40 jobs wait on slow tool calls (more jobs than the fleet's
 * 32 slots), then project A submits 20 trivial jobs at once. A's p95, from submission to success
 * in Postgres, beside B against A's own with the fleet otherwise idle. Jobs are admitted as the
 * API admits them: a concurrent-job slot, whose place in the project is the job's priority.
 */
async function fairShares(bench: Bench): Promise<Figure[]> {
  const dir = await mkdtemp(join(tmpdir(), "turtle-bench-fair-"));
  await chmod(dir, 0o777);
  const gate = join(dir, "open");
  const calls = join(dir, "calls.jsonl");
  const projects = {
    a: (await bench.db.project.create({ data: { name: "bench-quick", allowStdioServers: true } }))
      .id,
    b: (await bench.db.project.create({ data: { name: "bench-slow", allowStdioServers: true } }))
      .id,
  };
  await saveServer(
    bench.db,
    createSecretBox({ SECRETS_KEY: bench.env.SECRETS_KEY }),
    { projectId: projects.b, name: "control" },
    { command: process.execPath, args: [CONTROL_SERVER], env: { COUNT_FILE: calls } },
  );
  const active = new ActiveJobs(bench.redis, bench.queueName);
  const admit = async (projectId: string, job: Partial<NewJob> & { code: string }) => {
    const id = randomUUID();
    const place = Number(await active.take(projectId, id, 5_000));
    const { job: row } = await submitJob(bench.db, bench.queue, {
      id,
      projectId,
      timeoutMs: 120_000,
      memoryMb: 64,
      priority: place,
      ...job,
    });
    return row.id;
  };
  /** A's 20 jobs submitted together: each one's time until it succeeded. */
  const burst = async () => {
    const started = performance.now();
    const ids = await Promise.all(
      Array.from({ length: 20 }, (_, i) => admit(projects.a, { code: `return ${i}` })),
    );
    return Promise.all(
      ids.map(async (id) => {
        await waitFinished(bench, id);
        return performance.now() - started;
      }),
    );
  };

  await bench.startWorkers(2, {
    WORKER_CONCURRENCY: "16",
    WORKER_PROJECT_CONCURRENCY: "8",
    // The confined server opens the gate's file and writes its calls there.
    STDIO_SANDBOX_PATHS: `${bench.env.STDIO_SANDBOX_PATHS},${dir}:rw`,
  });
  try {
    await burst();
    const alone = percentile(await burst(), 95);
    const slow = await Promise.all(
      Array.from({ length: 40 }, () =>
        admit(projects.b, {
          code: `await control.gate({ path: ${JSON.stringify(gate)} }); return 1;`,
        }),
      ),
    );
    // B's jobs are in their calls (as many as its shares allow) before A's come.
    const deadline = Date.now() + 30_000;
    const callsMade = async () =>
      (await readFile(calls, "utf8").catch(() => "")).split("\n").filter(Boolean).length;
    while ((await callsMade()) < 16) {
      if (Date.now() > deadline) throw new Error("the slow project's calls did not start");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Without fair shares A would wait for B's calls to end: they end after 20 s at the latest.
    const release = setTimeout(() => void writeFile(gate, ""), 20_000);
    const latencies = await burst();
    if (process.env.BENCH_VERBOSE) process.stderr.write(`fair: ${latencies.map(Math.round)}\n`);
    const beside = percentile(latencies, 95);
    clearTimeout(release);
    await writeFile(gate, "");
    await Promise.all(slow.map((id) => waitFinished(bench, id)));
    return [
      {
        name: "p95 of 20 trivial jobs beside another project's 40 jobs waiting on tool calls (2 workers × 16 slots)",
        unit: "ms",
        value: beside,
        baseline: { name: "the same 20 jobs, the fleet otherwise idle", value: alone },
        target: { kind: "max-ratio", value: 2 },
      },
    ];
  } finally {
    await bench.stopWorkers();
    await rm(dir, { recursive: true, force: true });
  }
}
