// A new job's row. Recording it is the first half of submitting it; job-states.ts does the rest.
import { type Db, type Job, Prisma } from "@turtle/db";

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

/** The Job row of a new job. */
export function rowOf(job: NewJob) {
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
 * Records a job in Postgres, queued (the first half of submitting it; see job-states.ts). A
 * repeated idempotency key (within the project) returns the first job, with `created: false`.
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
