import type { Db } from "@turtle/db";

/** One finished tool call, as the Step table keeps it. */
export interface Checkpoint {
  jobId: string;
  key: string;
  seq: number;
  server: string;
  tool: string;
  status: "succeeded" | "failed";
  result: unknown;
  error: unknown;
  attempt: number;
  startedAt: Date;
  finishedAt: Date;
}

export interface CheckpointWriterOptions {
  /** Longest a checkpoint waits for company before its batch is written. */
  flushMs: number;
  /** A batch this big is written at once. */
  batchMax: number;
}

interface Batch {
  rows: Checkpoint[];
  done: Promise<void>;
  settle: (error?: unknown) => void;
}

function newBatch(): Batch {
  let settle!: (error?: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    settle = (error) => (error === undefined ? resolve() : reject(error));
  });
  // A batch nobody flushes must not become an unhandled rejection.
  done.catch(() => {});
  return { rows: [], done, settle };
}

/**
 * Group commit for step checkpoints, shared by every job of a worker process. A tool result
 * goes back to its program at once; its checkpoint joins the next batch, written as one
 * statement while the previous batch is in flight. `flush()` is what a job awaits before it may
 * be reported done, so no job ends `succeeded` with a step that is not durable.
 */
export class CheckpointWriter {
  private next: Batch = newBatch();
  private writing = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly db: Db;
  private readonly options: CheckpointWriterOptions;
  /** Sizes of written batches, for the benchmark and metrics. */
  readonly batchSizes: number[] = [];

  constructor(db: Db, options: CheckpointWriterOptions) {
    this.db = db;
    this.options = options;
  }

  add(row: Checkpoint): void {
    this.next.rows.push(row);
    if (this.writing) return;
    if (this.next.rows.length >= this.options.batchMax) this.start();
    else this.timer ??= setTimeout(() => this.start(), this.options.flushMs);
  }

  /** Resolves when every checkpoint added so far is in Postgres. */
  flush(): Promise<void> {
    const batch = this.next;
    if (batch.rows.length === 0) return this.writing ? this.lastWrite : Promise.resolve();
    this.start();
    return batch.done;
  }

  private lastWrite: Promise<void> = Promise.resolve();

  private start(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.writing || this.next.rows.length === 0) return;
    const batch = this.next;
    this.next = newBatch();
    this.writing = true;
    this.lastWrite = batch.done;
    this.batchSizes.push(batch.rows.length);
    this.write(batch.rows)
      .then(
        () => batch.settle(),
        (error: unknown) => batch.settle(error),
      )
      .finally(() => {
        this.writing = false;
        if (this.next.rows.length > 0) this.start();
      });
  }

  /**
   * One INSERT for the whole batch. A step that failed before may succeed on a later attempt;
   * a succeeded step is never overwritten (a retried call after a crash reports the same).
   */
  private async write(rows: Checkpoint[]): Promise<void> {
    const payload = JSON.stringify(
      rows.map((row) => ({
        ...row,
        result: row.result === undefined ? null : row.result,
        error: row.error === undefined ? null : row.error,
      })),
    );
    await this.db.$executeRaw`
      INSERT INTO "Step" ("jobId", key, seq, server, tool, status, result, error, attempt, "startedAt", "finishedAt")
      SELECT "jobId", key, seq, server, tool, status::"StepStatus", result, error, attempt, "startedAt", "finishedAt"
      FROM jsonb_to_recordset(${payload}::jsonb) AS x(
        "jobId" uuid, key text, seq int, server text, tool text, status text, result jsonb,
        error jsonb, attempt int, "startedAt" timestamptz, "finishedAt" timestamptz)
      ON CONFLICT ("jobId", key) DO UPDATE SET
        status = EXCLUDED.status, result = EXCLUDED.result, error = EXCLUDED.error,
        attempt = EXCLUDED.attempt, "startedAt" = EXCLUDED."startedAt", "finishedAt" = EXCLUDED."finishedAt"
      WHERE "Step".status <> 'succeeded'`;
  }
}
