import { type Config, publishJobEvent, type QueuedJob } from "@turtle/core";
import { type Db, type JobStatus, Prisma } from "@turtle/db";
import { type LogEntry, type RunError, type RunResult, runProgram } from "@turtle/sandbox";
import { type Job as QueueEntry, WaitingError } from "bullmq";
import type { Redis } from "ioredis";
import type { CheckpointWriter } from "./checkpoints.ts";
import { DurableSteps, type PriorStep } from "./durable-steps.ts";
import type { ToolHosts } from "./tool-hosts.ts";

export interface RunJobDeps {
  config: Config;
  db: Db;
  publisher: Redis;
  toolHosts: ToolHosts;
  checkpoints: CheckpointWriter;
  limit: <T>(server: string, task: () => Promise<T>) => Promise<T>;
  /** Registers the run so a cancel request (from any API instance) can stop it. */
  track: (jobId: string, controller: AbortController) => () => void;
  log: (fields: Record<string, unknown>, message: string) => void;
}

/** Why a run was aborted from the host side. */
export const ABORT_CANCEL = "cancelled";
export const ABORT_SHUTDOWN = "shutdown";

/**
 * The BullMQ processor. Postgres is the record: the run starts only if the job is still at this
 * run number and not finished, and every write is conditioned on the same, so a stale queue
 * entry (a job cancelled or resumed meanwhile) can never overwrite the job.
 */
export async function runJob(
  entry: QueueEntry<QueuedJob>,
  token: string | undefined,
  deps: RunJobDeps,
  shutdown: AbortSignal,
): Promise<void> {
  const { config, db } = deps;
  const { jobId, run } = entry.data;
  const [job] = await db.job.updateManyAndReturn({
    where: { id: jobId, run, status: { in: ["queued", "running"] } },
    data: {
      status: "running",
      attempts: { increment: 1 },
      deliveries: { increment: 1 },
      startedAt: new Date(),
    },
  });
  if (job === undefined) return;
  const finish = (data: FinishData) => finishJob(deps, jobId, run, data);

  if (job.deliveries > config.WORKER_MAX_DELIVERIES) {
    return finish({
      status: "failed",
      error: {
        code: "worker_lost",
        name: "WorkerLostError",
        message: `The job was started ${job.deliveries - 1} times and each time the worker running it died before it finished (killed, or out of memory); it will not be started again. Resume it to try once more.`,
        line: null,
        column: null,
      },
    });
  }
  if (job.cancelRequestedAt !== null) return finish(cancelledBefore());
  await publishJobEvent(deps.publisher, config.TURTLE_QUEUE, { jobId, status: "running" });

  const controller = new AbortController();
  const untrack = deps.track(jobId, controller);
  const onShutdown = () => controller.abort(ABORT_SHUTDOWN);
  shutdown.addEventListener("abort", onShutdown, { once: true });
  let lease: Awaited<ReturnType<ToolHosts["acquire"]>> | undefined;
  try {
    const prior: PriorStep[] =
      job.attempts > 1 || job.run > 0
        ? ((await db.step.findMany({
            where: { jobId },
            select: { key: true, status: true, result: true, seq: true },
          })) as PriorStep[])
        : [];
    try {
      lease = await deps.toolHosts.acquire(job.servers);
    } catch (error) {
      return await finish({
        status: "failed",
        error: {
          code: (error as { code?: string }).code ?? "server_unavailable",
          name: (error as Error).name ?? "Error",
          message: (error as Error).message,
          line: null,
          column: null,
        },
      });
    }
    const steps = new DurableSteps({
      jobId,
      attempt: job.attempts,
      host: lease.host,
      prior,
      checkpoints: deps.checkpoints,
      limit: deps.limit,
    });
    const outcome = await runProgram(job.code, {
      input: job.input,
      namespaces: lease.host.namespaces,
      invoke: steps.invoke,
      limits: { timeoutMs: job.timeoutMs, memoryMb: job.memoryMb },
      signal: controller.signal,
    });
    // Never report a job finished before its steps are durable.
    await deps.checkpoints.flush();
    if (steps.replayedKeys.length > 0) {
      await db.$executeRaw`UPDATE "Step" SET replays = replays + 1
        WHERE "jobId" = ${jobId}::uuid AND key = ANY(${steps.replayedKeys})`;
    }
    const reason = controller.signal.reason;
    if (controller.signal.aborted && reason === ABORT_SHUTDOWN) {
      return await handBack(deps, entry, token, jobId, run);
    }
    const executedSteps = job.executedSteps + steps.executed;
    const replayedSteps = job.replayedSteps + steps.replayedKeys.length;
    deps.log(
      { jobId, ok: outcome.ok, executedSteps: steps.executed, replayed: steps.replayedKeys.length },
      "job finished",
    );
    return await finish({ ...outcomeData(outcome, config), executedSteps, replayedSteps });
  } finally {
    shutdown.removeEventListener("abort", onShutdown);
    untrack();
    lease?.release();
  }
}

/** A worker shutting down gives the job back to the queue for another worker to replay. */
async function handBack(
  deps: RunJobDeps,
  entry: QueueEntry<QueuedJob>,
  token: string | undefined,
  jobId: string,
  run: number,
): Promise<never> {
  await deps.db.job.updateMany({
    where: { id: jobId, run, status: "running" },
    data: { status: "queued", deliveries: { decrement: 1 } },
  });
  await publishJobEvent(deps.publisher, deps.config.TURTLE_QUEUE, { jobId, status: "queued" });
  await entry.moveToWait(token);
  throw new WaitingError();
}

interface FinishData {
  status: JobStatus;
  result?: unknown;
  resultTruncated?: boolean;
  error?:
    | (RunError & { code: string })
    | { code: string; name: string; message: string; line: null; column: null };
  logs?: LogEntry[];
  wallMs?: number;
  cpuMs?: number;
  executedSteps?: number;
  replayedSteps?: number;
}

function cancelledBefore(): FinishData {
  return {
    status: "cancelled",
    error: {
      code: "cancelled",
      name: "CancelledError",
      message: "The job was cancelled",
      line: null,
      column: null,
    },
  };
}

function outcomeData(outcome: RunResult, config: Config): FinishData {
  const logs = capLogs(outcome.logs, config.STORED_LOGS_MAX_BYTES);
  const stats = {
    wallMs: Math.round(outcome.stats.wallMs),
    cpuMs: Math.round(outcome.stats.cpuMs),
  };
  if (outcome.ok) {
    const json = JSON.stringify(outcome.result ?? null);
    const truncated = json.length > config.STORED_RESULT_MAX_BYTES;
    return {
      status: "succeeded",
      result: truncated
        ? { truncated: true, bytes: json.length, preview: json.slice(0, 1024) }
        : (outcome.result ?? null),
      resultTruncated: truncated,
      logs,
      ...stats,
    };
  }
  const status = outcome.error.code === "cancelled" ? "cancelled" : "failed";
  return { status, error: outcome.error, logs, ...stats };
}

function capLogs(logs: LogEntry[], maxBytes: number): LogEntry[] {
  let bytes = 0;
  const kept: LogEntry[] = [];
  for (const entry of logs) {
    bytes += entry.message.length + 32;
    if (bytes > maxBytes) {
      kept.push({
        level: "warn",
        message: `[turtle] ${logs.length - kept.length} more log lines not stored`,
        at: entry.at,
      });
      break;
    }
    kept.push(entry);
  }
  return kept;
}

async function finishJob(deps: RunJobDeps, jobId: string, run: number, data: FinishData) {
  const { db, publisher, config } = deps;
  const json = (value: unknown) =>
    value === undefined
      ? undefined
      : value === null
        ? Prisma.JsonNull
        : (value as Prisma.InputJsonValue);
  const updated = await db.job.updateMany({
    where: { id: jobId, run, status: "running" },
    data: {
      status: data.status,
      result: json(data.result),
      resultTruncated: data.resultTruncated ?? false,
      error: json(data.error),
      logs: json(data.logs),
      wallMs: data.wallMs,
      cpuMs: data.cpuMs,
      executedSteps: data.executedSteps,
      replayedSteps: data.replayedSteps,
      finishedAt: new Date(),
    },
  });
  if (updated.count > 0) {
    await publishJobEvent(publisher, config.TURTLE_QUEUE, { jobId, status: data.status });
  }
}
