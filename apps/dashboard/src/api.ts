// Everything the dashboard reads and does goes through Turtle's REST API, with the session
// cookie that logging in set (never the API key itself).

import {
  ENDED_STATUSES,
  JOB_STATUSES,
  type JobError,
  type JobErrorCode,
  type JobStatus,
  type JobSummary,
  type JobView,
  type LogEntry,
  type StepView,
} from "@turtle/api-types";

// What the API answers with is declared once, in @turtle/api-types, which the API's views use too.
export type { JobError, JobErrorCode, JobStatus, JobSummary, LogEntry };
export { JOB_STATUSES };
export type Job = JobView;
export const ENDED: ReadonlySet<JobStatus> = new Set(ENDED_STATUSES);

export interface Program {
  id: string;
  code: string;
  input: unknown;
  servers: string[];
  timeoutMs: number;
  memoryMb: number;
}

/**
 * A step as the job page shows it: as recorded (StepView), or still running, as the live
 * activity stream tells of it before it is recorded.
 */
export type Step = Pick<StepView, "key" | "server" | "tool" | "attempt" | "startedAt"> &
  Partial<Pick<StepView, "replays" | "replayed">> & {
    status: StepView["status"] | "running";
    finishedAt?: string | null;
    durationMs?: number | null;
    error?: unknown;
  };

export interface Approval {
  stepKey: string;
  server: string;
  tool: string;
  args: unknown;
  status: "pending" | "approved" | "rejected";
  reason: string | null;
  requestedAt: string;
  decidedAt: string | null;
}

export interface Server {
  name: string;
  transport: "stdio" | "http";
  command?: string;
  args?: string[];
  url?: string;
  type?: string;
  env?: string[];
  headers?: string[];
}

export interface Tool {
  name: string;
  title?: string;
  description?: string;
  inputSchema: unknown;
  annotations?: Record<string, unknown>;
}

export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  concurrency: number;
  startedAt: string;
  /** Jobs it runs now, of every project (`running` lists only this project's). */
  busy: number;
  running: Array<{ jobId: string; since: string }>;
  finished: Record<string, number>;
}

export interface Throughput {
  bucketSeconds: number;
  buckets: Array<{ at: string; succeeded: number; failed: number; cancelled: number }>;
}

export interface Session {
  key: { id: string; name: string; prefix: string; scopes: Array<"submit" | "read" | "admin"> };
  /** The key's project: everything the dashboard shows is this project's. */
  project: { id: string; name: string; operator: boolean };
  authenticatedBy: "bearer" | "session";
  expiresAt: string | null;
}

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const unauthorized = new EventTarget();

/** Calls `listener` whenever the API answers 401: the session has ended. */
export function onUnauthorized(listener: () => void): () => void {
  unauthorized.addEventListener("401", listener);
  return () => unauthorized.removeEventListener("401", listener);
}

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}) {
  const response = await fetch(path, {
    method: init.method ?? "GET",
    credentials: "same-origin",
    headers: init.body === undefined ? {} : { "content-type": "application/json" },
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON (a proxy's error page): shown as text below
  }
  if (!response.ok) {
    const error = (body as { error?: { code?: string; message?: string } })?.error;
    if (response.status === 401 && !path.endsWith("/session")) {
      unauthorized.dispatchEvent(new Event("401"));
    }
    throw new ApiError(
      response.status,
      error?.code ?? "http_error",
      error?.message ?? `${response.status} ${response.statusText}`,
    );
  }
  return body as T;
}

export const jobPath = (id: string) => `/dashboard/jobs/${id}`;

/** Every page of a job's steps, in order of execution (at most `max`). */
export async function allSteps(id: string, max = 5000): Promise<{ steps: Step[]; more: boolean }> {
  const steps: Step[] = [];
  let cursor: string | null = null;
  do {
    const query: string = cursor === null ? "" : `&cursor=${encodeURIComponent(cursor)}`;
    const page: { steps: Step[]; nextCursor: string | null } = await api(
      `/v1/jobs/${encodeURIComponent(id)}/steps?limit=1000${query}`,
    );
    steps.push(...page.steps);
    cursor = page.nextCursor;
  } while (cursor !== null && steps.length < max);
  return { steps, more: cursor !== null };
}
