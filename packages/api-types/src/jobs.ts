// Jobs and steps as the REST API answers with them (GET /v1/jobs, /v1/jobs/:id, …/steps).
// Shapes are type aliases, not interfaces: the API's routes check what they answer against types
// inferred from their JSON Schemas, which allow extra keys, and only an alias can be assigned there.
import type { JobError } from "./job-errors.ts";

export const JOB_STATUSES = [
  "queued",
  "running",
  "waiting",
  "succeeded",
  "failed",
  "cancelled",
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** Statuses a job does not leave by itself (only a resume does). */
export const ENDED_STATUSES = ["succeeded", "failed", "cancelled"] as const;
export type EndedStatus = (typeof ENDED_STATUSES)[number];

export function isEnded(status: JobStatus): status is EndedStatus {
  return (ENDED_STATUSES as readonly string[]).includes(status);
}

export type JobSummary = {
  id: string;
  status: JobStatus;
  /** Servers the program may use; empty means every registered server. */
  servers: string[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
};

export type LogLevel = "log" | "info" | "warn" | "error" | "debug";

export type LogEntry = {
  level: LogLevel;
  message: string;
  /** Milliseconds since the run started. */
  at: number;
};

export type JobStats = {
  executedSteps: number;
  replayedSteps: number;
  attempts: number;
  wallMs: number | null;
  cpuMs: number | null;
};

/** A job read whole (GET /v1/jobs/:id, or an answer after `?wait=`). */
export type JobView = JobSummary & {
  /** The program's return value (JSON), null until it succeeds. */
  result: unknown;
  resultTruncated: boolean;
  error: JobError | null;
  /** Console output of the last run, capped. */
  logs: LogEntry[];
  stats: JobStats;
  timeoutMs: number;
  memoryMb: number;
};

/** An accepting answer (POST /v1/jobs, …/cancel, …/resume without `?wait=`). */
export type JobAccepted = {
  id: string;
  status: JobStatus;
};

/** A tool call the job made, as recorded (GET /v1/jobs/:id/steps). */
export type StepView = {
  key: string;
  server: string;
  tool: string;
  status: "succeeded" | "failed";
  /** The job attempt that executed the call. */
  attempt: number;
  /** Later attempts that replayed it instead. */
  replays: number;
  replayed: boolean;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  /** The tool's error when the step failed, else null. */
  error: unknown;
};
