// Faults a running job must survive. (A worker killed with SIGKILL: durability.test.ts.)
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@turtle/core";
import type { Job } from "@turtle/db";
import { createPlatform, eventually, type Platform } from "@turtle/test-support";
import { afterEach, describe, expect, it } from "vitest";

// Plain platforms, not the fixture: these tests start and kill Redis and Postgres of their own
// around the platform, and the platform must close before they go.
let platform: Platform | undefined;

afterEach(async () => {
  await platform?.close();
  platform = undefined;
});

/** Waits (up to 2 min) for every job of the platform to succeed or fail; returns their rows. */
function everyJobEnded(platform: Platform) {
  return eventually(
    "every job to end",
    async () => {
      const rows = await platform.db.job.findMany();
      return rows.every((row) => row.status === "succeeded" || row.status === "failed")
        ? rows
        : undefined;
    },
    120_000,
  );
}

/**
 * What the control server's executions say of the jobs' deliveries: keys executed, calls made
 * twice, keys executed twice once the job's last delivery had started (two deliveries at once),
 * calls made after the job ended, and the deliveries in all.
 */
function duplicates(
  ended: Array<{ id: string; startedAt: Date | null; finishedAt: Date | null; attempts: number }>,
  calls: Array<{ idempotencyKey?: string; at: number }>,
) {
  const byKey = new Map<string, number[]>();
  for (const line of calls) {
    const key = String(line.idempotencyKey);
    byKey.set(key, [...(byKey.get(key) ?? []), line.at]);
  }
  const jobOf = new Map(ended.map((row) => [row.id, row]));
  const figures = { calls: calls.length, twice: 0, overlapping: 0, afterEnd: 0 };
  for (const [key, times] of byKey) {
    const job = jobOf.get(key.split(":")[0] ?? "");
    if (job?.startedAt == null || job.finishedAt == null) throw new Error(`no job for ${key}`);
    const [lastStart, end] = [job.startedAt.getTime(), job.finishedAt.getTime()];
    figures.twice += times.length - 1;
    if (times.filter((at) => at >= lastStart).length > 1) figures.overlapping++;
    figures.afterEnd += times.filter((at) => at > end).length;
  }
  const deliveries = ended.reduce((sum, row) => sum + row.attempts, 0);
  return { keys: byKey.size, deliveries, ...figures };
}

/** A job of `calls` echo calls in chunks of 10, each chunk followed by a 100 ms sleep. */
function fanOut(calls: number): string {
  return [
    "let sum = 0;",
    `for (let start = 0; start < ${calls}; start += 10) {`,
    "  const chunk = Array.from({ length: 10 }, (_, k) => start + k);",
    "  const echoed = await Promise.all(chunk.map((i) => control.echo({ job: input.n, i })));",
    "  await control.sleep({ ms: 100, after: start });",
    "  sum += echoed.reduce((a, e) => a + e.i, 0);",
    "}",
    "return sum + input.n;",
  ].join("\n");
}

describe("an MCP server killed in the middle of a call", () => {
  it("is started again and the call made again with its idempotency key; the job goes on", async () => {
    platform = await createPlatform({ label: "server-killed" });
    const current = platform;
    await current.startWorker({ STEP_RETRY_BACKOFF_MS: "50" });
    const job = await current.submit({
      code: [
        "await control.echo({ before: true });",
        "const slept = await control.sleep({ ms: 1500 });",
        "await control.echo({ after: true });",
        "return 'went on';",
      ].join("\n"),
    });
    // The server is killed while it sleeps on the job's second call.
    const sleeping = await eventually("the sleep call", async () =>
      (await current.executions()).find((line) => line.tool === "sleep"),
    );
    process.kill(sleeping.pid, "SIGKILL");

    const done = await current.waitFor(job.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({ status: "succeeded", result: "went on", executedSteps: 3 });
    const calls = await current.executions();
    const sleeps = calls.filter((line) => line.tool === "sleep");
    // Made again in a new server process, with the same idempotency key.
    expect(sleeps).toHaveLength(2);
    expect(sleeps[1]?.idempotencyKey).toBe(sleeps[0]?.idempotencyKey);
    expect(sleeps[1]?.pid).not.toBe(sleeps[0]?.pid);
    expect(calls.filter((line) => line.tool === "echo")).toHaveLength(2);
    const steps = await current.db.step.findMany({ where: { jobId: job.id } });
    expect(steps.map((step) => step.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
  });

  it("fails the call with a ToolError the program can catch once the retries are spent", async () => {
    platform = await createPlatform({ label: "server-gone" });
    const current = platform;
    await current.startWorker({ STEP_RETRIES: "0" });
    const job = await current.submit({
      code: [
        "try {",
        "  await control.sleep({ ms: 1500 });",
        "  return 'slept';",
        "} catch (error) {",
        "  return { code: error.code, caught: error instanceof ToolError };",
        "}",
      ].join("\n"),
    });
    const sleeping = await eventually("the sleep call", async () =>
      (await current.executions()).find((line) => line.tool === "sleep"),
    );
    process.kill(sleeping.pid, "SIGKILL");
    const done = await current.waitFor(job.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({
      status: "succeeded",
      result: { code: "server_unavailable", caught: true },
    });
  });
});

/**
 * A Redis of the test's own, persisting every write (AOF, fsync always), to kill and start, or
 * to stall: stopped (SIGSTOP) for a while, its clients' connections open, then let go on.
 */
async function ownRedis(): Promise<{
  url: string;
  start(): Promise<void>;
  kill(): Promise<void>;
  stall(ms: number): Promise<void>;
}> {
  const dir = await mkdtemp(join(tmpdir(), "turtle-redis-"));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", ""];
  const start = async () => {
    child = spawn("redis-server", [...args, "--appendonly", "yes", "--appendfsync", "always"], {
      stdio: "ignore",
    });
    await eventually("Redis to listen", () => listening(port));
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    start,
    async kill() {
      const exited = new Promise((resolve) => child?.once("exit", resolve));
      child?.kill("SIGKILL");
      await exited;
    },
    async stall(ms) {
      child?.kill("SIGSTOP");
      await new Promise((resolve) => setTimeout(resolve, ms));
      child?.kill("SIGCONT");
    },
  };
}

describe("Redis killed and started again while jobs run and wait in the queue", () => {
  it("loses no job and runs none twice", async () => {
    const redis = await ownRedis();
    try {
      platform = await createPlatform({ label: "redis-restart", env: { REDIS_URL: redis.url } });
      const current = platform;
      await current.startWorker();
      const code = "await control.sleep({ ms: 20 });\nreturn input.n;";
      const jobs = [];
      for (let n = 0; n < 100; n++) jobs.push(await current.submit({ code, input: { n } }));
      await eventually("some jobs to succeed", async () =>
        (await current.db.job.count({ where: { status: "succeeded" } })) >= 10 ? true : undefined,
      );
      await redis.kill();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await redis.start();
      // More work queued once it is back.
      for (let n = 100; n < 150; n++) jobs.push(await current.submit({ code, input: { n } }));
      const ended = await eventually("every job to end", async () => {
        const rows = await current.db.job.findMany({ where: { status: { not: "queued" } } });
        return rows.every((row) => row.status !== "running") && rows.length === jobs.length
          ? rows
          : undefined;
      });
      expect(ended.filter((row) => row.status !== "succeeded")).toEqual([]);
      for (const row of ended) {
        expect(row.result).toBe((row.input as { n: number }).n);
      }
      // Each job's one call was executed once (a redelivered run replays it).
      const sleeps = (await current.executions()).filter((line) => line.tool === "sleep");
      const keys = sleeps.map((line) => line.idempotencyKey);
      expect(new Set(keys).size).toBe(150);
      expect(keys).toHaveLength(150);
    } finally {
      await platform?.close();
      platform = undefined;
      await redis.kill();
    }
  }, 120_000);
});

describe("Redis stalled longer than the worker lock while jobs fan out", () => {
  it("never has two deliveries of a job making calls at once, nor calls after the job ended", async () => {
    const redis = await ownRedis();
    try {
      // Locks of 1 s; Redis stops for 3 s: every running job's lock lapses and the job is
      // delivered again, to either worker.
      platform = await createPlatform({ label: "redis-stall", env: { REDIS_URL: redis.url } });
      const current = platform;
      await Promise.all([current.startWorker(), current.startWorker()]);
      // 600 calls in chunks of 10, a short sleep after each: about 9 s a job.
      const code = fanOut(600);
      const jobs: Job[] = [];
      for (let n = 0; n < 6; n++) jobs.push(await current.submit({ code, input: { n } }));
      await eventually("every job to make calls", async () => {
        const started = new Set(
          (await current.executions()).map((line) => line.idempotencyKey?.split(":")[0]),
        );
        return jobs.every((job) => started.has(job.id)) ? true : undefined;
      });
      await redis.stall(3_000);

      const ended = await everyJobEnded(current);
      expect(ended.filter((row) => row.status !== "succeeded")).toEqual([]);
      for (const row of ended) {
        expect(row.result).toBe(179_700 + (row.input as { n: number }).n);
      }
      const { keys, deliveries, ...figures } = duplicates(ended, await current.executions());
      console.log(`Redis stalled 3 s: ${JSON.stringify({ ...figures, deliveries })}`);
      expect(keys).toBe(6 * 660);
      expect(figures.afterEnd).toBe(0);
      expect(figures.overlapping).toBe(0);
      // What a stopped delivery can leave for the next to make again: its calls in flight (a
      // chunk of ten at most).
      expect(figures.twice).toBeLessThanOrEqual(10 * (deliveries - ended.length));
    } finally {
      await platform?.close();
      platform = undefined;
      await redis.kill();
    }
  }, 180_000);
});

describe("Redis stalled longer than the worker lock while jobs wait for their project's share", () => {
  it("starts no held job whose entry another worker took: no calls twice at once, none after the end", async () => {
    const redis = await ownRedis();
    try {
      // One run of the project at a time per worker: each worker holds the jobs it fetched
      // beyond that, and their locks lapse while Redis stops for 3 s.
      platform = await createPlatform({
        label: "redis-stall-held",
        env: {
          REDIS_URL: redis.url,
          WORKER_CONCURRENCY: "4",
          WORKER_PROJECT_CONCURRENCY: "1",
          WORKER_SHARE_WAIT_MS: "30000",
        },
      });
      const current = platform;
      await Promise.all([current.startWorker(), current.startWorker()]);
      // 200 calls in chunks of 10, a short sleep after each: about 3 s a job.
      const code = fanOut(200);
      const jobs: Job[] = [];
      for (let n = 0; n < 8; n++) jobs.push(await current.submit({ code, input: { n } }));
      await eventually("two jobs to make calls", async () => {
        const started = new Set(
          (await current.executions()).map((line) => line.idempotencyKey?.split(":")[0]),
        );
        return started.size >= 2 ? true : undefined;
      });
      await redis.stall(3_000);

      const ended = await everyJobEnded(current);
      expect(ended.filter((row) => row.status !== "succeeded")).toEqual([]);
      const { keys, deliveries, ...figures } = duplicates(ended, await current.executions());
      console.log(`Redis stalled 3 s, jobs held: ${JSON.stringify({ ...figures, deliveries })}`);
      expect(keys).toBe(8 * 220);
      expect(figures.afterEnd).toBe(0);
      expect(figures.overlapping).toBe(0);
      expect(figures.twice).toBeLessThanOrEqual(10 * (deliveries - ended.length));
      // One stall takes each entry from its worker once at most: a held job's lock is renewed
      // while it waits, so it is not lost again (and again) by the time its share comes.
      expect(deliveries).toBeLessThanOrEqual(2 * ended.length);
      // Nothing left in the queue for a job that ended.
      expect(await current.queue.getJobCounts("wait", "active", "delayed", "prioritized")).toEqual({
        wait: 0,
        active: 0,
        delayed: 0,
        prioritized: 0,
      });
    } finally {
      await platform?.close();
      platform = undefined;
      await redis.kill();
    }
  }, 180_000);
});

describe("a run whose job was started again elsewhere, or ended, while it makes calls", () => {
  // 300 calls in chunks of 10, a sleep after each (longer than a checkpoint batch takes, so
  // that a run makes at most one more chunk before it hears of its fence): about 3 s.
  const code = [
    "for (let start = 0; start < 300; start += 10) {",
    "  const chunk = Array.from({ length: 10 }, (_, k) => start + k);",
    "  await Promise.all(chunk.map((i) => control.echo({ i })));",
    "  await control.sleep({ ms: 100, after: start });",
    "}",
    "return 'stale';",
  ].join("\n");

  it.each([
    // What another worker's start of the job does (starts.ts).
    ["started again", { attempts: { increment: 1 }, deliveries: { increment: 1 } }],
    ["ended", { status: "succeeded" as const, finishedAt: new Date() }],
  ])(
    "stops at its next checkpoint once the job was %s, and records nothing",
    async (label, change) => {
      platform = await createPlatform({ label: `fenced-${label.replace(" ", "-")}` });
      const current = platform;
      const worker = await current.startWorker();
      const job = await current.submit({ code });
      await eventually("calls to be checkpointed", async () =>
        (await current.db.step.count({ where: { jobId: job.id } })) >= 30 ? true : undefined,
      );
      const before = (await current.executions()).length;
      await current.db.job.update({ where: { id: job.id }, data: change });
      await eventually("the run to stop", () =>
        worker.output().includes("job started again elsewhere or ended; the run stopped")
          ? true
          : undefined,
      );
      // Calls made after the change: the ones in flight, and those the run began before its
      // next checkpoint batch was refused (a chunk, at most two).
      const after = (await current.executions()).length - before;
      console.log(`calls after the job was ${label}: ${after}`);
      expect(after).toBeLessThanOrEqual(22);
      const row = await current.db.job.findUniqueOrThrow({ where: { id: job.id } });
      expect(row.result).toBeNull();
      expect(row.status).toBe(label === "ended" ? "succeeded" : "running");
    },
  );

  it("stops the first of two deliveries of a job on one worker once the second starts", async () => {
    platform = await createPlatform({ label: "fenced-same-worker" });
    const current = platform;
    await current.startWorker();
    const job = await current.submit({ code: code.replace("'stale'", "'done'") });
    await eventually("calls to be checkpointed", async () =>
      (await current.db.step.count({ where: { jobId: job.id } })) >= 30 ? true : undefined,
    );
    // A second entry for the same run, as when a lapsed lock sends the job back to the queue
    // and this same worker takes it again.
    await current.queue.add("run", { jobId: job.id, run: 0 }, { jobId: `${job.id}-again` });
    const done = await current.waitFor(job.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({ status: "succeeded", result: "done", attempts: 2 });
    const calls = await current.executions();
    const byKey = new Map<string, number>();
    for (const line of calls) {
      byKey.set(String(line.idempotencyKey), (byKey.get(String(line.idempotencyKey)) ?? 0) + 1);
    }
    const twice = [...byKey.values()].filter((count) => count > 1).length;
    console.log(`calls made by both deliveries on one worker: ${twice}`);
    expect(byKey.size).toBe(330);
    // The first delivery's calls in flight, and those it began before its next batch was refused.
    expect(twice).toBeLessThanOrEqual(22);
  });
});

/** Whether something listens on the port. */
function listening(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(undefined));
  });
}

/**
 * A Postgres cluster of the test's own (Debian's binaries, run as the postgres user), to crash
 * with an immediate shutdown — no checkpoint, recovery from the WAL at the next start — and start.
 */
async function ownPostgres(): Promise<{
  url: string;
  start(): Promise<void>;
  crash(): Promise<void>;
  remove(): Promise<void>;
}> {
  const bin = `/usr/lib/postgresql/${readdirSync("/usr/lib/postgresql")[0]}/bin`;
  const dir = await mkdtemp(join(tmpdir(), "turtle-pg-"));
  execFileSync("chown", ["postgres", dir]);
  const data = join(dir, "data");
  const asPostgres = (command: string, args: string[]) =>
    execFileSync("runuser", ["-u", "postgres", "--", `${bin}/${command}`, ...args], {
      stdio: "pipe",
    });
  asPostgres("initdb", ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync"]);
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn(
      "runuser",
      [
        ...["-u", "postgres", "--", `${bin}/postgres`, "-D", data, "-p", String(port)],
        ...["-k", dir, "-c", "listen_addresses=127.0.0.1"],
      ],
      { stdio: "ignore" },
    );
    await eventually("Postgres to accept connections", async () => {
      try {
        execFileSync(`${bin}/pg_isready`, ["-q", "-h", "127.0.0.1", "-p", String(port)]);
        return true;
      } catch {
        return undefined;
      }
    });
  };
  const crash = async () => {
    asPostgres("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
    await new Promise((resolve) =>
      child?.exitCode === null ? child.once("exit", resolve) : resolve(null),
    );
  };
  await start();
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    start,
    crash,
    async remove() {
      if (child?.exitCode === null) await crash().catch(() => {});
      execFileSync("rm", ["-rf", dir]);
    },
  };
}

describe("Postgres crashed and started again while steps are checkpointed", () => {
  it("loses no job and no step; a call whose checkpoint was lost is made again under its key", async () => {
    const postgres = await ownPostgres();
    try {
      platform = await createPlatform({ label: "pg-restart", databaseServer: postgres.url });
      const current = platform;
      await current.startWorker();
      // 20 jobs of 20 calls each, ten at a time, checkpointed as they go.
      const code = [
        "const out = [];",
        "for (let start = 0; start < 20; start += 10) {",
        "  const chunk = Array.from({ length: 10 }, (_, k) => start + k);",
        "  const echoed = await Promise.all(chunk.map((i) => control.echo({ job: input.n, i })));",
        "  await control.sleep({ ms: 100 });",
        "  out.push(...echoed.map((e) => e.i));",
        "}",
        "return out.reduce((a, b) => a + b, 0) + input.n * 1000;",
      ].join("\n");
      const jobs = [];
      for (let n = 0; n < 20; n++) jobs.push(await current.submit({ code, input: { n } }));
      await eventually("steps to be checkpointed", async () =>
        (await current.db.step.count()) >= 40 ? true : undefined,
      );
      await postgres.crash();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      await postgres.start();

      const ended = await eventually("every job to end", async () => {
        const rows = await current.db.job.findMany().catch(() => []);
        return rows.length === jobs.length &&
          rows.every((row) => row.status === "succeeded" || row.status === "failed")
          ? rows
          : undefined;
      });
      expect(ended.filter((row) => row.status !== "succeeded")).toEqual([]);
      for (const row of ended) {
        expect(row.result).toBe(190 + (row.input as { n: number }).n * 1000);
      }
      expect(await current.db.step.count({ where: { status: "succeeded" } })).toBe(20 * 22);
      // Every call was made; one whose checkpoint died with Postgres was made again, under the
      // same idempotency key — never under another.
      const calls = (await current.executions()).filter((line) => line.tool === "echo");
      const byKey = new Map<string, number>();
      for (const line of calls) {
        byKey.set(String(line.idempotencyKey), (byKey.get(String(line.idempotencyKey)) ?? 0) + 1);
      }
      expect(byKey.size).toBe(20 * 20);
      expect(Math.max(...byKey.values())).toBeLessThanOrEqual(2);
    } finally {
      await platform?.close();
      platform = undefined;
      await postgres.remove();
    }
  }, 180_000);
});
