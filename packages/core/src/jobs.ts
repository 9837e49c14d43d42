import { type Db, type Job, Prisma } from "@turtle/db";
import { fairPriority, type JobQueue, type QueuedJob, queueEntryId } from "./queue.ts";

export interface NewJob {
  /** Made by the caller when it must know the id before the row exists (a concurrency slot). */
  id?: string;
  projectId: string;
  code: string;
  input?: unknown;
  /** The project's server names; empty for all. */
  servers?: string[];
  timeoutMs: number;
  memoryMb: number;
  idempotencyKey?: string;
  /** Its place in the queue (see fairPriority); 1, the first place, when omitted. */
  priority?: number;
}

/** The job was accepted (it is in Postgres) but could not be queued. */
export class EnqueueError extends Error {
  override name = "EnqueueError";
  readonly code = "enqueue_failed";
  readonly jobId: string;

  constructor(message: string, jobId: string) {
    super(message);
    this.jobId = jobId;
  }
}

function rowOf(job: NewJob) {
  return {
    ...(job.id === undefined ? {} : { id: job.id }),
    projectId: job.projectId,
    code: job.code,
    input:
      job.input === undefined || job.input === null
        ? Prisma.JsonNull
        : (job.input as Prisma.InputJsonValue),
    servers: job.servers ?? [],
    timeoutMs: job.timeoutMs,
    memoryMb: job.memoryMb,
    ...(job.idempotencyKey === undefined ? {} : { idempotencyKey: job.idempotencyKey }),
  };
}

/**
 * Records a job in Postgres (the first half of submitJob). A repeated idempotency key (within
 * the project) returns the first job, with `created: false`.
 */
export async function recordJob(db: Db, job: NewJob): Promise<{ job: Job; created: boolean }> {
  try {
    return { job: await db.job.create({ data: rowOf(job) }), created: true };
  } catch (error) {
    if (
      job.idempotencyKey !== undefined &&
      error instanceof Prisma.PrismaClientKnownRequestError &&
      error.code === "P2002"
    ) {
      const first = await db.job.findUnique({
        where: {
          projectId_idempotencyKey: {
            projectId: job.projectId,
            idempotencyKey: job.idempotencyKey,
          },
        },
      });
      if (first !== null) return { job: first, created: false };
    }
    throw error;
  }
}

/**
 * Records a job in Postgres, then queues it. Postgres first: a job is accepted once it is
 * recorded, and the queue entry (deduplicated by id) only carries the work; an entry that never
 * got there (the process died in between) is put back by requeueLost. A repeated idempotency
 * key returns the first job, which is not queued again.
 */
export async function submitJob(
  db: Db,
  queue: JobQueue,
  job: NewJob,
): Promise<{ job: Job; created: boolean }> {
  const recorded = await recordJob(db, job);
  if (recorded.created) await enqueueRun(db, queue, recorded.job, job.priority);
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

function queuedJob(job: Pick<Job, "id" | "run" | "projectId">): QueuedJob {
  return { jobId: job.id, run: job.run, projectId: job.projectId };
}

/**
 * Queues the job's current run at `priority` (see fairPriority; every entry has one, so none
 * jumps the others through BullMQ's unprioritized list); on failure marks the job failed (it was
 * accepted, so say why).
 */
export async function enqueueRun(
  db: Db,
  queue: JobQueue,
  job: Pick<Job, "id" | "run" | "projectId">,
  priority = 1,
) {
  try {
    await queue.add("run", queuedJob(job), {
      jobId: queueEntryId(job.id, job.run),
      priority: fairPriority(priority),
    });
  } catch (error) {
    const message = `The job was recorded but could not be queued: ${(error as Error).message}`;
    await db.job.updateMany({
      where: { id: job.id, run: job.run, status: "queued" },
      data: {
        status: "failed",
        finishedAt: new Date(),
        error: { code: "enqueue_failed", name: "EnqueueError", message, line: null, column: null },
      },
    });
    throw new EnqueueError(message, job.id);
  }
}
