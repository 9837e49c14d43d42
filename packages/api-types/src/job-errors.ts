// A job's error: the one shape every part of Turtle writes into Job.error and the API shows. The
// sandbox's codes come first (a program that failed), then those of a job that could not run or
// finish at all. A new code is added here, so the API's schema, the dashboard and every writer
// see it.

/** Codes of a program's own failure, as the sandbox reports them (its RunErrorCode). */
export const RUN_ERROR_CODES = [
  "invalid_options",
  "compile_error",
  "runtime_error",
  "tool_error",
  "limit_exceeded",
  "result_error",
  "timeout",
  "cpu_limit",
  "memory_limit",
  "cancelled",
  "internal_error",
] as const;
export type RunErrorCode = (typeof RUN_ERROR_CODES)[number];

/** Every code a job's error can have. */
export const JOB_ERROR_CODES = [
  ...RUN_ERROR_CODES,
  /** Delivered more than WORKER_MAX_DELIVERIES times, and each time its worker died. */
  "worker_lost",
  /** Recorded, but Redis refused its queue entry. */
  "enqueue_failed",
  /** One of its servers could not be started or reached. */
  "server_unavailable",
  /** It names a server that is not registered (any more). */
  "unknown_server",
  /** Its servers' secrets could not be opened (the key changed, or the row was tampered with). */
  "secrets_unreadable",
  /** Its servers' configuration is invalid. */
  "invalid_config",
  /** Two of its servers, or two tools of one, map to the same name in the program API. */
  "identifier_collision",
  /** A server's answer while the job's servers started was too large, or not MCP. */
  "result_too_large",
  "malformed_result",
] as const;
export type JobErrorCode = (typeof JOB_ERROR_CODES)[number];

export type JobError = {
  code: JobErrorCode;
  /** The error's class, as a program would see it (`ToolError`, `TimeoutError`, …). */
  name: string;
  message: string;
  /** Position in the submitted TypeScript, when the error has one. */
  line: number | null;
  column: number | null;
  /** The server and tool of a `tool_error`. */
  server?: string;
  tool?: string;
};

const CODES: ReadonlySet<string> = new Set(JOB_ERROR_CODES);

export function isJobErrorCode(code: unknown): code is JobErrorCode {
  return typeof code === "string" && CODES.has(code);
}

/** The class name a code's error gets when its maker does not name one. */
const NAMES: Partial<Record<JobErrorCode, string>> = {
  cancelled: "CancelledError",
  compile_error: "CompileError",
  worker_lost: "WorkerLostError",
  enqueue_failed: "EnqueueError",
  server_unavailable: "ServerUnavailableError",
  unknown_server: "UnknownServerError",
  secrets_unreadable: "SecretsError",
  timeout: "TimeoutError",
};

/** A job error; its place in the program (line and column) is null unless given. */
export function jobError(
  code: JobErrorCode,
  message: string,
  options: {
    name?: string;
    server?: string;
    tool?: string;
    line?: number | null;
    column?: number | null;
  } = {},
): JobError {
  return {
    code,
    name: options.name ?? NAMES[code] ?? "Error",
    message,
    line: options.line ?? null,
    column: options.column ?? null,
    ...(options.server === undefined ? {} : { server: options.server }),
    ...(options.tool === undefined ? {} : { tool: options.tool }),
  };
}

/**
 * A thrown error as a job error: its own code when it is one of ours (a server that would not
 * start says `server_unavailable`, `unknown_server`, `timeout` …), else `fallback`.
 */
export function jobErrorFrom(error: unknown, fallback: JobErrorCode): JobError {
  const thrown = (error ?? {}) as { code?: unknown; name?: unknown; message?: unknown };
  const code = isJobErrorCode(thrown.code) ? thrown.code : fallback;
  const message = typeof thrown.message === "string" ? thrown.message : String(error);
  return jobError(code, message, typeof thrown.name === "string" ? { name: thrown.name } : {});
}

/**
 * A stored error (Job.error, JSON) as the API shows it, or null for none. A row written before a
 * field existed gets its default; a code unknown here reads as `internal_error`.
 */
export function readJobError(stored: unknown): JobError | null {
  if (stored === null || typeof stored !== "object") return null;
  const error = stored as Record<string, unknown>;
  const text = (key: string) => (typeof error[key] === "string" ? error[key] : undefined);
  const position = (key: string) => (typeof error[key] === "number" ? error[key] : null);
  const server = text("server");
  const tool = text("tool");
  const code = text("code");
  return {
    code: isJobErrorCode(code) ? code : "internal_error",
    name: text("name") ?? "Error",
    message: text("message") ?? "",
    line: position("line"),
    column: position("column"),
    ...(server === undefined ? {} : { server }),
    ...(tool === undefined ? {} : { tool }),
  };
}
