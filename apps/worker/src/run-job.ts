import { jobError, jobErrorFrom } from "@turtle/api-types";
import {
  type Config,
  type JobStates,
  type PolicyTable,
  type QueuedJob,
  type RunEnd,
  type RunRef,
  SecretsKeyMissingError,
} from "@turtle/core";
import { type Db, isDatabaseError } from "@turtle/db";
import { compileProgram, type LogEntry, type RunResult, runProgram } from "@turtle/sandbox";
import { DelayedError, type Job as QueueEntry, WaitingError } from "bullmq";
import type { Redis } from "ioredis";
import { ActivityStream } from "./activity.ts";
import type { CheckpointWriter } from "./checkpoints.ts";
import { DurableSteps, type PriorSteps } from "./durable-steps.ts";
import type { WorkerMetrics } from "./metrics.ts";
import type { ToolHosts } from "./tool-hosts.ts";

export interface RunJobDeps {
  config: Config;
  db: Db;
  publisher: Redis;
  toolHosts: ToolHosts;
  checkpoints: CheckpointWriter;
  /** Every change of the job's status goes through it: start, finish, pause, hand back. */
  states: JobStates;
  /**
   * Whether the worker still holds the entry's queue lock (its lease is taken at delivery).
   * Asked just before the job is started: a lost entry may be another worker's run already.
   */
  holds?: () => boolean;
  /**
   * Registers the run, so that a cancel request (from any API instance), a checkpoint batch the
   * fence refused or the loss of its queue lock can stop it. `holds` says whether the worker
   * still holds the run's queue entry (asked before each call); `release` ends the registration.
   */
  track: (
    run: {
      jobId: string;
      attempt: number;
      /**
       * When (monotonic) the job's start was asked for: a cancel request for the job that came
       * after it, before the run was registered, was meant for this run.
       */
      startAskedAt: number;
    },
    controller: AbortController,
  ) => { holds(): boolean; release(): void };
  log: (fields: Record<string, unknown>, message: string) => void;
  /** Job, step and checkpoint figures for /metrics (optional: tests may leave them out). */
  metrics?: WorkerMetrics;
  /** A project's tool policies in force (cached by the worker until they change). */
  policies?: (projectId: string) => Promise<PolicyTable>;
  /** Told of each job handed back because this worker lacks the key its secrets are sealed with. */
  onKeyMissing?: (error: SecretsKeyMissingError, jobId: string) => void;
}

interface Prior {
  steps: PriorSteps;
  /** JSON text of succeeded steps' results by key, for the isolate to replay from. */
  replay?: string;
}

/** The name a job's program is compiled and its errors reported under. */
const PROGRAM_FILE = "program.ts";

const NO_PRIOR: Prior = { steps: { results: new Map(), maxSeq: -1 } };

/**
 * A job's checkpoints, read as one JSON text. Handed to the isolate as is, replays cost no host
 * round trip; past a share of the isolate's memory the host keeps them and answers instead.
 */
async function loadPrior(db: Db, jobId: string, memoryMb: number): Promise<Prior> {
  const [row] = await db.$queryRaw<Array<{ replay: string; maxSeq: number }>>`
    SELECT COALESCE(json_object_agg(key, result) FILTER (WHERE status = 'succeeded'), '{}')::text AS replay,
      COALESCE(max(seq), -1)::int AS "maxSeq"
    FROM "Step" WHERE "jobId" = ${jobId}::uuid`;
  const text = row?.replay ?? "{}";
  const maxSeq = row?.maxSeq ?? -1;
  if (text.length <= (memoryMb * 1024 * 1024) / 8) {
    return { steps: { results: new Map(), maxSeq }, replay: text };
  }
  return { steps: { results: new Map(Object.entries(JSON.parse(text))), maxSeq } };
}

/** Why a run was aborted from the host side. */
export const ABORT_CANCEL = "cancelled";
export const ABORT_SHUTDOWN = "shutdown";
export const ABORT_APPROVAL = "approval";
/**
 * The worker can no longer prove it holds the job's queue lock (Redis refused to renew it, or
 * the lock's deadline passed unrenewed): another worker may be running the job already.
 */
export const ABORT_LEASE = "lease lost";
/** Postgres refused the run's checkpoints: the job was started again since, or it ended. */
export const ABORT_FENCED = "fenced";

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
  // Starting the job fences any other delivery: only while this one still holds the entry.
  if (deps.holds?.() === false) throw new WaitingError();
  const startAskedAt = performance.now();
  const job = await deps.states
    .start(jobId, run)
    .catch((error: unknown) => retryLater(deps, entry, token, jobId, error));
  if (job === undefined) return;
  const { projectId } = job;
  // This start of the job: every write of the run is conditioned on the job still being at it.
  const attempt = job.attempts;
  const ref: RunRef = { jobId, projectId, run, attempt };
  const finish = async (end: RunEnd): Promise<void> => {
    await deps.states
      .finish(ref, end)
      .catch((error: unknown) => retryLater(deps, entry, token, jobId, error));
  };

  // Registered before anything else is awaited: a cancel request can come as soon as the start
  // is committed, and a shutdown at any time; heard by nobody, the job would run to its end.
  const controller = new AbortController();
  const tracked = deps.track(
    {
      jobId,
      attempt,
      startAskedAt,
    },
    controller,
  );
  const onShutdown = () => controller.abort(ABORT_SHUTDOWN);
  if (shutdown.aborted) onShutdown();
  else shutdown.addEventListener("abort", onShutdown, { once: true });
  let lease: Awaited<ReturnType<ToolHosts["acquire"]>> | undefined;
  let activity: ActivityStream | undefined;
  let stopReplays = () => {};
  try {
    if (job.deliveries > config.WORKER_MAX_DELIVERIES) {
      return await finish({
        status: "failed",
        error: jobError(
          "worker_lost",
          `The job was started ${job.deliveries - 1} times and each time the worker running it died before it finished (killed, or out of memory); it will not be started again. Resume it to try once more.`,
        ),
      });
    }
    if (job.cancelRequestedAt !== null || controller.signal.reason === ABORT_CANCEL) {
      return await finish(cancelledBefore());
    }
    await deps.states.announceRunning(ref);

    // The job's time counts from its start, so waiting for its servers is part of it.
    const deadline = Date.now() + job.timeoutMs;
    // A run stopped before its program ran (cancelled, the worker shutting down, its lease lost
    // or fenced) ends as a stopped run would.
    const stoppedEarly = async (): Promise<boolean> => {
      const reason = controller.signal.aborted ? controller.signal.reason : undefined;
      if (reason === ABORT_SHUTDOWN) await handBack(deps, entry, token, ref);
      else if (reason === ABORT_LEASE) await giveUp(deps, entry, token, ref);
      else if (reason === ABORT_CANCEL) await finish(cancelledBefore());
      else if (reason !== ABORT_FENCED) return false;
      return true;
    };
    // Compiled before any server is contacted: a program that does not compile fails at once,
    // and the compiled program says which servers it uses (runProgram finds it compiled). A
    // short program can take esbuild minutes (functions nested thousands deep): the compile
    // gives up after COMPILE_TIMEOUT_MS (stopping esbuild's process), and the wait ends sooner
    // at the job's deadline or when the run is stopped.
    const compiled = await within(
      compileProgram(job.code, PROGRAM_FILE),
      AbortSignal.any([controller.signal, AbortSignal.timeout(Math.max(0, deadline - Date.now()))]),
    );
    if (compiled === undefined) {
      if (await stoppedEarly()) return;
      return await finish({
        status: "failed",
        error: jobError(
          "timeout",
          `The job's ${job.timeoutMs} ms deadline (timeoutMs) passed while its program was still compiling. Simplify the program (functions nested very deep are slow to compile), or give the job a longer timeoutMs.`,
        ),
        logs: [],
        wallMs: job.timeoutMs,
        cpuMs: 0,
      });
    }
    if (!compiled.ok) {
      deps.metrics?.run({
        status: "failed",
        wallMs: 0,
        errorCode: "compile_error",
        executed: 0,
        replayed: 0,
      });
      return await finish({
        status: "failed",
        error: jobError("compile_error", compiled.error.message, compiled.error),
        logs: [],
        wallMs: 0,
        cpuMs: 0,
      });
    }
    const prior =
      job.attempts > 1 || job.run > 0 ? await loadPrior(db, jobId, job.memoryMb) : NO_PRIOR;
    const policies = await deps.policies?.(projectId);
    // Decisions on calls that waited for a person (a job that waited runs again as a new run).
    const approvals = new Map(
      (job.run > 0 ? await db.approval.findMany({ where: { jobId } }) : []).map((row) => [
        row.stepKey,
        { status: row.status, reason: row.reason, args: row.args },
      ]),
    );
    const requested: Array<{ key: string; server: string; tool: string; args: unknown }> = [];
    try {
      lease = await deps.toolHosts.acquire(projectId, job.servers, {
        deadline,
        timeoutMs: job.timeoutMs,
        signal: controller.signal,
        program: compiled.program.js,
      });
    } catch (error) {
      // Stopped while its servers started: as a stopped run would be.
      if (await stoppedEarly()) return;
      // The project's servers could not be read: Postgres' failure, not the servers'.
      if (isDatabaseError(error)) return await retryLater(deps, entry, token, jobId, error);
      if (error instanceof SecretsKeyMissingError) {
        return await awaitKey(deps, entry, token, ref, error);
      }
      return await finish({ status: "failed", error: jobErrorFrom(error, "server_unavailable") });
    }
    activity = new ActivityStream(deps.publisher, config.TURTLE_QUEUE, jobId, run, job.deliveries);
    const live = activity;
    // Replays so far, in the isolate and here; watchers get the count at most every 50 ms.
    let isolateReplays = 0;
    let replaysShown = 0;
    let replayTimer: NodeJS.Timeout | undefined;
    stopReplays = () => clearTimeout(replayTimer);
    const showReplays = () => {
      replayTimer = undefined;
      const count = isolateReplays + steps.replayedKeys.length;
      if (count <= replaysShown) return;
      replaysShown = count;
      live.push({ type: "replayed", count });
    };
    const replaysGrew = () => {
      replayTimer ??= setTimeout(showReplays, 50);
    };
    const steps = new DurableSteps({
      jobId,
      projectId,
      attempt,
      holds: tracked.holds,
      host: lease.host,
      prior: prior.steps,
      checkpoints: deps.checkpoints,
      limit: lease.limit,
      deadline,
      onStep: (item) => {
        live.push(item);
        deps.metrics?.step(item);
      },
      onReplay: replaysGrew,
      ...(policies === undefined ? {} : { policies }),
      approvals,
      requestApproval: (request) => {
        requested.push(request);
        controller.abort(ABORT_APPROVAL);
      },
      retry: { retries: config.STEP_RETRIES, backoffMs: config.STEP_RETRY_BACKOFF_MS },
      onRetry: (retry) => {
        deps.log({ jobId, ...retry }, "server lost during a call; calling again");
        deps.metrics?.retry(retry.server, retry.tool);
      },
    });
    // The servers that could not start, and those the program does not name (not connected).
    const unavailable = { ...lease.notConnected, ...lease.host.unavailable };
    const outcome = await runProgram(job.code, {
      input: job.input,
      onLog: (entry) => live.push({ type: "log", ...entry }),
      onReplayed: (count) => {
        isolateReplays = count;
        replaysGrew();
      },
      namespaces: lease.host.namespaces,
      ...(Object.keys(unavailable).length === 0 ? {} : { unavailable }),
      invoke: steps.invoke,
      filename: PROGRAM_FILE,
      limits: { timeoutMs: job.timeoutMs, memoryMb: job.memoryMb },
      signal: controller.signal,
      deadline,
      durable: prior.replay === undefined ? {} : { replay: prior.replay },
    });
    // Before the job's end is announced: watchers see its last steps and lines first.
    clearTimeout(replayTimer);
    isolateReplays = outcome.replayed.length;
    showReplays();
    live.flush(true);
    const replayedKeys = [...outcome.replayed, ...steps.replayedKeys];
    const reason = controller.signal.reason;
    if (controller.signal.aborted && reason === ABORT_SHUTDOWN) {
      await deps.checkpoints.flush();
      return await handBack(deps, entry, token, ref);
    }
    if (controller.signal.aborted && reason === ABORT_LEASE) {
      deps.log({ jobId, attempt }, "queue lock lost; the run stopped and gives the job back");
      await deps.checkpoints.flush().catch(() => {});
      return await giveUp(deps, entry, token, ref);
    }
    if (controller.signal.aborted && reason === ABORT_FENCED) {
      // Nothing to write: the job is another delivery's now, or over.
      deps.log({ jobId, attempt }, "job started again elsewhere or ended; the run stopped");
      return;
    }
    if (controller.signal.aborted && reason === ABORT_APPROVAL) {
      await deps.checkpoints.flush();
      // Not recorded (Postgres away): delivered again later, the run asks again.
      return await waitForApproval(deps, ref, requested, {
        executedSteps: job.executedSteps + steps.executed,
        replayedSteps: job.replayedSteps + replayedKeys.length,
        logs: capLogs(outcome.logs, config.STORED_LOGS_MAX_BYTES),
      }).catch((error: unknown) => retryLater(deps, entry, token, jobId, error));
    }
    const executedSteps = job.executedSteps + steps.executed;
    const replayedSteps = job.replayedSteps + replayedKeys.length;
    deps.log(
      { jobId, ok: outcome.ok, executedSteps: steps.executed, replayed: replayedKeys.length },
      "job finished",
    );
    deps.metrics?.run({
      status: outcome.ok
        ? "succeeded"
        : outcome.error.code === "cancelled"
          ? "cancelled"
          : "failed",
      wallMs: outcome.stats.wallMs,
      ...(outcome.ok ? {} : { errorCode: outcome.error.code }),
      executed: steps.executed,
      replayed: replayedKeys.length,
    });
    return await finish({
      ...outcomeData(outcome, config),
      executedSteps,
      replayedSteps,
      replayedKeys,
    });
  } catch (error) {
    if (error instanceof DelayedError || error instanceof WaitingError) throw error;
    // Postgres or Redis failed under the run (reading its checkpoints, policies or approvals,
    // announcing it, flushing on shutdown): the job is still running in Postgres, so the entry
    // must not end in BullMQ's failed set. Delivered again later, it replays. Unless the entry
    // is no longer this worker's: then it is left alone.
    if (!tracked.holds()) throw new WaitingError();
    return await retryLater(deps, entry, token, jobId, error);
  } finally {
    stopReplays();
    shutdown.removeEventListener("abort", onShutdown);
    activity?.flush();
    tracked.release();
    lease?.release();
  }
}

/**
 * A run paused for a person's approval: the requests are stored, then the job is `waiting` — no
 * worker or isolate holds it. A decision (POST /v1/jobs/:id/approvals/:stepKey) queues its next
 * run, which replays what was done and finds the decision.
 */
async function waitForApproval(
  deps: RunJobDeps,
  ref: RunRef,
  requested: Array<{ key: string; server: string; tool: string; args: unknown }>,
  progress: { executedSteps: number; replayedSteps: number; logs: LogEntry[] },
): Promise<void> {
  if (!(await deps.states.pauseForApproval(ref, requested, progress))) return;
  deps.log(
    { jobId: ref.jobId, approvals: requested.map((request) => request.key) },
    "job waits for approval",
  );
}

/**
 * A worker shutting down gives the job back to the queue for another worker to replay; with
 * `delayMs`, the entry comes back only after that long (a worker that could not run it).
 */
async function handBack(
  deps: RunJobDeps,
  entry: QueueEntry<QueuedJob>,
  token: string | undefined,
  ref: RunRef,
  delayMs?: number,
): Promise<never> {
  await deps.states.handBack(ref);
  if (delayMs !== undefined) {
    await entry.moveToDelayed(Date.now() + delayMs, token);
    throw new DelayedError();
  }
  await entry.moveToWait(token);
  throw new WaitingError();
}

/** How long a job this worker lacks the key for waits before it is delivered again. */
const KEY_MISSING_DELAY_MS = 5_000;

/**
 * The job's servers' secrets are sealed with a key this worker lacks (a key rotation under way,
 * or two deployments on one Postgres and Redis): nothing is wrong with the job, so it is handed
 * back, not failed, for a worker that has the key. Its entry comes back after a pause, so that
 * this worker does not spin on it; while no worker has the key, the job stays queued.
 */
async function awaitKey(
  deps: RunJobDeps,
  entry: QueueEntry<QueuedJob>,
  token: string | undefined,
  ref: RunRef,
  error: SecretsKeyMissingError,
): Promise<never> {
  deps.onKeyMissing?.(error, ref.jobId);
  return await handBack(deps, entry, token, ref, KEY_MISSING_DELAY_MS);
}

/**
 * A run that lost its queue lock gives the job back as a worker shutting down does. Either the
 * lock lapsed — the entry is back in the queue or another worker's, and BullMQ refuses this
 * worker's move — or Redis was only slow and the lock is still ours: the entry goes back to
 * wait. In both cases BullMQ must then leave the entry alone (neither complete nor fail it).
 */
async function giveUp(
  deps: RunJobDeps,
  entry: QueueEntry<QueuedJob>,
  token: string | undefined,
  ref: RunRef,
): Promise<never> {
  try {
    return await handBack(deps, entry, token, ref);
  } catch (error) {
    if (!(error instanceof WaitingError)) {
      deps.log({ jobId: ref.jobId, err: (error as Error).message }, "job left to the queue");
    }
    throw new WaitingError();
  }
}

/** How long a job whose end could not be recorded waits before it is delivered again. */
const RETRY_DELAY_MS = 5_000;

/**
 * Postgres could not record the job's start, its end or checkpoints it needs: the queue entry
 * comes back after a pause (the job stays queued or running there), to run or finish by replay.
 */
async function retryLater(
  deps: RunJobDeps,
  entry: QueueEntry<QueuedJob>,
  token: string | undefined,
  jobId: string,
  error: unknown,
): Promise<never> {
  deps.log(
    { jobId, err: error instanceof Error ? error.message : String(error), retryMs: RETRY_DELAY_MS },
    "job not recorded in Postgres; delivering it again later",
  );
  await entry.moveToDelayed(Date.now() + RETRY_DELAY_MS, token);
  throw new DelayedError();
}

/** What `work` gives, or undefined if `signal` aborts first (the work goes on unawaited). */
async function within<T>(work: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  if (signal.aborted) return undefined;
  let onAbort = () => {};
  const aborted = new Promise<undefined>((resolve) => {
    onAbort = () => resolve(undefined);
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([work, aborted]);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

function cancelledBefore(): RunEnd {
  return { status: "cancelled", error: jobError("cancelled", "The job was cancelled") };
}

function outcomeData(outcome: RunResult, config: Config): RunEnd {
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
