// Every error this package throws on purpose carries a stable `code`, so callers (the sandbox,
// the API's error handler) branch on codes, never on message text. The two errors that quote a
// server redact its words as they are made (see redact.ts): whatever code builds them, no secret
// of Turtle's or of the server's own reaches a job, an answer or a log through them.
import { redactSecrets } from "./redact.ts";

/** The `mcpServers` configuration is invalid. The message is one line naming server and field. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly code = "invalid_config";
}

/** Two servers, or two tools of one server, map to the same identifier in the program API. */
export class CatalogError extends Error {
  override readonly name = "CatalogError";
  readonly code = "identifier_collision";
  readonly identifier: string;
  readonly originals: readonly [string, string];

  constructor(message: string, identifier: string, originals: readonly [string, string]) {
    super(message);
    this.identifier = identifier;
    this.originals = originals;
  }
}

/**
 * What went wrong with a tool call that the program can catch:
 * - `tool_error`: the tool answered `isError: true`, the server rejected the request (unknown
 *   tool, invalid params), or it did not answer in time;
 * - `result_too_large`: the server's answer was longer than the client accepts (it was discarded
 *   as it arrived, never read whole);
 * - `malformed_result`: the answer was not valid JSON-RPC, or not a valid tool result.
 * None of them is the server's fault as a whole: its other calls go on on the same connection.
 */
export type ToolErrorCode = "tool_error" | "result_too_large" | "malformed_result";

/**
 * A tool call failed at the tool: it answered `isError: true`, the server rejected the request
 * (unknown tool, invalid params), it timed out, or its answer was too large or malformed (see
 * `ToolErrorCode`). This is the error a program catches to retry or skip, so `message` is the
 * tool's own text, or says what was wrong with its answer.
 */
export class ToolError extends Error {
  override readonly name = "ToolError";
  readonly code: ToolErrorCode;
  readonly server: string;
  readonly tool: string;
  /** The JSON-RPC error code when the server rejected the request instead of running the tool. */
  readonly rpcCode: number | undefined;

  constructor(
    server: string,
    tool: string,
    message: string,
    options?: { rpcCode?: number; code?: ToolErrorCode; secrets?: readonly string[] },
  ) {
    super(redactSecrets(message, options?.secrets));
    this.code = options?.code ?? "tool_error";
    this.server = server;
    this.tool = tool;
    this.rpcCode = options?.rpcCode;
  }
}

/**
 * The server could not be reached, failed to start, or went away during a call. The next call
 * tries to connect again.
 */
export class ServerUnavailableError extends Error {
  override readonly name = "ServerUnavailableError";
  readonly code = "server_unavailable";
  readonly server: string;
  /** The last few KB a stdio server wrote to stderr, when there were any. */
  readonly stderr: string | undefined;

  constructor(
    server: string,
    message: string,
    options?: { cause?: unknown; stderr?: string; secrets?: readonly string[] },
  ) {
    super(
      redactSecrets(message, options?.secrets),
      options?.cause === undefined
        ? undefined
        : { cause: redactCause(options.cause, options.secrets) },
    );
    this.server = server;
    this.stderr = options?.stderr ? redactSecrets(options.stderr, options.secrets) : undefined;
  }
}

/**
 * The cause with the same redaction: a logger that prints an error's causes (pino does) must not
 * print a server's words through them. The cause itself when nothing needed redacting.
 */
function redactCause(cause: unknown, secrets: readonly string[] | undefined, depth = 0): unknown {
  if (typeof cause === "string") return redactSecrets(cause, secrets);
  if (!(cause instanceof Error) || depth > 5) return cause;
  const message = redactSecrets(cause.message, secrets);
  const stack = cause.stack === undefined ? undefined : redactSecrets(cause.stack, secrets);
  const inner =
    cause.cause === undefined ? undefined : redactCause(cause.cause, secrets, depth + 1);
  if (message === cause.message && stack === cause.stack && inner === cause.cause) return cause;
  const copy = new Error(message, inner === undefined ? undefined : { cause: inner });
  copy.name = cause.name;
  if (stack !== undefined) copy.stack = stack;
  return copy;
}
