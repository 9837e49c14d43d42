// Every change of a job's status, in one place, with what goes with it: the project's
// concurrent-job slot, the job event watchers hear, the queue entry. Routes, the worker and the
// MCP façade ask this module; none of them writes Job.status, frees a slot or announces a status.
//
// Each transition, from the statuses it leaves, and what it does to the project's slot:
//
//   submit              (new)              → queued              takes a slot within the limit
//   fail to enqueue     queued             → failed              gives it back
//   start               queued | running   → running             (a redelivery starts it again)
//   hand back           running            → queued              keeps it (shutdown, lost lease)
//   request cancel      running            (cancelRequestedAt)   the run stops, then finishes
//   pause for approval  running            → waiting             gives it back
//                         (a cancel asked for meanwhile: → cancelled)
//   finish              running            → succeeded | failed | cancelled    gives it back
//   cancel              queued | waiting   → cancelled           gives it back, drops the entry
//   wake                waiting            → queued, next run    holds one whatever the limit
//   resume              failed | cancelled → queued, next run    takes one within the limit
//
// Every transition is one conditional UPDATE on the status it leaves (and the run, and for a
// run's own writes its start, `attempts`), so two requests, or a request and a worker, racing on
// one job cannot both win: the loser's update matches no row and it answers from what won.
// Starting and finishing are batched (many jobs to a statement) by the worker's RunWrites, whose
// statements carry the same conditions. The requeue sweep (requeue.ts) writes no status: it only
// puts back queue entries of jobs Postgres says are queued, or running with no worker left.
import { randomUUID } from "node:crypto";
import { type JobError, jobError, type JobStatus as ShownStatus } from "@turtle/api-types";
import { type Db, type Job, type JobStatus, Prisma } from "@turtle/db";
import type { Redis } from "ioredis";
import type { ActiveJobs } from "./active-jobs.ts";
import { publishJobEvent } from "./events.ts";
import { EnqueueError, type NewJob, recordJob, rowOf } from "./jobs.ts";
import { channels, fairPriority, type JobQueue, type QueuedJob, queueEntryId } from "./queue.ts";
import { requeueIfQueued } from "./requeue.ts";

// The API's statuses are the database's: a status added to one must be added to the other.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const _statusesAgree: Same<JobStatus, ShownStatus> = true;
void _statusesAgree;

/** A job error as stored: what the API shows, and the stack a program's error may carry. */
export type StoredJobError = JobError & { readonly stack?: string };

/** Which run of a job, and which start of it: every write of a run is conditioned on both. */
export interface RunRef {
  jobId: string;
  projectId: string;
  run: number;
  /** The job's `attempts` when this run started it: a later start fences this one out. */
  attempt: number;
}

/** How a run ended, less what identifies it. */
export interface RunEnd {
  status: "succeeded" | "failed" | "cancelled";
  result?: unknown;
  resultTruncated?: boolean;
  error?: StoredJobError;
  logs?: unknown;
  wallMs?: number;
  cpuMs?: number;
  executedSteps?: number;
  replayedSteps?: number;
  /** Keys of the job's steps that the run replayed: their `replays` count goes up. */
  replayedKeys?: string[];
}

/**
 * The worker's batched writes of a run's start and end (several jobs to a statement). Each
 * applies only under the same conditions as the transitions here: a start while the job is
 * queued or running at that run; an end while it is running at that run and start.
 */
export interface RunWrites {
  /** The job as it now is (running, its attempt and delivery counted), or undefined if stale. */
  start(jobId: string, run: number): Promise<Job | undefined>;
  /** Records the run's end after its last checkpoints; true when it applied. */
  finish(end: RunEnd & { jobId: string; run: number; attempt: number }): Promise<boolean>;
}

/** Places between a transition's writes where tests make the process die (TEST_KILL_AT). */
export type TransitionPoint = "after-insert" | "after-enqueue" | "before-requeue";

export interface JobStatesContext {
  db: Db;
  /** The queue's connection: job events and cancel requests go out on it. */
  redis: Redis;
  /** The queue's name, which names its channels. */
  queueName: string;
  activeJobs: ActiveJobs;
  /** Where runs are queued: submitting, resuming and waking need it, a worker does not. */
  queue?: JobQueue;
  /** A worker's batched starts and ends: only a worker starts and finishes runs. */
  runs?: RunWrites;
  /** Told of what failed but did no harm (a slot not freed, an event not published). */
  warn?: (fields: Record<string, unknown>, message: string) => void;
  /** Called at each TransitionPoint. */
  at?: (point: TransitionPoint) => void;
}

/** The project already has its limit of jobs queued or running. */
export class ConcurrencyLimitError extends Error {
  override name = "ConcurrencyLimitError";
  readonly code = "concurrency_limit";
  readonly limit: number;

  constructor(limit: number) {
    super(`the project has ${limit} jobs queued or running, its limit`);
    this.limit = limit;
  }
}

/** The project's slots could not be counted (Redis is away): nothing was recorded. */
export class SlotsUnavailableError extends Error {
  override name = "SlotsUnavailableError";
  readonly code = "queue_unavailable";
}

/** What a cancel did: ended the job, asked its worker to stop it, or nothing (its status). */
export type CancelOutcome =
  | { outcome: "cancelled" }
  | { outcome: "requested" }
  | { outcome: "refused"; status: JobStatus };

type JobRef = Pick<Job, "id" | "projectId" | "run">;
type JobAt = JobRef & Pick<Job, "status">;

function queuedJob(job: JobRef): QueuedJob {
  return { jobId: job.id, run: job.run, projectId: job.projectId };
}

/**
 * Queues the job's current run at `priority` (see fairPriority; every entry has one, so none
 * jumps the others through BullMQ's unprioritized list). On failure marks the job failed (it was
 * accepted, so say why) and throws EnqueueError; `failed` is told whether that applied.
 */
async function enqueueRun(
  db: Db,
  queue: JobQueue,
  job: JobRef,
  priority: number,
  failed?: (applied: boolean) => Promise<void>,
): Promise<void> {
  try {
    await queue.add("run", queuedJob(job), {
      jobId: queueEntryId(job.id, job.run),
      priority: fairPriority(priority),
    });
  } catch (error) {
    const message = `The job was recorded but could not be queued: ${(error as Error).message}`;
    const marked = await db.job.updateMany({
      where: { id: job.id, run: job.run, status: "queued" },
      data: {
        status: "failed",
        finishedAt: new Date(),
        error: jobError("enqueue_failed", message) as unknown as Prisma.InputJsonValue,
      },
    });
    await failed?.(marked.count === 1);
    throw new EnqueueError(message, job.id);
  }
}

/**
 * Records a job in Postgres, then queues it, without a concurrent-job slot (for tools and
 * benchmarks; the API submits with JobStates.submit). Postgres first: a job is accepted once it
 * is recorded, and the queue entry (deduplicated by id) only carries the work; an entry that
 * never got there (the process died in between) is put back by requeueLost. A repeated
 * idempotency key returns the first job, which is not queued again.
 */
export async function submitJob(
  db: Db,
  queue: JobQueue,
  job: NewJob,
): Promise<{ job: Job; created: boolean }> {
  const recorded = await recordJob(db, job);
  if (recorded.created) await enqueueRun(db, queue, recorded.job, job.priority ?? 1);
  return recorded;
}

/**
 * Many jobs in two round trips (one insert, one queue add): for bulk submitters. They take no
 * concurrent-job slots, so they are queued at the priority each one names (1 when omitted).
 */
export async function submitJobs(db: Db, queue: JobQueue, jobs: NewJob[]): Promise<Job[]> {
  const rows = await db.job.createManyAndReturn({ data: jobs.map(rowOf) });
  await queue.addBulk(
    rows.map((row, index) => ({
      name: "run" as const,
      data: queuedJob(row),
      opts: {
        jobId: queueEntryId(row.id, row.run),
        priority: fairPriority(jobs[index]?.priority ?? 1),
      },
    })),
  );
  return rows;
}

export class JobStates {
  private readonly context: JobStatesContext;

  constructor(context: JobStatesContext) {
    this.context = context;
  }

  private get db(): Db {
    return this.context.db;
  }

  private get queue(): JobQueue {
    const { queue } = this.context;
    if (queue === undefined) throw new Error("JobStates: this transition needs the job queue");
    return queue;
  }

  private get runs(): RunWrites {
    const { runs } = this.context;
    if (runs === undefined) throw new Error("JobStates: only a worker starts and finishes runs");
    return runs;
  }

  private warn(fields: Record<string, unknown>, message: string): void {
    this.context.warn?.(fields, message);
  }

  // Slots ------------------------------------------------------------------------------------

  /**
   * Takes one of the project's concurrent-job slots for the job. When the slots look full, those
   * of jobs that ended without giving theirs back (a worker died between the two) are freed
   * first, from what Postgres says is still active. Returns the project's active jobs counting
   * this one: the job's place in the queue (see fairPriority). Throws ConcurrencyLimitError, or
   * SlotsUnavailableError when Redis cannot say.
   */
  async takeSlot(projectId: string, jobId: string, limit: number): Promise<number> {
    const { activeJobs } = this.context;
    try {
      const place = await activeJobs.take(projectId, jobId, limit);
      if (place > 0) return place;
      const freed = await activeJobs.reconcile(projectId, async (ids) => {
        const rows = await this.db.job.findMany({
          where: { id: { in: ids }, status: { in: ["queued", "running"] } },
          select: { id: true },
        });
        return new Set(rows.map((row) => row.id));
      });
      if (freed > 0) {
        const retried = await activeJobs.take(projectId, jobId, limit);
        if (retried > 0) return retried;
      }
    } catch (error) {
      throw new SlotsUnavailableError("could not count the project's active jobs", {
        cause: error,
      });
    }
    throw new ConcurrencyLimitError(limit);
  }

  /** Gives a job's slot back. Not fatal: a slot left behind is freed by the next reconcile. */
  private async freeSlot(projectId: string, jobId: string): Promise<void> {
    await this.context.activeJobs.release(projectId, jobId).catch((error: unknown) => {
      this.warn({ jobId, err: (error as Error).message }, "could not free a concurrent-job slot");
    });
  }

  // Events -----------------------------------------------------------------------------------

  /** Publishes a status change; a failure rejects (a worker's run is then delivered again). */
  private publish(job: { id: string; projectId: string }, status: JobStatus): Promise<number> {
    return publishJobEvent(this.context.redis, this.context.queueName, {
      jobId: job.id,
      projectId: job.projectId,
      status,
    });
  }

  /**
   * Publishes a status change a request made; a failure is only told: waiters elsewhere then
   * answer at their deadline from Postgres, which is still right.
   */
  private async announce(job: { id: string; projectId: string }, status: JobStatus) {
    await this.publish(job, status).catch((error: unknown) => {
      this.warn({ jobId: job.id, err: (error as Error).message }, "could not publish a job event");
    });
  }

  /**
   * Queues a run at `place`; on failure the job is failed (enqueue_failed), its slot freed and
   * its end announced, and EnqueueError thrown.
   */
  private async enqueue(job: JobRef, place: number): Promise<void> {
    await enqueueRun(this.db, this.queue, job, place, async (applied) => {
      void this.freeSlot(job.projectId, job.id);
      if (applied) void this.announce(job, "failed");
    });
  }

  // Submitting -------------------------------------------------------------------------------

  /**
   * new → queued: takes a slot within `limit`, records the job, queues it and announces it. A
   * repeated idempotency key (its first job recorded meanwhile) returns that job, `created:
   * false`, queued again if its entry is missing. Throws ConcurrencyLimitError,
   * SlotsUnavailableError, or EnqueueError when the job was recorded but not queued (it is then
   * failed).
   */
  async submit(job: NewJob, options: { limit: number }): Promise<{ job: Job; created: boolean }> {
    const id = job.id ?? randomUUID();
    const place = await this.takeSlot(job.projectId, id, options.limit);
    let queued = false;
    try {
      const recorded = await recordJob(this.db, { ...job, id, priority: place });
      if (!recorded.created) {
        // The first job of a key submitted concurrently (the unique index decided).
        await this.ensureQueued(recorded.job);
        return recorded;
      }
      this.context.at?.("after-insert");
      // Dying here leaves the job recorded but not queued: the requeue sweep queues it.
      await enqueueRun(this.db, this.queue, recorded.job, place);
      queued = true;
      this.context.at?.("after-enqueue");
      // Live lists (GET /v1/events) hear of it; not awaited: nothing waits on a job just queued.
      void this.announce(recorded.job, recorded.job.status);
      return recorded;
    } finally {
      // A job not made (a duplicate, an error) or failed at once holds no slot. No event for a
      // failed one: only a racing duplicate could be waiting, and it reads the row at its
      // deadline.
      if (!queued) void this.freeSlot(job.projectId, id);
    }
  }

  /**
   * For a job submitted again (its idempotency key): if Postgres says it is queued, its entry is
   * put back now if missing (its first submitter may have died before queueing it), not only at
   * the next sweep. Not fatal: the sweep still would.
   */
  async ensureQueued(job: JobAt): Promise<void> {
    await requeueIfQueued(this.queue, this.context.redis, job).catch((error: unknown) => {
      this.warn(
        { jobId: job.id, err: (error as Error).message },
        "could not check a resubmitted job's queue entry",
      );
    });
  }

  // Stopping ---------------------------------------------------------------------------------

  /**
   * Stops the job as far as its status allows: queued or waiting, it is cancelled now (cancel);
   * running, its worker is asked to stop it (requestCancel). A job that moved on meanwhile (a
   * worker started it, a decision woke it) is read again and stopped as it now is: a request
   * racing a transition of a job still cancellable is never refused.
   */
  async stop(job: JobAt): Promise<CancelOutcome> {
    let current: JobAt = job;
    // Each lost race means the job changed status: a few in a row cannot happen but to a job
    // that is resumed and stopped in a loop.
    for (let tries = 0; tries < 5; tries++) {
      if (current.status === "queued" || current.status === "waiting") {
        if (await this.cancel(current)) return { outcome: "cancelled" };
      } else if (current.status === "running") {
        if (await this.requestCancel(current)) return { outcome: "requested" };
      } else {
        break;
      }
      const now = await this.reread(current);
      if (now === null) break;
      current = now;
    }
    return { outcome: "refused", status: current.status };
  }

  private reread(job: JobAt): Promise<JobAt | null> {
    return this.db.job.findUnique({
      where: { id: job.id },
      select: { id: true, projectId: true, run: true, status: true },
    });
  }

  /**
   * queued | waiting → cancelled, while it is still in the status it was read in. Its queue entry
   * is removed (a worker that took it already finds the row cancelled and skips it), its slot
   * freed, its end announced. False when the job had moved on.
   */
  async cancel(job: JobAt): Promise<boolean> {
    if (job.status !== "queued" && job.status !== "waiting") return false;
    const now = new Date();
    // Stored as it always was, without a position: the API shows line and column as null.
    const { code, name, message } = jobError("cancelled", "Cancelled before it started");
    const cancelled = await this.db.job.updateMany({
      where: { id: job.id, status: job.status },
      data: {
        status: "cancelled",
        finishedAt: now,
        cancelRequestedAt: now,
        error: { code, name, message },
      },
    });
    if (cancelled.count === 0) return false;
    await this.queue.remove(queueEntryId(job.id, job.run)).catch((error: unknown) => {
      this.warn({ jobId: job.id, err: (error as Error).message }, "could not remove a queue entry");
    });
    void this.freeSlot(job.projectId, job.id);
    await this.announce(job, "cancelled");
    return true;
  }

  /**
   * running: records the cancel request and tells the workers; the one running the job disposes
   * its isolate and finishes it as cancelled (a run not yet registered finds the request in the
   * row). False when the job is not running.
   */
  async requestCancel(job: Pick<Job, "id">): Promise<boolean> {
    const requested = await this.db.job.updateMany({
      where: { id: job.id, status: "running" },
      data: { cancelRequestedAt: new Date() },
    });
    if (requested.count === 0) return false;
    await this.context.redis.publish(channels(this.context.queueName).cancel, job.id);
    return true;
  }

  // Running again ----------------------------------------------------------------------------

  /**
   * failed | cancelled → queued as its next run, with `code` instead of its program if given;
   * its completed steps replay. Takes a slot within `limit`. False (and no slot held) when the job
   * was not resumable or changed meanwhile. Throws as submit does.
   */
  async resume(job: JobAt, options: { limit: number; code?: string }): Promise<boolean> {
    if (job.status !== "failed" && job.status !== "cancelled") return false;
    const place = await this.takeSlot(job.projectId, job.id, options.limit);
    const resumed = await this.db.job.updateMany({
      where: { id: job.id, status: job.status, run: job.run },
      data: {
        status: "queued",
        run: { increment: 1 },
        ...(options.code === undefined ? {} : { code: options.code }),
        result: Prisma.DbNull,
        resultTruncated: false,
        error: Prisma.DbNull,
        finishedAt: null,
        cancelRequestedAt: null,
        deliveries: 0,
      },
    });
    if (resumed.count === 0) {
      // Lost to another resume, which holds the job's slot now (a job has one slot, which both
      // took): given back only if the job is not queued or running.
      const now = await this.reread(job);
      if (now?.status !== "queued" && now?.status !== "running") {
        void this.freeSlot(job.projectId, job.id);
      }
      return false;
    }
    await this.announce(job, "queued");
    await this.requeue({ ...job, run: job.run + 1 }, place);
    return true;
  }

  /**
   * waiting → queued as its next run, once no approval of its calls is pending: the run replays
   * what was done and finds the decisions. Accepted long ago, it holds a slot whatever the
   * project's limit. False when the job was not waiting at that run (a cancel, or another
   * decision, won). Throws EnqueueError as submit does.
   */
  async wake(job: JobRef): Promise<boolean> {
    const woken = await this.db.job.updateMany({
      where: { id: job.id, status: "waiting", run: job.run },
      data: { status: "queued", run: { increment: 1 }, deliveries: 0 },
    });
    if (woken.count === 0) return false;
    const place = await this.context.activeJobs.hold(job.projectId, job.id).catch(() => 1);
    await this.announce(job, "queued");
    await this.requeue({ ...job, run: job.run + 1 }, place);
    return true;
  }

  private async requeue(job: JobRef, place: number): Promise<void> {
    // Its run is recorded as queued: dying here leaves it for the requeue sweep.
    this.context.at?.("before-requeue");
    await this.enqueue(job, place);
  }

  // A worker's run ---------------------------------------------------------------------------

  /**
   * queued | running → running (batched; see RunWrites): the job as started, its attempt and
   * delivery counted, or undefined for a stale entry (the job ended, or moved to another run).
   * Not announced yet: see announceRunning.
   */
  start(jobId: string, run: number): Promise<Job | undefined> {
    return this.runs.start(jobId, run);
  }

  /**
   * Announces a started run, once it is sure to run (it was not to be failed or cancelled at
   * once, which watchers hear as the job's end). Rejects when the event cannot go out.
   */
  async announceRunning(run: RunRef): Promise<void> {
    await this.publish({ id: run.jobId, projectId: run.projectId }, "running");
  }

  /**
   * running → succeeded | failed | cancelled, after the run's last checkpoints (batched; see
   * RunWrites), only while the job is still this run and start: a run fenced out finishes
   * nothing. Then its slot is freed and its end announced. Resolves whether it applied; rejects
   * when it could not be recorded or announced (the run is delivered again).
   */
  async finish(run: RunRef, end: RunEnd): Promise<boolean> {
    const applied = await this.runs.finish({
      jobId: run.jobId,
      run: run.run,
      attempt: run.attempt,
      ...end,
    });
    if (applied) {
      // Both go out together: one round trip's wait.
      await Promise.all([
        this.freeSlot(run.projectId, run.jobId),
        this.publish({ id: run.jobId, projectId: run.projectId }, end.status),
      ]);
    }
    return applied;
  }

  /**
   * running → waiting: the run asked a person to approve calls. The requests are stored, then
   * the job is `waiting` (no worker or isolate holds it, nor a slot of its project) until wake —
   * or `cancelled`, if a cancel was asked for meanwhile. Resolves whether it now waits; rejects when it could not be recorded (the run is delivered
   * again, and asks again).
   */
  async pauseForApproval(
    run: RunRef,
    requested: Array<{ key: string; server: string; tool: string; args: unknown }>,
    progress: { executedSteps: number; replayedSteps: number; logs: unknown },
  ): Promise<boolean> {
    const { jobId } = run;
    for (const request of requested) {
      const args = (request.args ?? {}) as Prisma.InputJsonValue;
      await this.db.approval.upsert({
        where: { jobId_stepKey: { jobId, stepKey: request.key } },
        create: { jobId, stepKey: request.key, server: request.server, tool: request.tool, args },
        update: {},
      });
    }
    const paused = await this.db.job.updateMany({
      where: {
        id: jobId,
        run: run.run,
        attempts: run.attempt,
        status: "running",
        cancelRequestedAt: null,
      },
      data: {
        status: "waiting",
        executedSteps: progress.executedSteps,
        replayedSteps: progress.replayedSteps,
        logs: progress.logs as Prisma.InputJsonValue,
      },
    });
    if (paused.count === 0) {
      // A cancel asked for once the run had stopped for approval (no run heard it): the job
      // ends cancelled, not waiting. Fenced like any end of the run.
      await this.finish(run, {
        status: "cancelled",
        error: jobError("cancelled", "The job was cancelled"),
        executedSteps: progress.executedSteps,
        replayedSteps: progress.replayedSteps,
        logs: progress.logs,
      });
      return false;
    }
    await this.freeSlot(run.projectId, jobId);
    await this.publish({ id: jobId, projectId: run.projectId }, "waiting");
    return true;
  }

  /**
   * running → queued: the run's worker shuts down (or lost the job's queue lock) and gives the
   * job back for another worker to replay. Not counted as a delivery: the worker did not die. The
   * job keeps its slot. Only while the job is still this run and start; resolves whether it was.
   */
  async handBack(run: RunRef): Promise<boolean> {
    const back = await this.db.job.updateMany({
      where: { id: run.jobId, run: run.run, attempts: run.attempt, status: "running" },
      data: { status: "queued", deliveries: { decrement: 1 } },
    });
    if (back.count === 0) return false;
    await this.publish({ id: run.jobId, projectId: run.projectId }, "queued");
    return true;
  }
}
