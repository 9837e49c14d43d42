// The moves the API makes on jobs: submitting (over REST and MCP alike), the checks submit and
// resume share, putting a run on the queue, announcing status changes, waiting for a job to end.

import { randomUUID } from "node:crypto";
import { ServerNameSchema } from "@turtle/bindings";
import {
  type Config,
  EnqueueError,
  enqueueRun,
  isUuid,
  type JobEvent,
  publishJobEvent,
  recordJob,
  requeueIfQueued,
} from "@turtle/core";
import type { Job, JobStatus } from "@turtle/db";
import type { TypeDiagnostic } from "@turtle/typecheck";
import type { FastifyInstance, FastifyReply } from "fastify";
import { ApiError, badRequest } from "../errors.ts";
import type { Auth } from "../plugins/auth.ts";
import { TERMINAL_STATUSES } from "./views.ts";

/** Rejects code the schema cannot: blank, or over MAX_CODE_BYTES once UTF-8 encoded. */
export function checkCode(app: FastifyInstance, code: string): void {
  if (code.trim() === "") {
    throw badRequest("invalid_request", "body.code is blank: send the program's TypeScript source");
  }
  const bytes = Buffer.byteLength(code, "utf8");
  const max = app.config.MAX_CODE_BYTES;
  if (bytes > max) {
    throw badRequest(
      "code_too_large",
      `body.code is ${bytes} bytes, over the limit of ${max} (MAX_CODE_BYTES): shorten the program, and pass data in body.input instead of inlining it`,
    );
  }
}

/** A job as submitted over REST or MCP, its defaults not yet applied. */
export interface JobRequest {
  code: string;
  input?: unknown;
  servers?: string[];
  timeoutMs?: number;
  memoryMb?: number;
  idempotencyKey?: string;
  /** Type-check the program against its servers' declarations before queueing it. */
  typecheck?: boolean;
}

/** JSON Schema of a program and the servers it may use: what submitting and checking share. */
export function programProperties(config: Config) {
  return {
    code: {
      type: "string",
      minLength: 1,
      description: `the program: TypeScript, the body of an async function, at most ${config.MAX_CODE_BYTES} bytes`,
    },
    servers: {
      type: "array",
      items: { type: "string", minLength: 1, description: "a registered server's name" },
      maxItems: 1000,
      description: "names of registered servers the program may use (omit for all)",
    },
  } as const;
}

/**
 * Checks a job request and queues it in the caller's project: 400 for bad code, unknown servers
 * or (when asked) type errors, 429 while the queue or the project's concurrent jobs are full,
 * 503 when it cannot be queued. A repeated idempotency key returns the project's first job, with
 * `created: false`, before any other check costs time.
 */
export async function submit(
  app: FastifyInstance,
  auth: Auth,
  request: JobRequest,
): Promise<{ id: string; status: JobStatus; created: boolean }> {
  const { config } = app;
  const { projectId } = auth;
  checkCode(app, request.code);
  checkLimits(app, request);
  const servers = request.servers ?? [];
  await checkServers(app, projectId, servers, "body.servers");
  if (request.idempotencyKey !== undefined) {
    // A repeat is answered even while the queue is full: it adds no work.
    const first = await app.db.job.findUnique({
      where: {
        projectId_idempotencyKey: { projectId, idempotencyKey: request.idempotencyKey },
      },
      select: { id: true, status: true, run: true, projectId: true },
    });
    if (first !== null) {
      await requeueIfLost(app, first);
      return { id: first.id, status: first.status, created: false };
    }
  }
  if (request.typecheck === true) {
    const names = servers.length > 0 ? servers : await app.catalogs.names(projectId, undefined, "");
    const checked = await app.catalogs.check(projectId, request.code, names);
    if (!checked.ok) throw typeErrors(checked.diagnostics, checked.truncated);
  }
  await checkQueueDepth(app);
  const id = randomUUID();
  const place = await takeSlot(app, auth, id);
  let queued = false;
  try {
    const { job, created } = await recordJob(app.db, {
      id,
      projectId,
      code: request.code,
      ...(request.input === undefined ? {} : { input: request.input }),
      servers,
      timeoutMs: request.timeoutMs ?? config.JOB_TIMEOUT_MS,
      memoryMb: request.memoryMb ?? config.JOB_MEMORY_MB,
      ...(request.idempotencyKey === undefined ? {} : { idempotencyKey: request.idempotencyKey }),
      priority: place,
    });
    if (!created) {
      // The first job of a key submitted concurrently (the unique index decided).
      await requeueIfLost(app, job);
      return { id: job.id, status: job.status, created };
    }
    killAt(app, "after-insert");
    // Dying here leaves the job recorded but not queued: the requeue sweep queues it.
    await enqueueRun(app.db, app.queue, job, place);
    queued = true;
    killAt(app, "after-enqueue");
    // Live lists (GET /v1/events) hear of it; not awaited: nothing waits on a job just queued.
    void announce(app, job, job.status);
    return { id: job.id, status: job.status, created };
  } catch (error) {
    // No event: only a racing duplicate could be waiting, and it reads the row at its deadline.
    if (error instanceof EnqueueError) throw enqueueFailed();
    throw error;
  } finally {
    // A job not made (a duplicate, an error) or failed at once holds no slot.
    if (!queued) void freeSlot(app, projectId, id);
  }
}

/**
 * A job submitted again with its idempotency key is queued now if its entry is missing (its
 * first submitter died before queueing it), not only at the next sweep. Not fatal: the sweep
 * still would.
 */
async function requeueIfLost(
  app: FastifyInstance,
  job: { id: string; run: number; projectId: string; status: JobStatus },
): Promise<void> {
  await requeueIfQueued(app.queue, app.redis, job).catch((error: unknown) => {
    app.log.warn({ err: error, jobId: job.id }, "could not check a resubmitted job's queue entry");
  });
}

/** Points of a submission where TEST_KILL_AT can make the API die; see the config. */
export type KillPoint = NonNullable<Config["TEST_KILL_AT"]>;

/** The TEST_KILL_AT hook: dies at once, as a process killed by the OOM killer or a kill -9. */
export function killAt(app: FastifyInstance, point: KillPoint): void {
  if (app.config.TEST_KILL_AT === point) process.kill(process.pid, "SIGKILL");
}

/**
 * Takes one of the project's concurrent-job slots for a job about to be made, or answers 429.
 * When the slots look full, those of jobs that ended without giving theirs back (a worker died
 * between the two) are freed first, from what Postgres says is still active. Returns the
 * project's active jobs counting this one: the job's place in the queue (see fairPriority).
 */
export async function takeSlot(app: FastifyInstance, auth: Auth, jobId: string): Promise<number> {
  const limit = auth.maxConcurrentJobs;
  try {
    const place = await app.activeJobs.take(auth.projectId, jobId, limit);
    if (place > 0) return place;
    const freed = await app.activeJobs.reconcile(auth.projectId, async (ids) => {
      const rows = await app.db.job.findMany({
        where: { id: { in: ids }, status: { in: ["queued", "running"] } },
        select: { id: true },
      });
      return new Set(rows.map((row) => row.id));
    });
    if (freed > 0) {
      const retried = await app.activeJobs.take(auth.projectId, jobId, limit);
      if (retried > 0) return retried;
    }
  } catch (error) {
    app.log.error({ err: error }, "could not count the project's active jobs");
    throw new ApiError(503, "queue_unavailable", "the queue (Redis) is unavailable: retry later");
  }
  throw new ApiError(
    429,
    "concurrency_limit",
    `project "${auth.projectName}" has ${limit} jobs queued or running, its limit (maxConcurrentJobs): retry after the Retry-After seconds, once some have ended`,
    { "retry-after": "1" },
  );
}

/** Gives a job's concurrent-job slot back; a slot left behind is freed by the next reconcile. */
export async function freeSlot(app: FastifyInstance, projectId: string, jobId: string) {
  await app.activeJobs.release(projectId, jobId).catch((error: unknown) => {
    app.log.warn({ err: error, jobId }, "could not free a concurrent-job slot");
  });
}

/** Deepest nesting of arrays and objects a job's input may have. */
export const MAX_INPUT_DEPTH = 256;

/** How deeply arrays and objects nest in a JSON value, counted without recursion. */
function jsonDepth(value: unknown, stopAt: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop() as [unknown, number];
    if (item === null || typeof item !== "object") continue;
    deepest = Math.max(deepest, depth);
    if (deepest > stopAt) return deepest;
    for (const child of Object.values(item)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** input's nesting, timeoutMs and memoryMb within bounds (the REST schema says the last two). */
function checkLimits(app: FastifyInstance, request: JobRequest): void {
  if (request.input !== undefined && jsonDepth(request.input, MAX_INPUT_DEPTH) > MAX_INPUT_DEPTH) {
    throw badRequest(
      "invalid_request",
      `input nests arrays and objects more than ${MAX_INPUT_DEPTH} levels deep: flatten it`,
    );
  }
  const { JOB_MAX_TIMEOUT_MS, JOB_MAX_MEMORY_MB } = app.config;
  const { timeoutMs, memoryMb } = request;
  if (
    timeoutMs !== undefined &&
    !(Number.isInteger(timeoutMs) && timeoutMs >= 1 && timeoutMs <= JOB_MAX_TIMEOUT_MS)
  ) {
    throw badRequest(
      "invalid_request",
      `timeoutMs must be an integer from 1 to ${JOB_MAX_TIMEOUT_MS} (JOB_MAX_TIMEOUT_MS), got ${timeoutMs}`,
    );
  }
  if (
    memoryMb !== undefined &&
    !(Number.isInteger(memoryMb) && memoryMb >= 8 && memoryMb <= JOB_MAX_MEMORY_MB)
  ) {
    throw badRequest(
      "invalid_request",
      `memoryMb must be an integer from 8 to ${JOB_MAX_MEMORY_MB} (JOB_MAX_MEMORY_MB), got ${memoryMb}`,
    );
  }
}

/** The first diagnostic in words, with where to find the others. */
export function describeTypeErrors(diagnostics: TypeDiagnostic[], truncated: boolean): string {
  const first = diagnostics[0];
  const count = `${diagnostics.length}${truncated ? "+" : ""} type error${diagnostics.length === 1 ? "" : "s"}`;
  if (first === undefined) return "the program has type errors";
  const message = first.message.replace(/\s*\n\s*/g, " ");
  return `the program has ${count}; the first, at line ${first.line}, column ${first.column}: ${message}`;
}

/** 400 `type_errors`: the program does not type-check, so it was not queued. */
export function typeErrors(diagnostics: TypeDiagnostic[], truncated: boolean): ApiError {
  return new ApiError(
    400,
    "type_errors",
    `body.code: ${describeTypeErrors(diagnostics, truncated)} (all of them are in error.diagnostics). Fix the code and submit it again, or send typecheck: false to skip the check.`,
    {},
    { diagnostics },
  );
}

/** Rejects names the project has not registered, listing them (and what it has). */
export async function checkServers(
  app: FastifyInstance,
  projectId: string,
  names: string[],
  field: string,
) {
  if (names.length === 0) return;
  // A name no server could be registered under (a NUL, say, which Postgres would refuse as
  // text) is simply unknown.
  const possible = names.filter((name) => ServerNameSchema.safeParse(name).success);
  const found = await app.db.server.findMany({
    where: { projectId, name: { in: possible } },
    select: { name: true },
  });
  const known = new Set(found.map((row) => row.name));
  const unknown = [...new Set(names.filter((name) => !known.has(name)))];
  if (unknown.length === 0) return;
  const registered = await app.db.server.findMany({
    where: { projectId },
    select: { name: true },
    orderBy: { name: "asc" },
    take: 50,
  });
  const list = registered.map((row) => row.name).join(", ") || "none";
  throw badRequest(
    "unknown_server",
    `${field} names servers that are not registered: ${unknown.map((n) => JSON.stringify(n)).join(", ")}; registered: ${list} (register one with POST /v1/servers)`,
  );
}

/** 429 while the queue already holds MAX_QUEUE_DEPTH waiting entries. */
export async function checkQueueDepth(app: FastifyInstance): Promise<void> {
  let depth: number;
  try {
    depth = await app.queueDepth();
  } catch (error) {
    app.log.error({ err: error }, "could not read the queue depth");
    throw new ApiError(503, "queue_unavailable", "the queue (Redis) is unavailable: retry later");
  }
  const max = app.config.MAX_QUEUE_DEPTH;
  if (depth >= max) {
    throw new ApiError(
      429,
      "queue_full",
      `the queue is full (${depth} jobs waiting; MAX_QUEUE_DEPTH is ${max}): retry after the Retry-After seconds`,
      { "retry-after": "2" },
    );
  }
}

export async function announce(
  app: FastifyInstance,
  job: { id: string; projectId: string },
  status: JobStatus,
) {
  const event: JobEvent = { jobId: job.id, projectId: job.projectId, status };
  await publishJobEvent(app.redis, app.config.TURTLE_QUEUE, event).catch((error: unknown) => {
    // Waiters elsewhere then answer at their deadline from Postgres, which is still right.
    app.log.warn({ err: error, jobId: job.id }, "could not publish a job event");
  });
}

/** Answers 503 for a job that was recorded but could not be queued (core marked it failed). */
export function enqueueFailed(jobId?: string): ApiError {
  const resume =
    jobId === undefined
      ? "submit it again once Redis is back (the same idempotencyKey returns it, to resume)"
      : `resume it (POST /v1/jobs/${jobId}/resume) once Redis is back`;
  return new ApiError(
    503,
    "enqueue_failed",
    `the job was recorded but could not be queued because Redis is unavailable, so it is marked failed: ${resume}`,
  );
}

/**
 * Queues a job's current run at its place (takeSlot's; see core's enqueueRun); a refusal fails
 * the job and answers 503.
 */
export async function enqueue(
  app: FastifyInstance,
  job: { id: string; projectId: string; run: number },
  place: number,
) {
  // Its run is recorded as queued: dying here leaves it for the requeue sweep.
  killAt(app, "before-requeue");
  try {
    await enqueueRun(app.db, app.queue, job, place);
  } catch (error) {
    if (!(error instanceof EnqueueError)) throw error;
    app.log.error({ err: error, jobId: job.id }, "could not enqueue a job");
    void freeSlot(app, job.projectId, job.id);
    await announce(app, job, "failed");
    throw enqueueFailed(job.id);
  }
}

/**
 * Waits until the job ends, `seconds` pass, `signal` aborts or the app closes; then reads it. The
 * waiter is registered before the job is first read, so an end that happens between the read and
 * the wait is not missed.
 */
export async function waitForJob(
  app: FastifyInstance,
  jobId: string,
  seconds: number,
  signal?: AbortSignal,
): Promise<Job | null> {
  const done = new AbortController();
  try {
    const stop = AbortSignal.any([done.signal, app.closing, ...(signal ? [signal] : [])]);
    // waitFor would not notice a signal that is already aborted.
    const ended = stop.aborted
      ? Promise.resolve(null)
      : app.jobEvents.waitFor(
          jobId,
          Math.round(seconds * 1000),
          (event) => TERMINAL_STATUSES.has(event.status),
          stop,
        );
    const job = await app.db.job.findUnique({ where: { id: jobId } });
    if (job === null || TERMINAL_STATUSES.has(job.status)) return job;
    await ended;
    return await app.db.job.findUnique({ where: { id: jobId } });
  } finally {
    // Drops the waiter when the job had already ended at the first read.
    done.abort();
  }
}

/** waitForJob for an HTTP request: a client that hangs up stops the wait. */
export async function waitForEnd(
  app: FastifyInstance,
  reply: FastifyReply,
  jobId: string,
  seconds: number,
): Promise<Job | null> {
  const hungUp = new AbortController();
  const onClose = () => {
    if (!reply.raw.writableFinished) hungUp.abort();
  };
  reply.raw.once("close", onClose);
  if (reply.request.raw.socket?.destroyed) hungUp.abort();
  try {
    return await waitForJob(app, jobId, seconds, hungUp.signal);
  } finally {
    reply.raw.off("close", onClose);
  }
}

/** Answers a `?wait=`: 200 with the job when it ended, 202 with it while it still runs. */
export async function replyAfterWait(
  app: FastifyInstance,
  reply: FastifyReply,
  jobId: string,
  seconds: number,
): Promise<{ job: Job; status: 200 | 202 }> {
  const job = await waitForEnd(app, reply, jobId, seconds);
  if (job === null) throw new ApiError(404, "not_found", `no job ${jobId}`);
  return { job, status: TERMINAL_STATUSES.has(job.status) ? 200 : 202 };
}

/** `?wait=` in seconds: more than 0, at most 60. */
export const WaitQuerySchema = {
  type: "number",
  exclusiveMinimum: 0,
  maximum: 60,
  description:
    "seconds to wait for the job to end before answering: a number above 0 and at most 60",
} as const;

/**
 * A job of the project by id, or 404 — also for another project's jobs, and for ids that are not
 * UUIDs, which no job can have.
 */
export async function findJob(app: FastifyInstance, projectId: string, id: string): Promise<Job> {
  const job = isUuid(id) ? await app.db.job.findFirst({ where: { id, projectId } }) : null;
  if (job === null) throw new ApiError(404, "not_found", `no job ${JSON.stringify(id)}`);
  return job;
}
