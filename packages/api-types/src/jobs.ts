// Jobs and steps as the REST API answers with them (GET /v1/jobs, /v1/jobs/:id, …/steps).
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

export interface JobSummary {
  id: string;
  status: JobStatus;
  /** Servers the program may use; empty means every registered server. */
  servers: string[];
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export type LogLevel = "log" | "info" | "warn" | "error" | "debug";

export interface LogEntry {
  level: LogLevel;
  message: string;
  /** Milliseconds since the run started. */
  at: number;
}

export interface JobStats {
  executedSteps: number;
  replayedSteps: number;
  attempts: number;
  wallMs: number | null;
  cpuMs: number | null;
}

/** A job read whole (GET /v1/jobs/:id, or an answer after `?wait=`). */
export interface JobView extends JobSummary {
  /** The program's return value (JSON), null until it succeeds. */
  result: unknown;
  resultTruncated: boolean;
  error: JobError | null;
  /** Console output of the last run, capped. */
  logs: LogEntry[];
  stats: JobStats;
  timeoutMs: number;
  memoryMb: number;
}

/** An accepting answer (POST /v1/jobs, …/cancel, …/resume without `?wait=`). */
export interface JobAccepted {
  id: string;
  status: JobStatus;
}

/** A tool call the job made, as recorded (GET /v1/jobs/:id/steps). */
export interface StepView {
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
}
