// The job transitions against real Postgres and Redis, raced: two requests, or a request and a
// worker, on one job must never both win, and a run fenced out by a later start changes nothing.
import { randomBytes } from "node:crypto";
import { createDb, type Db, type Job } from "@turtle/db";
import { createTestDatabase, type TestDatabase } from "@turtle/test-support";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The worker's batched start and group-committed finish: their statements carry the guards.
import { CheckpointWriter } from "../../../apps/worker/src/checkpoints.ts";
import { RunStarter } from "../../../apps/worker/src/starts.ts";
import {
  ActiveJobs,
  createJobQueue,
  createRedis,
  DEFAULT_PROJECT_ID,
  type JobEvent,
  JobEventHub,
  type JobQueue,
  JobStates,
  queueEntryId,
} from "../src/index.ts";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const LIMIT = 100;

let database: TestDatabase;
let db: Db;
let redis: Redis;
let queue: JobQueue;
let queueName: string;
let activeJobs: ActiveJobs;
let hub: JobEventHub;
let states: JobStates;
let checkpoints: CheckpointWriter;
const events: JobEvent[] = [];

beforeAll(async () => {
  database = await createTestDatabase("job_states");
  db = createDb(database.url);
  queueName = `test-job-states-${randomBytes(4).toString("hex")}`;
  redis = createRedis(REDIS_URL, "test-job-states");
  queue = createJobQueue(queueName, redis);
  activeJobs = new ActiveJobs(redis, queueName);
  hub = new JobEventHub(createRedis(REDIS_URL, "test-job-states-events"), queueName);
  await hub.ready;
  hub.listenAll((event) => events.push(event));
  const starts = new RunStarter(db);
  checkpoints = new CheckpointWriter(db, { flushMs: 1, batchMax: 100 });
  states = new JobStates({
    db,
    redis,
    queueName,
    queue,
    activeJobs,
    runs: {
      start: (jobId, run) => starts.start(jobId, run),
      finish: (end) => checkpoints.finish(end),
    },
  });
});

afterAll(async () => {
  await hub?.close();
  await queue?.obliterate({ force: true }).catch(() => {});
  await queue?.close();
  await redis?.quit();
  await db?.$disconnect();
  await database?.drop();
});

async function submitted(): Promise<Job> {
  const { job } = await states.submit(
    {
      projectId: DEFAULT_PROJECT_ID,
      code: "return 1",
      timeoutMs: 1000,
      memoryMb: 32,
    },
    { limit: LIMIT },
  );
  return job;
}

const read = (id: string) => db.job.findUniqueOrThrow({ where: { id } });
const slotHeld = async (id: string) =>
  (await redis.zscore(`${queueName}:project:${DEFAULT_PROJECT_ID}:active`, id)) !== null;

/** The job's events heard so far, once `last` (published after them) has come. */
async function eventsOf(id: string, last: JobEvent["status"]): Promise<string[]> {
  const seen = () => events.filter((event) => event.jobId === id).map((event) => event.status);
  if (!seen().includes(last)) {
    await hub.waitFor(id, 10_000, (event) => event.status === last);
  }
  return seen();
}

describe("JobStates", () => {
  it("cancel vs start: exactly one wins, and a cancel that lost asks the worker instead", async () => {
    const jobs = await Promise.all(Array.from({ length: 20 }, submitted));
    await Promise.all(
      jobs.map(async (job, n) => {
        // Half the requests go first, half the worker: both orders, and true races between.
        const cancel = () => states.stop(job);
        const start = () => states.start(job.id, job.run);
        const [stopped, started] =
          n % 2 === 0
            ? await Promise.all([cancel(), start()])
            : await Promise.all([start(), cancel()]).then(([s, c]) => [c, s] as const);
        const row = await read(job.id);
        if (started === undefined) {
          expect(stopped).toEqual({ outcome: "cancelled" });
          expect(row.status).toBe("cancelled");
          expect(row.attempts).toBe(0);
          expect(await slotHeld(job.id)).toBe(false);
          expect(await queue.getJob(queueEntryId(job.id, 0))).toBeUndefined();
        } else {
          expect(stopped).toEqual({ outcome: "requested" });
          expect(row).toMatchObject({ status: "running", attempts: 1 });
          expect(row.cancelRequestedAt).not.toBeNull();
          expect(await slotHeld(job.id)).toBe(true);
        }
      }),
    );
  });

  it("two resumes: one wins, the job runs once more, and keeps its one slot", async () => {
    const job = await submitted();
    const started = await states.start(job.id, 0);
    if (started === undefined) throw new Error("not started");
    const run = { jobId: job.id, projectId: job.projectId, run: 0, attempt: started.attempts };
    expect(await states.finish(run, { status: "failed" })).toBe(true);
    expect(await slotHeld(job.id)).toBe(false);
    const failed = await read(job.id);
    const resumed = await Promise.all([
      states.resume(failed, { limit: LIMIT }),
      states.resume(failed, { limit: LIMIT, code: "return 2" }),
    ]);
    expect(resumed.filter(Boolean)).toHaveLength(1);
    const row = await read(job.id);
    expect(row).toMatchObject({ status: "queued", run: 1, deliveries: 0 });
    expect(row.code).toBe(resumed[0] ? "return 1" : "return 2");
    expect(await queue.getJob(queueEntryId(job.id, 1))).toBeDefined();
    // The loser must not give back the slot the winner's run holds (it is the same job's).
    expect(await slotHeld(job.id)).toBe(true);
  });

  it("wake vs cancel: one wins, and a cancel that lost to the wake cancels the woken run", async () => {
    for (const wakeFirst of [true, false]) {
      const job = await submitted();
      const started = await states.start(job.id, 0);
      if (started === undefined) throw new Error("not started");
      const run = { jobId: job.id, projectId: job.projectId, run: 0, attempt: started.attempts };
      const step = { key: "a:b#0", server: "a", tool: "b", args: {} };
      const progress = { executedSteps: 0, replayedSteps: 0, logs: [] };
      expect(await states.pauseForApproval(run, [step], progress)).toBe(true);
      const waiting = await read(job.id);
      expect(waiting.status).toBe("waiting");
      expect(await slotHeld(job.id)).toBe(false);
      // The request read the job as waiting; the other move commits before its update.
      const woken = wakeFirst ? await states.wake(waiting) : false;
      const stopped = await states.stop(waiting);
      const wokenAfter = wakeFirst ? woken : await states.wake(waiting);
      expect(stopped).toEqual({ outcome: "cancelled" });
      expect(wokenAfter).toBe(wakeFirst);
      const row = await read(job.id);
      expect(row).toMatchObject({ status: "cancelled", run: wakeFirst ? 1 : 0 });
      expect(await slotHeld(job.id)).toBe(false);
      expect(await queue.getJob(queueEntryId(job.id, 1))).toBeUndefined();
    }
  });

  it("a cancel asked for as the run stops for approval ends the job cancelled, not waiting", async () => {
    const job = await submitted();
    const started = await states.start(job.id, 0);
    if (started === undefined) throw new Error("not started");
    const run = { jobId: job.id, projectId: job.projectId, run: 0, attempt: started.attempts };
    // The run has stopped to ask for approval; the cancel finds it running and asks the worker,
    // which no longer listens.
    expect(await states.stop(await read(job.id))).toEqual({ outcome: "requested" });
    const step = { key: "a:b#0", server: "a", tool: "b", args: {} };
    const progress = { executedSteps: 2, replayedSteps: 0, logs: [] };
    expect(await states.pauseForApproval(run, [step], progress)).toBe(false);
    expect(await read(job.id)).toMatchObject({
      status: "cancelled",
      executedSteps: 2,
      error: expect.objectContaining({ code: "cancelled" }),
    });
    expect(await slotHeld(job.id)).toBe(false);
    expect(await eventsOf(job.id, "cancelled")).not.toContain("waiting");
  });

  it("a run fenced out by a later start finishes nothing, hands nothing back, pauses nothing", async () => {
    const job = await submitted();
    const first = await states.start(job.id, 0);
    // Its queue lock lapsed: the entry is delivered again, and started again.
    const second = await states.start(job.id, 0);
    if (first === undefined || second === undefined) throw new Error("not started");
    expect(second.attempts).toBe(first.attempts + 1);
    const stale = { jobId: job.id, projectId: job.projectId, run: 0, attempt: first.attempts };
    const current = { ...stale, attempt: second.attempts };

    expect(await states.finish(stale, { status: "failed" })).toBe(false);
    expect(await states.handBack(stale)).toBe(false);
    const step = { key: "a:b#0", server: "a", tool: "b", args: {} };
    const progress = { executedSteps: 5, replayedSteps: 0, logs: [] };
    expect(await states.pauseForApproval(stale, [step], progress)).toBe(false);
    expect(await read(job.id)).toMatchObject({ status: "running", executedSteps: 0 });
    expect(await slotHeld(job.id)).toBe(true);

    expect(await states.finish(current, { status: "succeeded", result: 1 })).toBe(true);
    expect(await read(job.id)).toMatchObject({ status: "succeeded", result: 1 });
    expect(await slotHeld(job.id)).toBe(false);
    // The fenced run announced nothing: the job's only end heard is the current run's.
    const heard = await eventsOf(job.id, "succeeded");
    expect(heard.filter((status) => status !== "queued" && status !== "waiting")).toEqual([
      "succeeded",
    ]);
    // Nor does an ended job go back, or finish again.
    expect(await states.handBack(current)).toBe(false);
    expect(await states.finish(current, { status: "failed" })).toBe(false);
  });
});
