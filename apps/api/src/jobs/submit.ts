// Submitting a job, over REST and MCP alike: the checks a submission (and a resume) must pass,
// then core's JobStates records and queues it.

import { randomUUID } from "node:crypto";
import { ServerNameSchema } from "@turtle/bindings";
import type { Config } from "@turtle/core";
import type { JobStatus } from "@turtle/db";
import type { TypeDiagnostic } from "@turtle/typecheck";
import type { FastifyInstance } from "fastify";
import { ApiError, badRequest } from "../errors.ts";
import type { Auth } from "../plugins/auth.ts";
import { jobStates, transition } from "./states.ts";

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
      await jobStates(app).ensureQueued(first);
      return { id: first.id, status: first.status, created: false };
    }
  }
  if (request.typecheck === true) {
    const names = servers.length > 0 ? servers : await app.catalogs.names(projectId, undefined, "");
    const checked = await app.catalogs.check(projectId, request.code, names);
    if (!checked.ok) throw typeErrors(checked.diagnostics, checked.truncated);
  }
  await checkQueueDepth(app);
  const { job, created } = await transition(app, auth, () =>
    jobStates(app).submit(
      {
        id: randomUUID(),
        projectId,
        code: request.code,
        ...(request.input === undefined ? {} : { input: request.input }),
        servers,
        timeoutMs: request.timeoutMs ?? config.JOB_TIMEOUT_MS,
        memoryMb: request.memoryMb ?? config.JOB_MEMORY_MB,
        ...(request.idempotencyKey === undefined ? {} : { idempotencyKey: request.idempotencyKey }),
      },
      { limit: auth.maxConcurrentJobs },
    ),
  );
  return { id: job.id, status: job.status, created };
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
