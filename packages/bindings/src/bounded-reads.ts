// What a server writes is read a line (one JSON-RPC message) at a time with a cap on the line's
// length, so one tool's answer can fail only its own call: a line over the cap is discarded as
// it arrives (never held whole) and one that is not JSON-RPC is dropped, and either way the
// request it answers — its id recovered from the few bytes kept of the line's head and tail —
// gets an error that says what was wrong. The connection, and every other call on it, goes on.
import type { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  ErrorCode,
  type JSONRPCMessage,
  JSONRPCMessageSchema,
  type RequestId,
} from "@modelcontextprotocol/sdk/types.js";
import type { ToolErrorCode } from "./errors.ts";

/** The bytes kept of each end of an oversized line, to find its JSON-RPC id in. */
const KEPT_BYTES = 256;

/**
 * Why an answer was refused. It travels as the `data` of the JSON-RPC error delivered to the
 * request, in process: a server can write any JSON, but never an instance of this class.
 */
export class AnswerRefusal {
  readonly code: Exclude<ToolErrorCode, "tool_error">;
  readonly message: string;

  constructor(code: Exclude<ToolErrorCode, "tool_error">, message: string) {
    this.code = code;
    this.message = message;
  }
}

export function tooLarge(bytes: number, limit: number, atLeast = ""): AnswerRefusal {
  return new AnswerRefusal(
    "result_too_large",
    `answered with ${atLeast}${bytes} bytes, over the ${limit}-byte limit on one message (TOOL_RESULT_MAX_BYTES): the answer was discarded; ask the tool for less (a page, a filter)`,
  );
}

function malformed(reason: string): AnswerRefusal {
  return new AnswerRefusal(
    "malformed_result",
    `answered with a message that is not valid JSON-RPC (${reason}): the answer was discarded`,
  );
}

/** The error response that fails request `id` with `refusal`. */
export function refusalMessage(id: RequestId, refusal: AnswerRefusal): JSONRPCMessage {
  return {
    jsonrpc: "2.0",
    id,
    error: { code: ErrorCode.InternalError, message: refusal.message, data: refusal },
  };
}

/** Where a line splitter hands what it read. */
export interface LineSink {
  /** A whole line within the cap, without its `\n`. */
  line(bytes: Buffer): void;
  /** A line over the cap: its length, and the first and last few hundred bytes. */
  oversized(bytes: number, head: Buffer, tail: Buffer): void;
}

/**
 * Splits a byte stream into lines of at most `maxBytes`; of a longer line it keeps only both
 * ends, so memory stays bounded however much a server writes without a newline.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private overflow = false;
  private head: Buffer = Buffer.alloc(0);
  private tail: Buffer = Buffer.alloc(0);
  private readonly maxBytes: number;
  private readonly sink: LineSink;

  constructor(maxBytes: number, sink: LineSink) {
    this.maxBytes = maxBytes;
    this.sink = sink;
  }

  push(chunk: Uint8Array): void {
    const bytes = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let start = 0;
    while (start < bytes.length) {
      const newline = bytes.indexOf(10, start);
      this.take(bytes.subarray(start, newline === -1 ? bytes.length : newline));
      if (newline === -1) return;
      this.finishLine();
      start = newline + 1;
    }
  }

  reset(): void {
    this.parts = [];
    this.size = 0;
    this.overflow = false;
    this.head = Buffer.alloc(0);
    this.tail = Buffer.alloc(0);
  }

  private take(piece: Buffer): void {
    if (piece.length === 0) return;
    if (!this.overflow && this.size + piece.length <= this.maxBytes) {
      this.parts.push(piece);
      this.size += piece.length;
      return;
    }
    if (!this.overflow) {
      this.overflow = true;
      this.head = firstBytes([...this.parts, piece], KEPT_BYTES);
      this.tail = lastBytes(this.parts, KEPT_BYTES);
      this.parts = [];
    }
    this.size += piece.length;
    this.tail = lastBytes([this.tail, piece], KEPT_BYTES);
  }

  private finishLine(): void {
    if (this.overflow) this.sink.oversized(this.size, this.head, this.tail);
    else
      this.sink.line(
        this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts),
      );
    this.reset();
  }
}

/** A copy of the first `n` bytes of `parts` taken together. */
function firstBytes(parts: readonly Buffer[], n: number): Buffer {
  const taken: Buffer[] = [];
  let size = 0;
  for (const part of parts) {
    if (size >= n) break;
    const slice = part.subarray(0, n - size);
    taken.push(slice);
    size += slice.length;
  }
  return Buffer.concat(taken);
}

/** A copy of the last `n` bytes of `parts` taken together. */
function lastBytes(parts: readonly Buffer[], n: number): Buffer {
  const taken: Buffer[] = [];
  let size = 0;
  for (let i = parts.length - 1; i >= 0 && size < n; i--) {
    const part = parts[i] as Buffer;
    const slice = part.subarray(Math.max(0, part.length - (n - size)));
    taken.unshift(slice);
    size += slice.length;
  }
  return Buffer.concat(taken);
}

const ID = String.raw`("(?:[^"\\]|\\.){0,200}"|-?\d{1,16})`;
const VERSION = String.raw`"jsonrpc"\s*:\s*"2\.0"`;
/** SDK servers end an answer with its version and id: `{"result":…,"jsonrpc":"2.0","id":7}`. */
const ID_AT_END = new RegExp(String.raw`${VERSION}\s*,\s*"id"\s*:\s*${ID}\s*\}\s*$`);
/** Others begin with them: `{"jsonrpc":"2.0","id":7,"result":…` (or id first). */
const ID_AT_START = new RegExp(
  String.raw`^\s*\{\s*(?:${VERSION}\s*,\s*"id"\s*:\s*${ID}|"id"\s*:\s*${ID}\s*,\s*${VERSION})`,
);
/** A message from the server that asks something (a request or notification), not an answer. */
const ASKS = /^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"method"\s*:/;

/**
 * The JSON-RPC id of an answer known only by both ends of its text. Only an id next to the
 * `"jsonrpc":"2.0"` member at the message's very edge counts: inside a string an id-like text has
 * its quotes escaped, and a nested object's `"id"` has no version beside it, so neither a tool's
 * content nor a truncated result can charge the error to another call.
 */
export function recoverId(head: string, tail: string): RequestId | undefined {
  if (ASKS.test(head)) return undefined;
  const end = ID_AT_END.exec(tail);
  const start = end ? undefined : ID_AT_START.exec(head);
  const raw = end?.[1] ?? start?.[1] ?? start?.[2];
  if (raw === undefined) return undefined;
  try {
    const id: unknown = JSON.parse(raw);
    return typeof id === "number" || typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Parses one line as a JSON-RPC message. A line that is not one yields the refusal to deliver to
 * the request it answers, or an Error (to report and drop) when no request can be told.
 */
export function parseLine(
  bytes: Buffer,
): { message: JSONRPCMessage } | { refused: JSONRPCMessage } | { error: Error } | undefined {
  const text = bytes.toString("utf8").replace(/\r$/, "");
  if (text.trim() === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return refuse(text, (error as Error).message);
  }
  const checked = JSONRPCMessageSchema.safeParse(parsed);
  if (checked.success) return { message: checked.data };
  const { id, method, result } = (parsed ?? {}) as {
    id?: unknown;
    method?: unknown;
    result?: unknown;
  };
  const reason =
    result !== undefined && (typeof result !== "object" || result === null || Array.isArray(result))
      ? "its result is not an object"
      : "not a request, notification, result or error";
  if ((typeof id === "number" || typeof id === "string") && method === undefined) {
    return { refused: refusalMessage(id, malformed(reason)) };
  }
  return { error: new Error(`dropped a message that is not valid JSON-RPC (${reason})`) };
}

function refuse(text: string, reason: string): { refused: JSONRPCMessage } | { error: Error } {
  const id = recoverId(text.slice(0, KEPT_BYTES), text.slice(-KEPT_BYTES));
  if (id !== undefined) return { refused: refusalMessage(id, malformed(reason)) };
  return { error: new Error(`dropped a line that is not JSON (${reason}) and answers no request`) };
}

/** What an oversized line becomes: a refusal for the request it answers, or an Error. */
export function oversizedLine(
  bytes: number,
  limit: number,
  head: Buffer,
  tail: Buffer,
  fallbackId?: RequestId,
): { refused: JSONRPCMessage } | { error: Error } {
  const headText = head.toString("utf8");
  const id = ASKS.test(headText)
    ? undefined
    : (recoverId(headText, tail.toString("utf8")) ?? fallbackId);
  if (id !== undefined) return { refused: refusalMessage(id, tooLarge(bytes, limit)) };
  return {
    error: new Error(
      `dropped a ${bytes}-byte message, over the ${limit}-byte limit (TOOL_RESULT_MAX_BYTES), that answers no request`,
    ),
  };
}

/**
 * Makes a stdio transport read its server's stdout through a capped line splitter. The SDK's
 * own buffer holds a line whole and, past its size limit, closes the transport (killing the
 * server and every call on it); its data handler only appends chunks to `_readBuffer` and drains
 * it with `readMessage()` (an Error thrown there goes to `onerror`), so a buffer of ours with
 * that shape slots in.
 */
export function boundStdioReads(transport: StdioClientTransport, maxBytes: number): void {
  const slot = transport as unknown as { _readBuffer?: unknown };
  if (typeof (slot._readBuffer as { readMessage?: unknown })?.readMessage !== "function") {
    throw new Error(
      "the MCP SDK's StdioClientTransport no longer reads through _readBuffer: update bounded-reads.ts for this SDK version",
    );
  }
  slot._readBuffer = createBoundedReadBuffer(maxBytes);
}

/** What a stdio transport reads its server's output through: the SDK ReadBuffer's shape. */
export interface MessageReadBuffer {
  append(chunk: Buffer): void;
  /** The next message, null for none yet; throws the error a refused line gives its request. */
  readMessage(): JSONRPCMessage | null;
  clear(): void;
}

/**
 * A drop-in for the SDK's ReadBuffer that holds at most `maxBytes` of a line: a longer line is
 * discarded as it arrives and fails only the request whose id its ends carry.
 */
export function createBoundedReadBuffer(maxBytes: number): MessageReadBuffer {
  const queue: Array<JSONRPCMessage | Error> = [];
  const splitter = new LineSplitter(maxBytes, {
    line(bytes) {
      const parsed = parseLine(bytes);
      if (parsed === undefined) return;
      if ("message" in parsed) queue.push(parsed.message);
      else if ("refused" in parsed) queue.push(parsed.refused);
      else queue.push(parsed.error);
    },
    oversized(bytes, head, tail) {
      const result = oversizedLine(bytes, maxBytes, head, tail);
      queue.push("refused" in result ? result.refused : result.error);
    },
  });
  return {
    append: (chunk: Buffer) => splitter.push(chunk),
    readMessage(): JSONRPCMessage | null {
      const next = queue.shift();
      if (next === undefined) return null;
      if (next instanceof Error) throw next;
      return next;
    },
    clear() {
      queue.length = 0;
      splitter.reset();
    },
  };
}

/**
 * A `fetch` for the HTTP transports that caps every message in a response: a JSON body over
 * `maxBytes` is not handed on (the SDK is told 202, no body) and an event-stream line over it is
 * dropped; either way the request it answers gets a refusal through `deliver`. The POST's own
 * request id answers for a message whose id cannot be read.
 */
export function boundedFetch(
  maxBytes: number,
  deliver: () => Transport["onmessage"],
  report: (error: Error) => void,
): typeof fetch {
  const refuse = (result: { refused: JSONRPCMessage } | { error: Error }) => {
    if ("refused" in result) deliver()?.(result.refused);
    else report(result.error);
  };
  return async (input, init) => {
    const response = await fetch(input, init);
    const body = response.body;
    if (body === null || !response.ok) return response;
    const requestId = idOfBody(init?.body);
    const type = response.headers.get("content-type") ?? "";
    if (type.includes("text/event-stream")) {
      const splitter = new LineSplitter(maxBytes, {
        line: (bytes) => out?.enqueue(Buffer.concat([bytes, NEWLINE])),
        oversized: (bytes, head, tail) => {
          const data = head.toString("utf8").replace(/^data:\s?/, "");
          refuse(oversizedLine(bytes, maxBytes, Buffer.from(data), tail, requestId));
        },
      });
      let out: TransformStreamDefaultController<Uint8Array> | undefined;
      const capped = body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          start(controller) {
            out = controller;
          },
          transform(chunk) {
            splitter.push(chunk);
          },
        }),
      );
      return new Response(capped, {
        status: response.status,
        statusText: response.statusText,
        headers: response.headers,
      });
    }
    // A JSON body is read whole by the SDK anyway: hold at most the cap of it here first, and
    // past the cap stop reading (the answer's size is then known only as "more than").
    const declared = Number(response.headers.get("content-length") ?? Number.NaN);
    const kept: Uint8Array[] = [];
    let size = 0;
    const reader = body.getReader();
    while (!(declared > maxBytes)) {
      const { done, value } = await reader.read();
      if (done) {
        return new Response(Buffer.concat(kept), {
          status: response.status,
          statusText: response.statusText,
          headers: response.headers,
        });
      }
      size += value.byteLength;
      if (size > maxBytes) break;
      kept.push(value);
    }
    kept.length = 0;
    await reader.cancel().catch(() => {});
    // The body (a JSON-RPC response) answers the POST: its id is the one to fail.
    const refusal =
      declared > maxBytes ? tooLarge(declared, maxBytes) : tooLarge(size, maxBytes, "more than ");
    if (requestId === undefined) report(new Error(refusal.message));
    else deliver()?.(refusalMessage(requestId, refusal));
    return new Response(null, { status: 202, headers: response.headers });
  };
}

const NEWLINE = Buffer.from("\n");

function idOfBody(body: unknown): RequestId | undefined {
  if (typeof body !== "string") return undefined;
  try {
    const id = (JSON.parse(body) as { id?: unknown }).id;
    return typeof id === "number" || typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}
