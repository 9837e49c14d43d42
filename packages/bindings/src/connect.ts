// One live MCP session: picks the transport from the config, performs the handshake, and turns
// every way a server can fail to start or go away into a one-line ServerUnavailableError.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport, SseError } from "@modelcontextprotocol/sdk/client/sse.js";
import {
  getDefaultEnvironment,
  StdioClientTransport,
} from "@modelcontextprotocol/sdk/client/stdio.js";
import {
  StreamableHTTPClientTransport,
  StreamableHTTPError,
} from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  ErrorCode,
  type Implementation,
  McpError,
  ToolListChangedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { boundedFetch, boundStdioReads } from "./bounded-reads.ts";
import {
  type HttpServerConfig,
  isStdioServerConfig,
  type McpServerConfig,
  type StdioServerConfig,
  secretValues,
} from "./config.ts";
import { ServerUnavailableError } from "./errors.ts";
import { longestSecret, redactCutText, redactSecrets } from "./redact.ts";
import { BwrapStdioTransport, SandboxMissingError, type StdioSandbox } from "./sandbox.ts";
import { SandboxNetworkError } from "./sandbox-network.ts";

const STDERR_TAIL_BYTES = 8 * 1024;
const TERMINATE_SESSION_MS = 1_000;

export type TransportKind = "stdio" | "streamable-http" | "sse";

export interface ConnectOptions {
  clientInfo: Implementation;
  timeoutMs: number;
  /** Longest message read from the server; a longer one fails only the request it answers. */
  maxMessageBytes: number;
  /** Told of trouble that fails no request: a message dropped as invalid, a stream that broke. */
  onProtocolError?: (error: Error) => void;
  onToolListChanged: () => void;
  /** Called once when the session ends for any reason (process exit, network loss, close()). */
  onClose: (connection: Connection) => void;
  /** How stdio servers are confined (see sandbox.ts). */
  sandbox: StdioSandbox;
}

export interface Connection {
  readonly client: Client;
  readonly transportKind: TransportKind;
  readonly closed: boolean;
  /** The error to report for a request that failed because this session is gone or broken. */
  unavailable(cause?: unknown): ServerUnavailableError;
  /** Ends the session; `reason` becomes the message of calls that were in flight. */
  close(reason: string): Promise<void>;
}

export async function connectServer(
  name: string,
  config: McpServerConfig,
  options: ConnectOptions,
): Promise<Connection> {
  return isStdioServerConfig(config)
    ? connectStdio(name, config, options)
    : connectHttp(name, config, options);
}

async function connectStdio(
  name: string,
  config: StdioServerConfig,
  options: ConnectOptions,
): Promise<Connection> {
  // What the process writes is quoted in errors, which reach users and logs: its env values are
  // secrets, and a server that prints one (`auth failed for token …`) must not reveal it.
  const secrets = secretValues(config);
  const stderr = createTail(STDERR_TAIL_BYTES, secrets);
  const sandbox = options.sandbox;
  // Reading stderr also keeps a chatty server from blocking on a full pipe.
  const transport =
    sandbox.kind === "bwrap"
      ? new BwrapStdioTransport(
          config,
          sandbox,
          (chunk) => stderr.push(chunk),
          options.maxMessageBytes,
        )
      : new StdioClientTransport({
          command: config.command,
          args: config.args ?? [],
          env: { ...getDefaultEnvironment(), ...config.env },
          ...(config.cwd === undefined ? {} : { cwd: config.cwd }),
          stderr: "pipe",
        });
  if (transport instanceof StdioClientTransport) {
    transport.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
    boundStdioReads(transport, options.maxMessageBytes);
  }
  const label = `MCP server "${name}"`;
  const session = createSession(
    name,
    label,
    "stdio",
    options,
    () => {
      const why = summarize(stderr.text());
      return `${label} exited${why ? `: ${why}` : ""}`;
    },
    secrets,
  );
  session.stderr = stderr;
  try {
    await session.start(transport);
  } catch (error) {
    // Let the last stderr chunks of a crashed process arrive before quoting them.
    await new Promise((resolve) => setImmediate(resolve));
    const why = summarize(stderr.text());
    const message =
      error instanceof SandboxMissingError || error instanceof SandboxNetworkError
        ? `${label} could not start: ${error.message}`
        : isSpawnError(error)
          ? `${label} could not start: ${error.message}`
          : isTimeout(error)
            ? `${label} did not finish initializing within ${options.timeoutMs} ms`
            : isConnectionClosed(error)
              ? `${label} exited during startup${why ? `: ${why}` : " without writing to stderr"}${sandboxHint(why)}`
              : `${label} failed to initialize: ${errorText(error)}`;
    throw new ServerUnavailableError(name, message, {
      cause: error,
      stderr: stderr.text(),
      secrets,
    });
  }
  return session.connection;
}

async function connectHttp(
  name: string,
  config: HttpServerConfig,
  options: ConnectOptions,
): Promise<Connection> {
  const url = new URL(config.url);
  const label = `MCP server "${name}" at ${config.url}`;
  const requestInit: RequestInit | undefined = config.headers
    ? { headers: config.headers }
    : undefined;
  const lost = () => `${label} closed the connection`;
  // A server may echo a header back in an error page; its token alone counts too.
  const secrets = secretValues(config);

  const report = (error: Error) => options.onProtocolError?.(error);

  let streamableFailure: unknown;
  if (config.type !== "sse") {
    const session = createSession(name, label, "streamable-http", options, lost, secrets);
    const transport: StreamableHTTPClientTransport = new StreamableHTTPClientTransport(url, {
      requestInit,
      fetch: boundedFetch(options.maxMessageBytes, () => transport.onmessage, report),
    });
    try {
      await session.start(transport);
      return session.connection;
    } catch (error) {
      // The spec's backwards-compatible client: a 4xx to the initializing POST means an
      // old HTTP+SSE server may live at this URL.
      const mayBeSse =
        config.type === undefined &&
        error instanceof StreamableHTTPError &&
        error.code !== undefined &&
        error.code >= 400 &&
        error.code < 500;
      if (!mayBeSse) {
        const message = describeHttpFailure(label, error, options);
        throw new ServerUnavailableError(name, message, { cause: error, secrets });
      }
      streamableFailure = error;
    }
  }

  const session = createSession(name, label, "sse", options, lost, secrets);
  const transport: SSEClientTransport = new SSEClientTransport(url, {
    requestInit,
    fetch: boundedFetch(options.maxMessageBytes, () => transport.onmessage, report),
  });
  try {
    await session.start(transport);
    return session.connection;
  } catch (error) {
    const sse = describeHttpFailure("", error, options).trim();
    const message =
      streamableFailure === undefined
        ? describeHttpFailure(label, error, options)
        : `${label} rejected Streamable HTTP (${httpStatusText(streamableFailure)}) and SSE failed: ${sse}`;
    throw new ServerUnavailableError(name, message, { cause: error, secrets });
  }
}

interface Session {
  connection: Connection;
  /** Set by stdio sessions, so errors can carry what the process wrote. */
  stderr: Tail | undefined;
  /** Connects and initializes; the Session is usable once this resolves. */
  start(transport: Transport): Promise<void>;
}

function createSession(
  name: string,
  label: string,
  transportKind: TransportKind,
  options: ConnectOptions,
  lostMessage: () => string,
  secrets: readonly string[],
): Session {
  const client = new Client(options.clientInfo, { capabilities: {} });
  let closed = false;
  let started = false;
  let closeReason: string | undefined;
  let transport: Transport | undefined;

  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    options.onToolListChanged();
  });
  client.onclose = () => {
    if (closed) return;
    closed = true;
    options.onClose(session.connection);
  };
  client.onerror = (error) => {
    // Transports report most trouble through requests; these two mean the session is dead for
    // good, and in-flight requests would otherwise wait for their timeout.
    const fatal =
      (transportKind === "streamable-http" &&
        /^Maximum reconnection attempts/.test(error.message)) ||
      (transportKind === "sse" && error instanceof SseError && started);
    if (fatal && !closed) {
      closeReason = `${label} connection lost: ${error.message}`;
      void client.close();
    } else if (started) {
      options.onProtocolError?.(error);
    }
  };

  const session: Session = {
    stderr: undefined,
    async start(t: Transport) {
      transport = t;
      await withDeadline(client.connect(t, { timeout: options.timeoutMs }), options.timeoutMs, () =>
        t.close(),
      );
      started = true;
    },
    connection: {
      client,
      transportKind,
      get closed() {
        return closed;
      },
      unavailable(cause?: unknown): ServerUnavailableError {
        const stderr = session.stderr?.text();
        let message = closeReason ?? (closed ? lostMessage() : undefined);
        if (message === undefined) {
          message =
            transportKind === "stdio"
              ? `${label} failed: ${errorText(cause)}`
              : describeHttpFailure(label, cause, options);
        }
        return new ServerUnavailableError(name, message, { cause, stderr, secrets });
      },
      async close(reason: string) {
        if (closed) return;
        closeReason ??= reason;
        if (transport instanceof StreamableHTTPClientTransport) {
          // Lets the server free the session now instead of when it times out.
          await withDeadline(transport.terminateSession(), TERMINATE_SESSION_MS, () => {}).catch(
            () => {},
          );
        }
        await client.close().catch(() => {});
        closed = true;
      },
    } satisfies Connection,
  };
  return session;
}

function describeHttpFailure(label: string, error: unknown, options: ConnectOptions): string {
  if (isTimeout(error)) return `${label} did not answer within ${options.timeoutMs} ms`;
  const network = networkFailure(error);
  if (network) return `${label} is unreachable: ${network}`;
  if (error instanceof StreamableHTTPError || error instanceof SseError) {
    // Error pages are HTML; their text is enough ("Cannot POST /sse").
    const detail = error.message
      .replace(/^(Streamable HTTP|SSE) error: /, "")
      .replace(/<[^>]*>/g, " ");
    return `${label} answered ${httpStatusText(error)}: ${oneLine(detail)}`;
  }
  return `${label} failed: ${errorText(error)}`;
}

function httpStatusText(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  return typeof code === "number" && code > 0 ? `HTTP ${code}` : "an error";
}

/**
 * Why a request never got an HTTP answer: the system error code (ECONNREFUSED, ENOTFOUND, …) in
 * a fetch failure's causes, or the innermost cause's message (fetch refuses some ports as "bad
 * port"). Undefined when the failure was not at the network level.
 */
function networkFailure(error: unknown): string | undefined {
  let innermost: unknown;
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    const { code, cause, errors } = e as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof code === "string" && /^(E[A-Z]+|UND_ERR\w*)$/.test(code)) return code;
    innermost = e;
    e = cause ?? (Array.isArray(errors) ? errors[0] : undefined);
  }
  // EventSource flattens the failure into its message: "SSE error: TypeError: fetch failed: …".
  if (error instanceof SseError && error.code === undefined) {
    const match = /fetch failed(?:: (.*))?$/.exec(error.message);
    if (match) return /\b(E[A-Z]{3,})\b/.exec(match[1] ?? "")?.[1] ?? match[1] ?? "fetch failed";
  }
  if (!(error instanceof TypeError) || innermost === error) return undefined;
  return innermost instanceof Error ? innermost.message : undefined;
}

function isSpawnError(error: unknown): error is Error {
  const syscall = (error as { syscall?: unknown } | null)?.syscall;
  return error instanceof Error && typeof syscall === "string" && syscall.startsWith("spawn");
}

function isTimeout(error: unknown): boolean {
  return (
    error instanceof DeadlineError ||
    (error instanceof McpError && error.code === ErrorCode.RequestTimeout)
  );
}

function isConnectionClosed(error: unknown): boolean {
  return error instanceof McpError && error.code === ErrorCode.ConnectionClosed;
}

class DeadlineError extends Error {}

/** Races `promise` with a deadline; on expiry runs `onExpire` (to release resources) and rejects. */
async function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
  onExpire: () => unknown,
): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      Promise.resolve()
        .then(onExpire)
        .catch(() => {});
      reject(new DeadlineError(`deadline of ${ms} ms passed`));
    }, ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

interface Tail {
  push(chunk: Buffer): void;
  text(): string;
}

/**
 * Keeps the last `limit` bytes written to a stream, for error messages, with `secrets` redacted
 * from what it quotes.
 */
function createTail(limit: number, secrets: readonly string[] = []): Tail {
  // Kept longer than shown: a secret the cut goes through is then still found whole in what is
  // kept, or only its end is, in the extra bytes that are dropped after redaction.
  const extra = longestSecret(secrets);
  const tail = createRawTail(limit + extra);
  return {
    push: (chunk) => tail.push(chunk),
    text: () => {
      const text = tail.text();
      return tail.cut() ? redactCutText(text, extra, secrets) : redactSecrets(text, secrets);
    },
  };
}

function createRawTail(limit: number): Tail & { cut(): boolean } {
  let kept = Buffer.alloc(0);
  let cut = false;
  return {
    push(chunk) {
      kept = Buffer.concat([kept, chunk]);
      if (kept.length > limit) {
        kept = Buffer.from(kept.subarray(kept.length - limit));
        cut = true;
      }
    },
    text() {
      return kept.toString("utf8");
    },
    cut: () => cut,
  };
}

/**
 * The most telling stderr line: the last one that is not a stack frame or Node's version banner,
 * so a crash reads as `Error: boom` rather than `Node.js v24…`.
 */
function summarize(stderr: string): string {
  const lines = stderr
    .split(/\r?\n/)
    .map((line) => line.trimEnd())
    .filter((line) => line.trim() !== "" && !/^\s+at /.test(line) && !/^Node\.js v\d/.test(line));
  return oneLine(lines.at(-1) ?? "");
}

/**
 * bwrap's own complaints (it could not make its namespaces) say where to look; a command it
 * cannot find (`bwrap: execvp …`) speaks for itself.
 */
function sandboxHint(why: string): string {
  return /^bwrap: (?!execvp)/.test(why)
    ? " (the sandbox for stdio servers could not start: `node scripts/bubblewrap.ts` checks this machine; see the README, Confining stdio servers)"
    : "";
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 300 ? `${line.slice(0, 297)}...` : line;
}

function errorText(error: unknown): string {
  return oneLine(error instanceof Error ? error.message : String(error));
}
