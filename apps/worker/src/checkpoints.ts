import type { RunEnd } from "@turtle/core";
import { type Db, Prisma } from "@turtle/db";

/**
 * One finished tool call, as the Step table keeps it; the audit log gets its project, server,
 * tool, arguments' hash, outcome and timing in the same statement.
 */
export interface Checkpoint {
  projectId: string;
  jobId: string;
  key: string;
  seq: number;
  server: string;
  tool: string;
  argsHash: string;
  status: "succeeded" | "failed";
  result: unknown;
  error: unknown;
  attempt: number;
  startedAt: Date;
  finishedAt: Date;
}

/** A call a policy or a person refused: it goes to the audit log only (it is no step). */
export type Refusal = Omit<Checkpoint, "seq" | "status" | "result"> & {
  status: "denied" | "rejected";
};

/**
 * A job's end, written in the same transaction as the last of its checkpoints: applied only while
 * the job is still running this run (not cancelled or resumed since) at this start of it
 * (`attempt`, its `attempts`; a later start fences this one out).
 */
export type JobFinish = RunEnd & { jobId: string; run: number; attempt: number };

export interface CheckpointWriterOptions {
  /** Longest a checkpoint waits for company before its batch is written. */
  flushMs: number;
  /** A batch this big is written at once. */
  batchMax: number;
  /** Told the number of checkpoints of each batch written. */
  onBatch?: (size: number) => void;
  /**
   * Told of each run whose checkpoints were refused because the job is no longer its own: it was
   * started again since (another delivery), or it ended. The run must make no more calls.
   */
  onFenced?: (jobId: string, attempt: number) => void;
}

/** What a batch's statement reports: the jobs it finished, the runs it fenced out. */
interface Written {
  finished: Set<string>;
  fenced: Array<{ jobId: string; attempt: number }>;
}

interface Batch {
  /** Checkpoints, then refusals (audit entries only). */
  steps: Array<Checkpoint | Refusal>;
  finishes: JobFinish[];
  /** Resolves with the ids of the jobs whose finish applied. */
  done: Promise<Set<string>>;
  settle: (applied: Set<string> | Error) => void;
}

function newBatch(): Batch {
  let settle!: Batch["settle"];
  const done = new Promise<Set<string>>((resolve, reject) => {
    settle = (outcome) => (outcome instanceof Error ? reject(outcome) : resolve(outcome));
  });
  // A batch nobody waits on must not become an unhandled rejection.
  done.catch(() => {});
  return { steps: [], finishes: [], done, settle };
}

const RETRIES = 5;

/** Checkpoints of the job could not be written: it must run again (by replay) to finish. */
export class CheckpointsLostError extends Error {
  override name = "CheckpointsLostError";
  constructor(jobId: string) {
    super(`checkpoints of job ${jobId} could not be written; it will be delivered again`);
  }
}

/**
 * An escape JSON.stringify writes for U+0000 or a lone surrogate (a paired one it writes as is),
 * after an even run of backslashes (each pair is one `\`, not the start of an escape).
 */
const UNSTORABLE_ESCAPE = /(?<!\\)((?:\\\\)*)\\u(?:0000|d[89a-f][0-9a-f]{2})/g;

/**
 * Postgres's jsonb holds neither U+0000 nor a lone surrogate, and one in a tool result or a job's
 * output would fail its whole batch. Both are stored as U+FFFD instead (a replayed step returns
 * it so), on the JSON text, where JSON.stringify escapes them.
 */
export function storable(json: string): string {
  return json.includes("\\u0000") || json.includes("\\ud")
    ? json.replace(UNSTORABLE_ESCAPE, "$1\\ufffd")
    : json;
}

/**
 * Group commit for a worker process: the step checkpoints and job finishes of all its jobs go
 * to Postgres in batches, one statement and one transaction (one WAL flush) each, written while
 * the previous batch is in flight. A tool result goes back to its program at once; a job's
 * finish joins the batch after its last checkpoint, so no job is ever recorded as finished
 * before its steps are durable — and finishing costs it no commit of its own.
 *
 * Every write is fenced by the run that made it: the job must still be `running` at the start
 * (`attempts`) the run was, or its checkpoints and finish are refused and the run is told to
 * stop (`onFenced`). A later delivery's start bumps `attempts`, so the batches of an earlier run
 * still going (its worker lost the queue lock) are refused from that moment on.
 */
export class CheckpointWriter {
  private next: Batch = newBatch();
  private writing: Promise<unknown> | null = null;
  private timer: NodeJS.Timeout | undefined;
  /** Jobs with checkpoints in a batch that failed for good: their finish is refused. */
  private readonly lost = new Set<string>();
  private readonly db: Db;
  private readonly options: CheckpointWriterOptions;

  constructor(db: Db, options: CheckpointWriterOptions) {
    this.db = db;
    this.options = options;
  }

  add(step: Checkpoint): void {
    this.next.steps.push(step);
    this.schedule();
  }

  /** Records a refused call in the audit log, with the next batch. */
  audit(refusal: Refusal): void {
    this.next.steps.push(refusal);
    this.schedule();
  }

  /**
   * Records the job's end; resolves true when it applied (the job was still this run's). Rejects
   * when it could not be written, or when checkpoints of the job were lost (their batch failed
   * for good): the job must not end without them, so it is left running for a later delivery.
   */
  async finish(finish: JobFinish): Promise<boolean> {
    const batch = this.next;
    batch.finishes.push(finish);
    this.start();
    // However the batch ends, this run of the job is over here: the loss is forgotten once
    // acted on, so a later delivery to this worker starts clean.
    let applied: Set<string>;
    try {
      applied = await batch.done;
    } catch (error) {
      this.lost.delete(finish.jobId);
      throw error;
    }
    if (this.lost.delete(finish.jobId)) throw new CheckpointsLostError(finish.jobId);
    return applied.has(finish.jobId);
  }

  /** Resolves when everything added so far is in Postgres. */
  async flush(): Promise<void> {
    const batch = this.next;
    if (batch.steps.length + batch.finishes.length === 0) {
      await this.writing;
      return;
    }
    this.start();
    await batch.done;
  }

  private schedule(): void {
    if (this.writing !== null) return;
    if (this.next.steps.length >= this.options.batchMax) this.start();
    else this.timer ??= setTimeout(() => this.start(), this.options.flushMs);
  }

  private start(): void {
    if (this.writing !== null) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.next;
    if (batch.steps.length + batch.finishes.length === 0) return;
    this.next = newBatch();
    this.writing = this.writeWithRetries(batch)
      .then(
        (written) => {
          batch.settle(written.finished);
          for (const run of written.fenced) this.options.onFenced?.(run.jobId, run.attempt);
        },
        (error: unknown) => {
          for (const step of batch.steps) this.lost.add(step.jobId);
          batch.settle(error instanceof Error ? error : new Error(String(error)));
        },
      )
      .finally(() => {
        this.writing = null;
        if (this.next.finishes.length > 0) this.start();
        else if (this.next.steps.length > 0) this.schedule();
      });
  }

  /**
   * A dropped connection or a restarting Postgres is retried. A batch that still fails is
   * written job by job, so that a row Postgres refuses costs only its own job (which is then
   * delivered again), not every job that happened to share its batch.
   */
  private async writeWithRetries(batch: Batch): Promise<Written> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.write(batch);
      } catch (error) {
        if (attempt >= RETRIES) return this.writeJobByJob(batch, error);
        await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** attempt));
      }
    }
  }

  private async writeJobByJob(batch: Batch, error: unknown): Promise<Written> {
    const parts = new Map<string, Pick<Batch, "steps" | "finishes">>();
    const partOf = (jobId: string) => {
      let part = parts.get(jobId);
      if (part === undefined) {
        part = { steps: [], finishes: [] };
        parts.set(jobId, part);
      }
      return part;
    };
    for (const step of batch.steps) partOf(step.jobId).steps.push(step);
    for (const finish of batch.finishes) partOf(finish.jobId).finishes.push(finish);
    if (parts.size <= 1) throw error;
    const written: Written = { finished: new Set(), fenced: [] };
    for (const [jobId, part] of parts) {
      try {
        const { finished, fenced } = await this.write(part);
        for (const id of finished) written.finished.add(id);
        written.fenced.push(...fenced);
      } catch {
        this.lost.add(jobId);
      }
    }
    return written;
  }

  /**
   * One statement: insert the checkpoints (a step that failed before may succeed on a later
   * attempt; a succeeded one is never overwritten) and their audit entries, count replays, and
   * finish the jobs. Parts with nothing to do are left out: a batch of a running job's steps,
   * the usual one, is two inserts from one parse of its rows, which costs Postgres about a third
   * less CPU than the statement with its two empty updates.
   *
   * Checkpoints go in only for runs that still hold their job (one primary-key probe of Job per
   * run in the batch); the audit log keeps every call made, a fenced-out run's too, since those
   * calls did happen.
   */
  private async write(batch: Pick<Batch, "steps" | "finishes">): Promise<Written> {
    if (batch.steps.length > 0) this.options.onBatch?.(batch.steps.length);
    const parts: Prisma.Sql[] = [];
    if (batch.steps.length > 0) {
      // Checkpoints travel as JSON text, taken apart by json_to_recordset: half the Postgres
      // CPU of the jsonb variant, which builds a binary document first (1,000 steps: ~5 ms vs
      // ~9 ms). The rows go as they are: a result or error left out reads as NULL.
      const steps = storable(JSON.stringify(batch.steps));
      parts.push(Prisma.sql`x AS MATERIALIZED (
        SELECT * FROM json_to_recordset(${steps}::json) AS x(
          "projectId" uuid, "jobId" uuid, key text, seq int, server text, tool text,
          "argsHash" text, status text, result jsonb, error jsonb, attempt int,
          "startedAt" timestamptz, "finishedAt" timestamptz)
      )`);
      parts.push(Prisma.sql`audited AS (
        INSERT INTO "AuditEntry" ("projectId", "jobId", "stepKey", server, tool, "argsHash",
          outcome, "errorCode", attempt, "startedAt", "finishedAt", "durationMs")
        SELECT "projectId", "jobId", key, server, tool, "argsHash", status::"AuditOutcome",
          error->>'code', attempt, "startedAt", "finishedAt",
          round(extract(epoch FROM "finishedAt" - "startedAt") * 1000)::int
        FROM x
        RETURNING 1
      )`);
      parts.push(Prisma.sql`runs AS MATERIALIZED (
        SELECT DISTINCT "jobId", attempt FROM x
      )`);
      parts.push(Prisma.sql`held AS MATERIALIZED (
        SELECT runs."jobId", runs.attempt FROM runs JOIN "Job" AS j
          ON j.id = runs."jobId" AND j.attempts = runs.attempt AND j.status = 'running'
      )`);
      parts.push(Prisma.sql`inserted AS (
        INSERT INTO "Step" ("jobId", key, seq, server, tool, status, result, error, attempt, "startedAt", "finishedAt")
        SELECT "jobId", key, seq, server, tool, status::"StepStatus", result, error, attempt, "startedAt", "finishedAt"
        FROM x JOIN held USING ("jobId", attempt) WHERE status IN ('succeeded', 'failed')
        ON CONFLICT ("jobId", key) DO UPDATE SET
          status = EXCLUDED.status, result = EXCLUDED.result, error = EXCLUDED.error,
          attempt = EXCLUDED.attempt, "startedAt" = EXCLUDED."startedAt", "finishedAt" = EXCLUDED."finishedAt"
        WHERE "Step".status <> 'succeeded'
        RETURNING 1
      )`);
    }
    const replayed = batch.finishes.flatMap((finish) =>
      (finish.replayedKeys ?? []).map((key) => ({ jobId: finish.jobId, key })),
    );
    if (replayed.length > 0) {
      parts.push(Prisma.sql`replayed AS (
        UPDATE "Step" AS s SET replays = s.replays + 1
        FROM jsonb_to_recordset(${JSON.stringify(replayed)}::jsonb) AS r("jobId" uuid, key text)
        WHERE s."jobId" = r."jobId" AND s.key = r.key
        RETURNING 1
      )`);
    }
    const finishing = batch.finishes.filter((finish) => !this.lost.has(finish.jobId));
    if (finishing.length > 0) {
      const finishes = storable(
        JSON.stringify(
          finishing.map(({ replayedKeys: _keys, ...finish }) => ({
            ...finish,
            result: finish.result ?? null,
            error: finish.error ?? null,
            logs: finish.logs ?? [],
          })),
        ),
      );
      parts.push(Prisma.sql`finished AS (
        UPDATE "Job" AS j SET
          status = f.status::"JobStatus", result = f.result, "resultTruncated" = COALESCE(f."resultTruncated", false),
          error = f.error, logs = f.logs, "wallMs" = f."wallMs", "cpuMs" = f."cpuMs",
          "executedSteps" = COALESCE(f."executedSteps", j."executedSteps"),
          "replayedSteps" = COALESCE(f."replayedSteps", j."replayedSteps"),
          "finishedAt" = now()
        FROM jsonb_to_recordset(${finishes}::jsonb) AS f(
          "jobId" uuid, run int, attempt int, status text, result jsonb, "resultTruncated" boolean,
          error jsonb, logs jsonb, "wallMs" int, "cpuMs" int, "executedSteps" int, "replayedSteps" int)
        WHERE j.id = f."jobId" AND j.run = f.run AND j.attempts = f.attempt AND j.status = 'running'
        RETURNING j.id
      )`);
    }
    const written: Written = { finished: new Set(), fenced: [] };
    if (parts.length === 0) return written;
    // Data-modifying parts of a WITH run whether or not the final SELECT reads them.
    const results: Prisma.Sql[] = [];
    if (finishing.length > 0) {
      results.push(Prisma.sql`SELECT id::text AS "jobId", NULL::int AS attempt FROM finished`);
    }
    if (batch.steps.length > 0) {
      results.push(Prisma.sql`SELECT "jobId"::text, attempt FROM runs
        WHERE NOT EXISTS (SELECT FROM held WHERE held."jobId" = runs."jobId" AND held.attempt = runs.attempt)`);
    }
    const rows = await this.db.$queryRaw<Array<{ jobId: string; attempt: number | null }>>`
      WITH ${Prisma.join(parts)}
      ${results.length > 0 ? Prisma.join(results, " UNION ALL ") : Prisma.sql`SELECT NULL::text AS "jobId", NULL::int AS attempt WHERE false`}`;
    for (const row of rows) {
      if (row.attempt === null) written.finished.add(row.jobId);
      else written.fenced.push({ jobId: row.jobId, attempt: row.attempt });
    }
    return written;
  }
}
