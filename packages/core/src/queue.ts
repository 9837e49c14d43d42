import { Queue } from "bullmq";
import { Redis } from "ioredis";

/** What a queue entry carries: Postgres holds the job itself. */
export interface QueuedJob {
  jobId: string;
  /** The job's run number (0, then one more per resume). */
  run: number;
  /**
   * The job's project, so a worker can give each project its share of its slots before it reads
   * the job (absent from entries queued before shares existed: those run unshared).
   */
  projectId?: string;
}

/** BullMQ's lowest priority (its largest number); 1 is its highest. */
export const MAX_PRIORITY = 2_097_152;

/**
 * A run's place in the queue: the project's active jobs (queued or running) when it was admitted,
 * counting itself. BullMQ takes lower numbers first and ties in order of arrival, so projects
 * take turns — every project's first job, then every project's second — instead of one project's
 * backlog standing in front of another's first job.
 */
export function fairPriority(activeJobs: number): number {
  if (!Number.isFinite(activeJobs) || activeJobs < 1) return 1;
  return Math.min(Math.floor(activeJobs), MAX_PRIORITY);
}

/** BullMQ entry id of a job's run: dedupes double submission of the same run. */
export function queueEntryId(jobId: string, run: number): string {
  return run === 0 ? jobId : `${jobId}-r${run}`;
}

/**
 * A Redis connection for BullMQ and pub/sub. `maxRetriesPerRequest: null` makes commands wait
 * through a Redis restart instead of failing (BullMQ requires it for workers). `autoPipelining`
 * sends the commands issued in one turn of the event loop in one write: for a connection that
 * only publishes, where many jobs end at once.
 */
export function createRedis(
  url: string,
  name: string,
  options: { autoPipelining?: boolean } = {},
): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: null,
    connectionName: name,
    lazyConnect: false,
    enableAutoPipelining: options.autoPipelining ?? false,
  });
}

export type JobQueue = Queue<QueuedJob, void, "run">;

export function createJobQueue(name: string, connection: Redis): JobQueue {
  return new Queue<QueuedJob, void, "run">(name, {
    connection,
    defaultJobOptions: {
      // Postgres is the record of every job; Redis keeps only what is still to do, plus a
      // short tail of failures for the queue dashboard.
      removeOnComplete: true,
      removeOnFail: { count: 1000 },
      attempts: 1,
    },
  });
}

/** Redis pub/sub channels; named after the queue so separate deployments never cross. */
export function channels(queue: string) {
  return {
    /** JobEvent JSON: a job changed status. */
    jobEvents: `${queue}:job-events`,
    /** A job id: stop it if you are running it. */
    cancel: `${queue}:cancel`,
    /** A server ref (`projectId/name`, see serverRef): its registration changed. */
    servers: `${queue}:servers`,
    /** A project id: its tool policies changed. */
    policies: `${queue}:policies`,
    /** JobActivity[] JSON of one job: its steps starting and ending, its log lines. */
    activity: (jobId: string) => `${queue}:job:${jobId}:activity`,
  };
}
