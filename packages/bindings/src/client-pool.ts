// One lazily connected MCP session per configured server, shared by every job in the process.
// Sessions reconnect on the next use after they die; tool lists are cached until the server
// says they changed.
import {
  type CallToolResult,
  CallToolResultSchema,
  ErrorCode,
  type Implementation,
  ListToolsResultSchema,
  McpError,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { AnswerRefusal } from "./bounded-reads.ts";
import { isStdioServerConfig, type McpServerConfig, secretValues } from "./config.ts";
import { type Connection, connectServer } from "./connect.ts";
import { ServerUnavailableError, ToolError } from "./errors.ts";
import { redactValue } from "./redact.ts";
import type { StdioSandbox } from "./sandbox.ts";
import { unwrapToolResult } from "./tool-result.ts";

/**
 * The `_meta` key that carries a call's idempotency key (job id + step key) to the server, so a
 * server can drop the one duplicate a worker crash can cause. Namespaced with a reverse-DNS
 * prefix as MCP requires for custom `_meta` keys.
 */
export const IDEMPOTENCY_META_KEY = "io.turtle/idempotency-key";

export interface ClientPoolOptions {
  /**
   * How stdio servers run: confined by bubblewrap, or `{ kind: "none" }` for servers the user
   * chose on their own machine (the CLI). Required, so no caller starts servers unconfined by
   * forgetting to say.
   */
  sandbox: StdioSandbox;
  /**
   * Set when this pool may not start stdio servers at all (their project is not allowed to):
   * the message every stdio server of it fails with. Checked at each connect, so a registration
   * made before the project lost the right never starts.
   */
  stdioRefused?: string;
  /** Sent to servers in `initialize`. */
  clientInfo?: Implementation;
  /** Deadline for spawning/reaching a server and finishing the MCP handshake. Default 30 s. */
  connectTimeoutMs?: number;
  /** Default per-call deadline for `tools/call` and `tools/list`. Default 60 s. */
  callTimeoutMs?: number;
  /** How many servers may be connecting at once (each stdio connect spawns a process). Default 4. */
  maxConcurrentConnects?: number;
  /**
   * Longest message read from a server, in bytes. A longer answer fails only its own call (a
   * `ToolError` coded `result_too_large`), read no further than this. Default 8 MiB.
   */
  maxMessageBytes?: number;
  /**
   * Told of a server's trouble that fails no call: a message dropped because it was not
   * JSON-RPC (or too long) and answered no request, a stream that broke.
   */
  onProtocolError?: (server: string, error: Error) => void;
  /** Called when a server announces `notifications/tools/list_changed`. */
  onToolListChanged?: (server: string) => void;
}

export interface CallToolOptions {
  /** Aborting rejects the call with the signal's reason and sends `notifications/cancelled`. */
  signal?: AbortSignal;
  /** Travels in `params._meta[IDEMPOTENCY_META_KEY]`. */
  idempotencyKey?: string;
  timeoutMs?: number;
  /** Epoch ms after which the call is of no use (its job's deadline): bounds `timeoutMs`. */
  deadline?: number;
}

export interface ClientPool {
  serverNames(): string[];
  /** Whether a session with the server is up now (false while it starts or after it died). */
  isConnected(server: string): boolean;
  /**
   * All tools of a server (every `tools/list` page), cached until `tools/list_changed`. The
   * listing (and the connect before it) is shared: `signal` only stops this caller's wait.
   */
  listTools(server: string, options?: { signal?: AbortSignal }): Promise<Tool[]>;
  /**
   * Calls a tool and unwraps its result (see `unwrapToolResult`). Throws `ToolError` when the
   * tool fails and `ServerUnavailableError` when the server cannot be reached or goes away.
   */
  callTool(
    server: string,
    tool: string,
    args: Record<string, unknown>,
    options?: CallToolOptions,
  ): Promise<unknown>;
  /** Closes every session and stops spawned servers. Later calls fail. */
  close(): Promise<void>;
}

interface ServerSlot {
  name: string;
  config: McpServerConfig;
  connection: Connection | undefined;
  connecting: Promise<Connection> | undefined;
  tools: Promise<Tool[]> | undefined;
  /** Bumped on every invalidation, so a listing that raced one is not cached. */
  toolsVersion: number;
  /** Its `env` or `headers` values: redacted from whatever it says. */
  secrets: readonly string[];
}

/** The default of `maxMessageBytes`: the sandbox's cap on a result handed to a program. */
export const DEFAULT_MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

const DEFAULT_CLIENT_INFO: Implementation = { name: "turtle", version: "0.1.0" };

export function createClientPool(
  servers: Record<string, McpServerConfig>,
  options: ClientPoolOptions,
): ClientPool {
  const connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
  const callTimeoutMs = options.callTimeoutMs ?? 60_000;
  const limit = createLimiter(options.maxConcurrentConnects ?? 4);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const slots = new Map<string, ServerSlot>();
  for (const [name, config] of Object.entries(servers)) {
    slots.set(name, {
      name,
      config,
      connection: undefined,
      connecting: undefined,
      tools: undefined,
      toolsVersion: 0,
      secrets: secretValues(config),
    });
  }
  let closed = false;

  function slotFor(server: string): ServerSlot {
    const slot = slots.get(server);
    if (!slot) {
      throw new ServerUnavailableError(server, `no MCP server named "${server}" is configured`);
    }
    if (closed) throw poolClosed(server);
    return slot;
  }

  function invalidateTools(slot: ServerSlot): void {
    slot.tools = undefined;
    slot.toolsVersion++;
  }

  function connection(slot: ServerSlot): Promise<Connection> {
    if (slot.connection && !slot.connection.closed) return Promise.resolve(slot.connection);
    slot.connecting ??= limit(async () => {
      if (closed) throw poolClosed(slot.name);
      if (options.stdioRefused !== undefined && isStdioServerConfig(slot.config)) {
        throw new ServerUnavailableError(slot.name, options.stdioRefused);
      }
      const connection = await connectServer(slot.name, slot.config, {
        clientInfo: options.clientInfo ?? DEFAULT_CLIENT_INFO,
        timeoutMs: connectTimeoutMs,
        maxMessageBytes,
        ...(options.onProtocolError
          ? { onProtocolError: (error: Error) => options.onProtocolError?.(slot.name, error) }
          : {}),
        sandbox: options.sandbox,
        onToolListChanged: () => {
          invalidateTools(slot);
          options.onToolListChanged?.(slot.name);
        },
        onClose: (ended) => {
          if (slot.connection !== ended) return;
          slot.connection = undefined;
          // A restarted server may be a different version with different tools.
          invalidateTools(slot);
        },
      });
      if (closed) {
        await connection.close(poolClosed(slot.name).message);
        throw poolClosed(slot.name);
      }
      slot.connection = connection;
      return connection;
    }).finally(() => {
      slot.connecting = undefined;
    });
    return slot.connecting;
  }

  async function listAllTools(slot: ServerSlot): Promise<Tool[]> {
    const conn = await connection(slot);
    if (!conn.client.getServerCapabilities()?.tools) return [];
    const tools: Tool[] = [];
    let cursor: string | undefined;
    const seen = new Set<string>();
    do {
      let page: { tools: Tool[]; nextCursor?: string | undefined };
      try {
        page = await conn.client.request(
          { method: "tools/list", params: cursor === undefined ? {} : { cursor } },
          ListToolsResultSchema,
          { timeout: callTimeoutMs },
        );
      } catch (error) {
        if (error instanceof McpError && !conn.closed) {
          throw new ServerUnavailableError(
            slot.name,
            `MCP server "${slot.name}" failed to list its tools: ${error.message}`,
            { cause: error, secrets: slot.secrets },
          );
        }
        throw await dropConnection(slot, conn, error);
      }
      // Descriptions and schemas are the server's words too, shown in answers and declarations:
      // Turtle's own secrets go (the server's own env values may be ordinary words there).
      tools.push(...redactValue(page.tools));
      cursor = page.nextCursor;
      // A server that hands out the same cursor twice would otherwise loop forever.
      if (cursor !== undefined && seen.has(cursor)) break;
      if (cursor !== undefined) seen.add(cursor);
    } while (cursor !== undefined);
    return tools;
  }

  async function dropConnection(
    slot: ServerSlot,
    conn: Connection,
    cause: unknown,
  ): Promise<ServerUnavailableError> {
    const error = conn.unavailable(cause);
    if (slot.connection === conn) slot.connection = undefined;
    if (!conn.closed) await conn.close(error.message);
    return error;
  }

  async function callOn(
    slot: ServerSlot,
    conn: Connection,
    server: string,
    tool: string,
    args: Record<string, unknown>,
    idempotencyKey: string | undefined,
    timeoutMs: number | undefined,
    deadline: number | undefined,
    signal: AbortSignal | undefined,
  ): Promise<unknown> {
    const params = {
      name: tool,
      arguments: args,
      ...(idempotencyKey === undefined
        ? {}
        : { _meta: { [IDEMPOTENCY_META_KEY]: idempotencyKey } }),
    };
    const wanted = timeoutMs ?? callTimeoutMs;
    const timeout =
      deadline === undefined ? wanted : Math.max(1, Math.min(wanted, deadline - Date.now()));
    let result: CallToolResult;
    try {
      // client.request rather than client.callTool: callTool validates structuredContent
      // against output schemas only if *this* session listed tools first, which would make
      // results depend on reconnect timing.
      result = await conn.client.request({ method: "tools/call", params }, CallToolResultSchema, {
        timeout,
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      // An answer refused on arrival (too large, not JSON-RPC) is this call's alone.
      if (error instanceof McpError && error.data instanceof AnswerRefusal) {
        throw new ToolError(server, tool, error.data.message, { code: error.data.code });
      }
      if (error instanceof McpError && !conn.closed) {
        if (error.code === ErrorCode.RequestTimeout) {
          throw new ToolError(server, tool, `timed out after ${timeout} ms`, {
            rpcCode: error.code,
          });
        }
        // The SDK prefixes "MCP error <code>: " on both ends, so a server's message has it twice.
        const text = error.message.replace(/^(MCP error -?\d+: )+/, "");
        throw new ToolError(server, tool, `${text} (JSON-RPC error ${error.code})`, {
          rpcCode: error.code,
          secrets: slot.secrets,
        });
      }
      if (isZodError(error)) {
        throw new ToolError(server, tool, `returned a malformed result: ${error.message}`, {
          code: "malformed_result",
          secrets: slot.secrets,
        });
      }
      // Over HTTP a call's answer is its POST's own body: one that is not JSON fails that call.
      if (error instanceof SyntaxError && conn.transportKind !== "stdio" && !conn.closed) {
        const message = `answered with a message that is not valid JSON-RPC (${error.message}): the answer was discarded`;
        throw new ToolError(server, tool, message, {
          code: "malformed_result",
          secrets: slot.secrets,
        });
      }
      throw await dropConnection(slot, conn, error);
    }
    // What a tool returns becomes a program's value, a step row and maybe a job's result: Turtle's
    // own secrets go. (Its own env values stay in a result: they may be ordinary words, and a
    // server that returns its token returns what the program's project gave it.)
    // Redacted once unwrapped: the text a tool returns is parsed as JSON there, and a secret
    // written with JSON escapes (`\u0064b-…`) is only itself after parsing.
    return redactValue(unwrapToolResult(server, tool, result, slot.secrets));
  }

  return {
    serverNames: () => [...slots.keys()],

    isConnected(server) {
      const conn = slots.get(server)?.connection;
      return conn !== undefined && !conn.closed;
    },

    async listTools(server, listOptions) {
      const slot = slotFor(server);
      // The listing is shared by concurrent callers, so one caller's signal only stops its wait.
      if (slot.tools) return abortable(slot.tools, listOptions?.signal);
      const version = slot.toolsVersion;
      const listing = listAllTools(slot);
      slot.tools = listing;
      listing.then(
        () => {
          if (slot.toolsVersion !== version && slot.tools === listing) slot.tools = undefined;
        },
        () => {
          if (slot.tools === listing) slot.tools = undefined;
        },
      );
      return abortable(listing, listOptions?.signal);
    },

    async callTool(server, tool, args, callOptions = {}) {
      const slot = slotFor(server);
      const { idempotencyKey } = callOptions;
      callOptions.signal?.throwIfAborted();
      const linked = callOptions.signal ? link(callOptions.signal) : undefined;
      const signal = linked?.signal;
      try {
        const open = slot.connection;
        const conn =
          open !== undefined && !open.closed ? open : await abortable(connection(slot), signal);
        return await callOn(
          slot,
          conn,
          server,
          tool,
          args,
          idempotencyKey,
          callOptions.timeoutMs,
          callOptions.deadline,
          signal,
        );
      } finally {
        linked?.unlink();
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      await Promise.all(
        [...slots.values()].map(async (slot) => {
          const pending = slot.connecting?.catch(() => undefined);
          const conns = [slot.connection, await pending];
          slot.connection = undefined;
          invalidateTools(slot);
          await Promise.all(conns.map((conn) => conn?.close(poolClosed(slot.name).message)));
        }),
      );
    },
  };
}

function poolClosed(server: string): ServerUnavailableError {
  return new ServerUnavailableError(
    server,
    `MCP server "${server}" is unavailable: the client pool is closed`,
  );
}

function isZodError(error: unknown): error is Error {
  return error instanceof Error && error.name === "ZodError";
}

/** Waits for `promise` but gives up when `signal` aborts (the shared work goes on for others). */
/**
 * The MCP SDK adds an abort listener to a request's signal and never removes it, so a signal
 * shared by many calls (a program's run) would collect one listener, and at its end send one
 * `notifications/cancelled`, per call ever made. Each call gets a signal of its own instead,
 * linked to the shared one through a single listener.
 */
const links = new WeakMap<AbortSignal, Set<AbortController>>();

function link(outer: AbortSignal): { signal: AbortSignal; unlink(): void } {
  let pending = links.get(outer);
  if (pending === undefined) {
    const set = new Set<AbortController>();
    pending = set;
    links.set(outer, set);
    outer.addEventListener(
      "abort",
      () => {
        for (const controller of set) controller.abort(outer.reason);
        set.clear();
      },
      { once: true },
    );
  }
  const controller = new AbortController();
  const set = pending;
  set.add(controller);
  return { signal: controller.signal, unlink: () => set.delete(controller) };
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/** A counting semaphore: at most `max` of the given tasks run at once. */
function createLimiter(max: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async (task) => {
    if (running < max) running++;
    else await new Promise<void>((resolve) => waiting.push(resolve));
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, so no newcomer can slip in between.
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
