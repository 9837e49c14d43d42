// A small MCP server (stdio) for tests that need control over what a server does.
//
//   node packages/bindings/test/servers/control-server.ts
//
// Environment (all optional):
//   COUNT_FILE     append one JSON line {tool, args, idempotencyKey, pid, at} per tools/call
//                  execution (`at`: epoch ms), written synchronously when the execution starts,
//                  so a test can count and order executions from outside even after killing the
//                  processes involved.
//   PAGE_SIZE      tools/list returns at most this many tools per page (exercises nextCursor).
//   FAIL_ON_START  write this text to stderr and exit 1 before speaking MCP. (Env values are
//                  secrets, so Turtle quotes this one as [redacted]; the argument
//                  --fail-on-start=<text> does the same and is quoted as it is.)
//   START_DELAY_MS wait this long before speaking MCP (a slow start-up).
//   START_FILE     append this process's pid, one line, when it starts (to count starts).
//   HANG_ON_START  never answer `initialize` (a server stuck at start-up); the process stays up.
//   EXTRA_TOOLS    also list this many generated tools `extra_<n>` (a large catalog); each
//                  answers like `echo`.
//
// Tools:
//   noop {}                     → no content (a pool returns null)
//   echo {...any}               → the arguments, as structuredContent and as JSON text
//   count {}                    → {idempotencyKey, executions}: how many times `count` ran with this
//                                 idempotency key (params._meta["io.turtle/idempotency-key"]);
//                                 without a key, how many times it ran without one
//   stats {}                    → {pid, executions, byTool, byIdempotencyKey, listRequests}
//   say {text}                  → `text` as its only text content (no structuredContent)
//   sleep {ms}                  → waits ms (stops early when the call is cancelled), then {slept}
//   gate {path}                 → waits until a file exists at path (stops early when the call is
//                                 cancelled), then {opened}: a call held open until a test says so
//   fail {message}              → isError result with that message
//   add_tool {name}             → adds a tool `name` (returns {tool: name}), sends list_changed
//   remove_tool {name}          → removes a tool added with add_tool, sends list_changed
//   exit {code?, stderr?}       → writes stderr (if given) and exits without answering
//   big {bytes, raw?}           → a text answer of `bytes` bytes. With raw: true the answer's line
//                                 is written straight to stdout 1 MB at a time (never held whole,
//                                 so it can be 300 MB), id last as SDK servers write it
//   malformed {kind}            → writes an answer line that is not valid JSON-RPC, then never
//                                 answers: "json" (broken JSON, id last), "shape" (valid JSON,
//                                 result not an object) or "noid" (garbage with no id)
// An unknown tool name is answered with a JSON-RPC error (InvalidParams), not an isError result.
import { appendFileSync, existsSync } from "node:fs";
import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";

const IDEMPOTENCY_META_KEY = "io.turtle/idempotency-key";

const failOnStart =
  process.env.FAIL_ON_START ||
  process.argv.find((arg) => arg.startsWith("--fail-on-start="))?.slice("--fail-on-start=".length);
if (failOnStart) {
  process.stderr.write(`${failOnStart}\n`);
  process.exit(1);
}

if (process.env.START_FILE) appendFileSync(process.env.START_FILE, `${process.pid}\n`);
const startDelayMs = Number(process.env.START_DELAY_MS) || 0;
if (startDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, startDelayMs));

if (process.env.HANG_ON_START) {
  // Reads stdin (so the client's writes succeed) but never speaks MCP.
  process.stdin.resume();
  setInterval(() => {}, 60_000);
  await new Promise(() => {});
}

const countFile = process.env.COUNT_FILE;
const pageSize = Number(process.env.PAGE_SIZE) || Number.POSITIVE_INFINITY;

const noInput = { type: "object", properties: {} } as const;
const builtinTools: Tool[] = [
  { name: "noop", description: "Does nothing.", inputSchema: noInput },
  {
    name: "echo",
    description: "Returns its arguments.",
    inputSchema: { type: "object", additionalProperties: true },
  },
  {
    name: "count",
    description: "Counts executions per idempotency key.",
    inputSchema: noInput,
    outputSchema: {
      type: "object",
      properties: {
        idempotencyKey: { type: ["string", "null"] },
        executions: { type: "integer" },
      },
      required: ["idempotencyKey", "executions"],
    },
  },
  { name: "stats", description: "Execution statistics of this process.", inputSchema: noInput },
  {
    name: "say",
    description: "Returns its `text` argument as its only text content.",
    inputSchema: { type: "object", properties: { text: { type: "string" } } },
  },
  {
    name: "sleep",
    description: "Waits, then answers.",
    inputSchema: {
      type: "object",
      properties: { ms: { type: "number", description: "Milliseconds to wait" } },
      required: ["ms"],
    },
  },
  {
    name: "fail",
    description: "Always fails with the given message.",
    inputSchema: {
      type: "object",
      properties: { message: { type: "string" } },
      required: ["message"],
    },
  },
  {
    name: "add_tool",
    description: "Adds a tool and announces tools/list_changed.",
    inputSchema: {
      type: "object",
      properties: { name: { type: "string" } },
      required: ["name"],
    },
  },
  {
    name: "remove_tool",
    description: "Removes an added tool and announces tools/list_changed.",
    inputSchema: {
      type: "object",
      properties: { name: { type: "string" } },
      required: ["name"],
    },
  },
  {
    name: "big",
    description: "Answers with a text of the given size.",
    inputSchema: {
      type: "object",
      properties: { bytes: { type: "integer" }, raw: { type: "boolean" } },
      required: ["bytes"],
    },
  },
  {
    name: "malformed",
    description: "Answers with a line that is not valid JSON-RPC.",
    inputSchema: {
      type: "object",
      properties: { kind: { type: "string", enum: ["json", "shape", "noid"] } },
      required: ["kind"],
    },
  },
  {
    name: "exit",
    description: "Exits the process without answering.",
    inputSchema: {
      type: "object",
      properties: { code: { type: "integer" }, stderr: { type: "string" } },
    },
  },
  {
    name: "gate",
    description: "Waits until a file exists, then answers.",
    inputSchema: {
      type: "object",
      properties: { path: { type: "string", description: "The file to wait for" } },
      required: ["path"],
    },
  },
];
const extraTools: Tool[] = Array.from({ length: Number(process.env.EXTRA_TOOLS) || 0 }, (_, n) => ({
  name: `extra_${n}`,
  description: `Generated tool number ${n} of a large catalog: returns its arguments.`,
  inputSchema: {
    type: "object",
    properties: { id: { type: "string", description: "Which record" }, limit: { type: "integer" } },
    required: ["id"],
  },
}));
// With ANNOTATED_TOOLS=1, two tools that say what they do (for tool policies).
if (process.env.ANNOTATED_TOOLS === "1") {
  const record: Tool["inputSchema"] = {
    type: "object",
    properties: { id: { type: "string" } },
    required: ["id"],
  };
  extraTools.push(
    {
      name: "read_record",
      description: "Reads a record: returns its arguments.",
      inputSchema: record,
      annotations: { readOnlyHint: true },
    },
    {
      name: "delete_record",
      description: "Deletes a record: returns its arguments.",
      inputSchema: record,
      annotations: { destructiveHint: true },
    },
  );
}
const addedTools = new Map<string, Tool>();

const byTool: Record<string, number> = {};
const byIdempotencyKey: Record<string, number> = {};
let countsWithoutKey = 0;
let executions = 0;
let listRequests = 0;

const server = new Server(
  { name: "turtle-control", version: "1.0.0" },
  { capabilities: { tools: { listChanged: true } } },
);

server.setRequestHandler(ListToolsRequestSchema, (request) => {
  listRequests++;
  const all = [...builtinTools, ...extraTools, ...addedTools.values()];
  const start = Number(request.params?.cursor ?? 0);
  const end = Math.min(start + pageSize, all.length);
  return {
    tools: all.slice(start, end),
    ...(end < all.length ? { nextCursor: String(end) } : {}),
  };
});

server.setRequestHandler(CallToolRequestSchema, async (request, extra): Promise<CallToolResult> => {
  const { name } = request.params;
  const args = request.params.arguments ?? {};
  const rawKey = request.params._meta?.[IDEMPOTENCY_META_KEY];
  const idempotencyKey = typeof rawKey === "string" ? rawKey : null;
  const isBuiltin = builtinTools.some((tool) => tool.name === name);
  const isExtra = extraTools.some((tool) => tool.name === name);
  if (!isBuiltin && !isExtra && !addedTools.has(name)) {
    throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${name}`);
  }

  executions++;
  byTool[name] = (byTool[name] ?? 0) + 1;
  if (countFile) {
    const line = { tool: name, args, idempotencyKey, pid: process.pid, at: Date.now() };
    appendFileSync(countFile, `${JSON.stringify(line)}\n`);
  }

  if (isExtra) return structured(args);
  switch (name) {
    case "noop":
      return { content: [] };
    case "echo":
      return structured(args);
    case "say":
      return { content: [{ type: "text", text: String(args.text) }] };
    case "count": {
      let count: number;
      if (idempotencyKey === null) {
        count = ++countsWithoutKey;
      } else {
        count = (byIdempotencyKey[idempotencyKey] ?? 0) + 1;
        byIdempotencyKey[idempotencyKey] = count;
      }
      return structured({ idempotencyKey, executions: count });
    }
    case "stats":
      return structured({ pid: process.pid, executions, byTool, byIdempotencyKey, listRequests });
    case "sleep": {
      const ms = Number(args.ms) || 0;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        extra.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        });
      });
      return structured({ slept: ms });
    }
    case "gate": {
      const path = String(args.path);
      await new Promise<void>((resolve) => {
        const timer = setInterval(() => {
          if (existsSync(path)) done();
        }, 20);
        const done = () => {
          clearInterval(timer);
          resolve();
        };
        extra.signal.addEventListener("abort", done);
      });
      return structured({ opened: path });
    }
    case "fail":
      return { content: [{ type: "text", text: String(args.message) }], isError: true };
    case "add_tool": {
      const added = String(args.name);
      addedTools.set(added, {
        name: added,
        description: "Added at runtime.",
        inputSchema: noInput,
      });
      await server.sendToolListChanged();
      return structured({ added });
    }
    case "remove_tool": {
      const removed = String(args.name);
      addedTools.delete(removed);
      await server.sendToolListChanged();
      return structured({ removed });
    }
    case "big": {
      const bytes = Number(args.bytes) || 0;
      if (args.raw !== true) return { content: [{ type: "text", text: "x".repeat(bytes) }] };
      // Synchronous writes (stdout is a pipe): nothing else can write between the pieces.
      process.stdout.write('{"result":{"content":[{"type":"text","text":"');
      const piece = "x".repeat(1024 * 1024);
      for (let left = bytes; left > 0; left -= piece.length) {
        process.stdout.write(left >= piece.length ? piece : piece.slice(0, left));
      }
      process.stdout.write(`"}]},"jsonrpc":"2.0","id":${JSON.stringify(extra.requestId)}}\n`);
      return await never(extra.signal);
    }
    case "malformed": {
      const id = JSON.stringify(extra.requestId);
      const line =
        args.kind === "json"
          ? `{"result":{"content":[{"type":"text","text":"half"}],"jsonrpc":"2.0","id":${id}}`
          : args.kind === "shape"
            ? `{"result":"not an object","jsonrpc":"2.0","id":${id}}`
            : "this is not JSON";
      process.stdout.write(`${line}\n`);
      return await never(extra.signal);
    }
    case "exit":
      if (typeof args.stderr === "string") process.stderr.write(`${args.stderr}\n`);
      process.exit(typeof args.code === "number" ? args.code : 1);
      break;
  }
  return structured({ tool: name });
});

/** Holds a call that was answered by hand, so the SDK writes no second answer for it. */
function never(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener("abort", () => reject(signal.reason)));
}

function structured(value: Record<string, unknown>): CallToolResult {
  return { content: [{ type: "text", text: JSON.stringify(value) }], structuredContent: value };
}

await server.connect(new StdioServerTransport());
// Leave when the client hangs up, even with a `sleep` pending, so closing a pool is quick.
process.stdin.on("end", () => process.exit(0));
