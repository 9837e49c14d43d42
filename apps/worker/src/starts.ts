import { isUuid } from "@turtle/core";
import type { Db, Job } from "@turtle/db";

interface Pending {
  jobId: string;
  run: number;
  resolve: (job: Job | undefined) => void;
  reject: (error: unknown) => void;
}

/**
 * Marks jobs running as their queue entries arrive, several to a statement: the entries a worker
 * takes in one turn of its event loop (many, when jobs are short and the worker busy) start with
 * one round trip and one query instead of one each, which at hundreds of jobs a second is most of
 * the worker's database work.
 *
 * A start applies only if the job is still at this run and not finished, so a stale queue entry
 * (a job cancelled or resumed meanwhile) gets `undefined`. The commit does not wait for the WAL
 * flush: if Postgres itself crashed right after, the job would just look queued again, and its
 * redelivery replays from checkpoints that are durable.
 */
export class RunStarter {
  private pending: Pending[] = [];
  private readonly db: Db;

  constructor(db: Db) {
    this.db = db;
  }

  /** The job as it now is (running, its attempt and delivery counted), or undefined if stale. */
  start(jobId: string, run: number): Promise<Job | undefined> {
    // An entry no submitter of ours made cannot name a job; let it not break its batch.
    if (!isUuid(String(jobId)) || !Number.isInteger(run) || run < 0 || run > 2 ** 31 - 1) {
      return Promise.resolve(undefined);
    }
    return new Promise((resolve, reject) => {
      if (this.pending.length === 0) setImmediate(this.write);
      this.pending.push({ jobId, run, resolve, reject });
    });
  }

  private readonly write = async () => {
    const batch = this.pending;
    this.pending = [];
    try {
      const rows = await this.db.$queryRaw<Job[]>`
        UPDATE "Job" SET status = 'running', attempts = attempts + 1,
          deliveries = deliveries + 1, "startedAt" = now()
        FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit,
          unnest(${batch.map((start) => start.jobId)}::uuid[], ${batch.map((start) => start.run)}::int[])
            AS started(id, run)
        WHERE "Job".id = started.id AND "Job".run = started.run
          AND "Job".status IN ('queued', 'running')
        RETURNING "Job".*`;
      // By id and run: a stale entry (an earlier run of a job resumed since) in the same batch
      // as the current one must not get the current run's row.
      const started = new Map(rows.map((row) => [`${row.id}:${row.run}`, row]));
      for (const start of batch) start.resolve(started.get(`${start.jobId}:${start.run}`));
    } catch (error) {
      for (const start of batch) start.reject(error);
    }
  };
}
