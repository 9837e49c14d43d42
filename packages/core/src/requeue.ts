// Postgres is the record of every job, Redis only carries the work: a job whose queue entry never
// got to Redis (its API was killed between recording and queueing it) or was lost there (Redis
// restarted without its data) would wait for ever. These put such entries back.
import type { Db, Job } from "@turtle/db";
import type { Redis } from "ioredis";
import { type JobQueue, queueEntryId } from "./queue.ts";

type Run = Pick<Job, "id" | "run" | "projectId">;

/**
 * Queues each run that has no live entry in Redis, and returns how many it queued. A run whose
 * entry is waiting, delayed or active is left alone. An entry that ended (its worker's processor
 * threw before the job was recorded, say) is replaced, as nothing would run it again: callers
 * pass only runs Postgres says are queued, or running with no worker left (see requeueLost).
 *
 * Safe to race with the submitter's own add and with other callers: the entry id is the run's,
 * so BullMQ keeps one, and a worker starts a run only while Postgres says it is queued or
 * running at that run (the stale entry of a run that ended meanwhile is skipped).
 *
 * `redis` is the queue's connection. Entries are read by key (O(1) each, one pipeline), not with
 * BullMQ's getJobState, which scans the waiting list for each job: over a backlog of 10,000
 * queued jobs that took 2.4 s a sweep.
 */
export async function requeueRuns(queue: JobQueue, redis: Redis, runs: Run[]): Promise<number> {
  if (runs.length === 0) return 0;
  const lookup = redis.pipeline();
  // Every entry's hash has `timestamp` (set when added); one that ended has `finishedOn` too.
  for (const run of runs) {
    lookup.hmget(queue.toKey(queueEntryId(run.id, run.run)), "timestamp", "finishedOn");
  }
  const answers = (await lookup.exec()) ?? [];
  const ended: Run[] = [];
  const missing: Run[] = [];
  runs.forEach((run, i) => {
    const [error, fields] = answers[i] ?? [];
    if (error) throw error;
    const [timestamp, finishedOn] = (fields ?? []) as Array<string | null>;
    if (finishedOn !== null && finishedOn !== undefined) ended.push(run);
    else if (timestamp === null || timestamp === undefined) missing.push(run);
  });
  await Promise.all(ended.map((run) => queue.remove(queueEntryId(run.id, run.run))));
  missing.push(...ended);
  if (missing.length === 0) return 0;
  await queue.addBulk(
    missing.map((run) => ({
      name: "run" as const,
      data: { jobId: run.id, run: run.run, projectId: run.projectId },
      // First among the prioritized: a lost entry has waited long enough (see fairPriority).
      opts: { jobId: queueEntryId(run.id, run.run), priority: 1 },
    })),
  );
  return missing.length;
}

/**
 * For a job submitted again (its idempotency key): if Postgres says it waits in the queue, make
 * sure it does, at once rather than at the next sweep — its first submitter may have died
 * before queueing it.
 */
export async function requeueIfQueued(
  queue: JobQueue,
  redis: Redis,
  job: Pick<Job, "id" | "run" | "projectId" | "status">,
): Promise<void> {
  if (job.status === "queued") await requeueRuns(queue, redis, [job]);
}

export interface RequeueOptions {
  /**
   * How long a job must have been queued before its entry is checked: a submission in flight
   * has recorded its job but not yet queued it.
   */
  queuedForMs: number;
  /**
   * Past a running job's own deadline (timeoutMs), how long before a run with no entry counts as
   * abandoned: a live worker ends every run by its deadline, and records it.
   */
  runningGraceMs: number;
  /** Rows read per query. */
  pageSize?: number;
}

/**
 * One sweep over every project's jobs: those queued for a while, and those running past their
 * deadline, whose runs have no entry in Redis are queued again. Reads each project's jobs by the
 * (projectId, status, createdAt) index, a page at a time. Returns how many runs it queued.
 */
export async function requeueLost(
  db: Db,
  queue: JobQueue,
  redis: Redis,
  options: RequeueOptions,
): Promise<number> {
  const pageSize = options.pageSize ?? 1000;
  const now = Date.now();
  const queuedBefore = new Date(now - options.queuedForMs);
  let requeued = 0;
  const projects = await db.project.findMany({ select: { id: true } });
  for (const { id: projectId } of projects) {
    let cursor: string | undefined;
    for (;;) {
      const page = await db.job.findMany({
        where: { projectId, status: "queued", createdAt: { lt: queuedBefore } },
        select: { id: true, run: true, projectId: true },
        orderBy: [{ createdAt: "asc" }, { id: "asc" }],
        take: pageSize,
        ...(cursor === undefined ? {} : { cursor: { id: cursor }, skip: 1 }),
      });
      requeued += await requeueRuns(queue, redis, page);
      if (page.length < pageSize) break;
      cursor = page.at(-1)?.id;
    }
    // Running jobs are few (at most the fleet's concurrency), read at once.
    const running = await db.job.findMany({
      where: { projectId, status: "running", startedAt: { lt: queuedBefore } },
      select: { id: true, run: true, projectId: true, startedAt: true, timeoutMs: true },
    });
    const abandoned = running.filter(
      (job) =>
        job.startedAt !== null &&
        job.startedAt.getTime() + job.timeoutMs + options.runningGraceMs < now,
    );
    requeued += await requeueRuns(queue, redis, abandoned);
  }
  return requeued;
}
