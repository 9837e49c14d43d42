// Jobs Postgres holds as queued (or running with no worker left) but Redis has no entry for are
// queued again: by the API's periodic sweep, and at once when their idempotency key comes back.
// (An API killed at each point of a submission: kill.test.ts.)
import { DEFAULT_PROJECT_ID, queueEntryId, recordJob } from "@turtle/core";
import { eventually, it, startApi, type TestApi } from "@turtle/test-support";
import { Worker } from "bullmq";
import { beforeEach, describe, expect } from "vitest";
import { requeueLockKey } from "../src/plugins/requeue.ts";

let api: TestApi & { database: Awaited<ReturnType<typeof startApi>>["database"] };

// A sweep only when a test asks for one (see sweep()).
it.override("apiOptions", { env: { REQUEUE_AFTER_MS: "600000" } });

it.beforeAll(async ({ api: started }) => {
  api = started;
});

beforeEach(async () => {
  await api.app.queue.obliterate({ force: true });
  await api.db.job.deleteMany();
});

/** A job recorded as an API killed before queueing it leaves it: in Postgres, not in Redis. */
async function recorded(fields: { idempotencyKey?: string; ageMs?: number } = {}) {
  const { job } = await recordJob(api.db, {
    projectId: DEFAULT_PROJECT_ID,
    code: "return 1",
    timeoutMs: 1000,
    memoryMb: 64,
    ...(fields.idempotencyKey === undefined ? {} : { idempotencyKey: fields.idempotencyKey }),
  });
  const ageMs = fields.ageMs ?? 3_600_000;
  return api.db.job.update({
    where: { id: job.id },
    data: { createdAt: new Date(Date.now() - ageMs) },
  });
}

/** One sweep now, as the timer would run it (the lock of the last one dropped). */
async function sweep(): Promise<number> {
  await api.app.redis.del(requeueLockKey(api.config.TURTLE_QUEUE));
  return api.app.requeueLost();
}

async function state(jobId: string, run = 0) {
  return api.app.queue.getJobState(queueEntryId(jobId, run));
}

describe("the requeue sweep", () => {
  it("queues a job recorded but never queued, once", async () => {
    const job = await recorded();
    expect(await state(job.id)).toBe("unknown");
    expect(await sweep()).toBe(1);
    expect(await state(job.id)).toBe("prioritized");
    expect(await sweep()).toBe(0);
    expect(await api.app.queue.getPrioritizedCount()).toBe(1);
  });

  it("leaves a job just recorded to its submitter, and a delayed entry where it is", async () => {
    const fresh = await recorded({ ageMs: 0 });
    const delayed = await recorded();
    await api.app.queue.add(
      "run",
      { jobId: delayed.id, run: 0 },
      { jobId: queueEntryId(delayed.id, 0), delay: 60_000 },
    );
    expect(await sweep()).toBe(0);
    expect(await state(fresh.id)).toBe("unknown");
    expect(await state(delayed.id)).toBe("delayed");
  });

  it("queues a resumed run (run > 0) whose entry was never added, not its finished one", async () => {
    const job = await recorded();
    await api.db.job.update({ where: { id: job.id }, data: { run: 2 } });
    const ended = await recorded();
    await api.db.job.update({
      where: { id: ended.id },
      data: { status: "succeeded", finishedAt: new Date() },
    });
    const waiting = await recorded();
    await api.db.job.update({ where: { id: waiting.id }, data: { status: "waiting" } });
    expect(await sweep()).toBe(1);
    expect(await state(job.id, 2)).toBe("prioritized");
    expect(await state(ended.id)).toBe("unknown");
    expect(await state(waiting.id)).toBe("unknown");
  });

  it("replaces an entry that failed while its job is still queued", async () => {
    const job = await recorded();
    await api.app.queue.add("run", { jobId: job.id, run: 0 }, { jobId: queueEntryId(job.id, 0) });
    // As a processor that threw before recording anything leaves it.
    const worker = new Worker(
      api.config.TURTLE_QUEUE,
      async () => {
        throw new Error("lost before it was recorded");
      },
      { connection: api.app.redis.duplicate({ maxRetriesPerRequest: null }) },
    );
    try {
      await eventually("the entry to fail", async () =>
        (await state(job.id)) === "failed" ? true : undefined,
      );
    } finally {
      await worker.close();
    }
    expect(await sweep()).toBe(1);
    expect(await state(job.id)).toBe("prioritized");
  });

  it("queues a running job with no entry only once its deadline and the workers' locks are past", async () => {
    const { WORKER_LOCK_MS, REQUEUE_AFTER_MS } = api.config;
    const grace = 2 * WORKER_LOCK_MS + REQUEUE_AFTER_MS;
    const abandoned = await recorded();
    const live = await recorded();
    await api.db.job.update({
      where: { id: abandoned.id },
      data: { status: "running", startedAt: new Date(Date.now() - 1000 - grace - 1000) },
    });
    // Within its deadline a worker may still run it (Redis lost the entry, not the worker).
    await api.db.job.update({
      where: { id: live.id },
      data: { status: "running", startedAt: new Date(Date.now() - grace) },
    });
    expect(await sweep()).toBe(1);
    expect(await state(abandoned.id)).toBe("prioritized");
    expect(await state(live.id)).toBe("unknown");
  });

  it("runs every REQUEUE_AFTER_MS in one of several API instances", async () => {
    // The last test's sweep holds it for the whole of this API's long period.
    await api.app.redis.del(requeueLockKey(api.config.TURTLE_QUEUE));
    const apps = await Promise.all(
      [0, 1].map(() =>
        startApi({
          database: api.database,
          env: { REQUEUE_AFTER_MS: "200", TURTLE_QUEUE: api.config.TURTLE_QUEUE },
        }),
      ),
    );
    try {
      const jobs = [await recorded(), await recorded()];
      await eventually("the sweep to queue both jobs", async () =>
        (await state(jobs[0]?.id ?? "")) === "prioritized" &&
        (await state(jobs[1]?.id ?? "")) === "prioritized"
          ? true
          : undefined,
      );
      expect(await api.app.queue.getPrioritizedCount()).toBe(2);
    } finally {
      for (const other of apps) await other.app.close();
    }
  });
});

describe("a job submitted again with its idempotency key", () => {
  it("comes back and is queued at once if its entry is missing", async () => {
    const job = await recorded({ idempotencyKey: "stuck-1", ageMs: 0 });
    const again = await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "return 1", idempotencyKey: "stuck-1" },
    });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ id: job.id, status: "queued" });
    expect(await state(job.id)).toBe("prioritized");
    // Asked again, it is not queued twice.
    await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "return 1", idempotencyKey: "stuck-1" },
    });
    expect(await api.app.queue.getPrioritizedCount()).toBe(1);
  });
});
