// What the API shows of jobs and steps, and the JSON Schemas that document (and strip) it. The
// shapes are @turtle/api-types' (the dashboard reads the same); the schemas here must agree.
import {
  ENDED_STATUSES,
  JOB_ERROR_CODES,
  JOB_STATUSES,
  type JobError,
  type JobSummary,
  type JobView,
  type LogEntry,
  readJobError,
  type StepView,
} from "@turtle/api-types";
import type { Job, JobStatus, Step } from "@turtle/db";

export { JOB_STATUSES };
export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set(ENDED_STATUSES);

const iso = (date: Date | null) => (date === null ? null : date.toISOString());

/** A stored error as shown (see @turtle/api-types' readJobError). */
export function jobErrorView(stored: unknown): JobError | null {
  return readJobError(stored);
}

export function jobSummary(job: Job): JobSummary {
  return {
    id: job.id,
    status: job.status,
    servers: job.servers,
    createdAt: job.createdAt.toISOString(),
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
  };
}

export function jobView(job: Job): JobView {
  return {
    ...jobSummary(job),
    result: job.result,
    resultTruncated: job.resultTruncated,
    error: jobErrorView(job.error),
    // Workers always store an array; Prisma types the column as any JSON.
    logs: Array.isArray(job.logs) ? (job.logs as unknown as LogEntry[]) : [],
    stats: {
      executedSteps: job.executedSteps,
      replayedSteps: job.replayedSteps,
      attempts: job.attempts,
      wallMs: job.wallMs,
      cpuMs: job.cpuMs,
    },
    timeoutMs: job.timeoutMs,
    memoryMb: job.memoryMb,
  };
}

export function stepView(step: Step): StepView {
  return {
    key: step.key,
    server: step.server,
    tool: step.tool,
    status: step.status,
    attempt: step.attempt,
    replays: step.replays,
    replayed: step.replays > 0,
    startedAt: step.startedAt.toISOString(),
    finishedAt: step.finishedAt.toISOString(),
    durationMs: step.finishedAt.getTime() - step.startedAt.getTime(),
    error: step.error,
  };
}

const timestamp = { type: "string", format: "date-time" } as const;
const nullableTimestamp = { type: ["string", "null"], format: "date-time" } as const;
const nullableInt = { type: ["integer", "null"] } as const;

const JobSummaryProperties = {
  id: { type: "string", format: "uuid" },
  status: { type: "string", enum: JOB_STATUSES },
  servers: {
    type: "array",
    items: { type: "string" },
    description: "Servers the program may use; empty means every registered server.",
  },
  createdAt: timestamp,
  startedAt: nullableTimestamp,
  finishedAt: nullableTimestamp,
} as const;

export const JobSummarySchema = {
  type: "object",
  required: Object.keys(JobSummaryProperties),
  properties: JobSummaryProperties,
} as const;

/**
 * A job. Accepting answers carry only `id` and `status`; a job read, or a `?wait=`, carries all.
 */
export const JobSchema = {
  type: "object",
  required: ["id", "status"],
  properties: {
    ...JobSummaryProperties,
    result: { description: "The program's return value (JSON), null until it succeeds." },
    resultTruncated: { type: "boolean" },
    error: {
      type: ["object", "null"],
      required: ["code", "name", "message", "line", "column"],
      properties: {
        code: { type: "string", enum: JOB_ERROR_CODES },
        name: { type: "string" },
        message: { type: "string" },
        line: nullableInt,
        column: nullableInt,
        server: { type: "string" },
        tool: { type: "string" },
      },
    },
    logs: { type: "array", items: {}, description: "Console output of the last run, capped." },
    stats: {
      type: "object",
      required: ["executedSteps", "replayedSteps", "attempts", "wallMs", "cpuMs"],
      properties: {
        executedSteps: { type: "integer" },
        replayedSteps: { type: "integer" },
        attempts: { type: "integer" },
        wallMs: nullableInt,
        cpuMs: nullableInt,
      },
    },
    timeoutMs: { type: "integer" },
    memoryMb: { type: "integer" },
  },
} as const;

export const StepSchema = {
  type: "object",
  required: [
    "key",
    "server",
    "tool",
    "status",
    "attempt",
    "replays",
    "replayed",
    "startedAt",
    "finishedAt",
    "durationMs",
    "error",
  ],
  properties: {
    key: { type: "string" },
    server: { type: "string" },
    tool: { type: "string" },
    status: { type: "string", enum: ["succeeded", "failed"] },
    attempt: { type: "integer", description: "The job attempt that executed the call." },
    replays: { type: "integer", description: "Later attempts that replayed it instead." },
    replayed: { type: "boolean" },
    startedAt: timestamp,
    finishedAt: timestamp,
    durationMs: { type: "integer" },
    error: { description: "The tool's error when the step failed, else null." },
  },
} as const;
