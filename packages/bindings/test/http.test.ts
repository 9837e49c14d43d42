// The pool over HTTP against server-everything started in its Streamable HTTP and SSE modes.
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import { Server as McpServer } from "@modelcontextprotocol/sdk/server/index.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { CallToolRequestSchema, ListToolsRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import {
  freePort,
  type HttpServer,
  rejection,
  SLOW,
  startEverythingHttp,
  UNCONFINED_POOL,
} from "@turtle/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ClientPool,
  type ClientPoolOptions,
  createClientPool,
  ServerUnavailableError,
  ToolError,
} from "../src/index.ts";

const pools: ClientPool[] = [];
function pool(
  servers: Parameters<typeof createClientPool>[0],
  options: Partial<ClientPoolOptions> = {},
): ClientPool {
  const created = createClientPool(servers, { ...UNCONFINED_POOL, ...options });
  pools.push(created);
  return created;
}
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

describe("Streamable HTTP", { timeout: SLOW }, () => {
  let server: HttpServer;
  beforeAll(async () => {
    server = await startEverythingHttp("streamableHttp");
  }, SLOW);
  afterAll(() => server?.stop());

  it("connects, lists tools and calls them", async () => {
    const http = pool({
      auto: { url: server.url("/mcp") },
      pinned: { url: server.url("/mcp"), type: "http" },
    });
    for (const name of ["auto", "pinned"]) {
      expect((await http.listTools(name)).map((tool) => tool.name)).toContain("echo");
      expect(await http.callTool(name, "echo", { message: name })).toBe(`Echo: ${name}`);
      expect(await http.callTool(name, "get-structured-content", { location: "New York" })).toEqual(
        { temperature: 33, conditions: "Cloudy", humidity: 82 },
      );
    }
  });

  it("fails a call in flight when the server dies, and says it is unreachable after", async () => {
    const doomed = await startEverythingHttp("streamableHttp");
    try {
      const http = pool({ api: { url: doomed.url("/mcp") } });
      await http.listTools("api");
      const inFlight = rejection(
        http.callTool("api", "trigger-long-running-operation", { duration: 600, steps: 600 }),
      );
      await doomed.stop();
      const error = await inFlight;
      expect(error).toBeInstanceOf(ServerUnavailableError);
      expect(error.message).toMatch(/^MCP server "api" at http:\/\/127\.0\.0\.1:\d+\/mcp /);

      const next = await rejection(http.callTool("api", "echo", { message: "x" }));
      expect(next.message).toBe(
        `MCP server "api" at ${doomed.url("/mcp")} is unreachable: ECONNREFUSED`,
      );
    } finally {
      await doomed.stop();
    }
  });
});

describe("SSE", { timeout: SLOW }, () => {
  let server: HttpServer;
  beforeAll(async () => {
    server = await startEverythingHttp("sse");
  }, SLOW);
  afterAll(() => server?.stop());

  it("falls back to SSE when the Streamable HTTP POST gets a 4xx", async () => {
    const sse = pool({ legacy: { url: server.url("/sse") } });
    expect((await sse.listTools("legacy")).map((tool) => tool.name)).toContain("echo");
    expect(await sse.callTool("legacy", "echo", { message: "old" })).toBe("Echo: old");
  });

  it("uses SSE directly when the config pins it", async () => {
    const sse = pool({ legacy: { url: server.url("/sse"), type: "sse" } });
    expect(await sse.callTool("legacy", "get-sum", { a: 2, b: 3 })).toBe(
      "The sum of 2 and 3 is 5.",
    );
  });

  it("does not fall back when the config pins Streamable HTTP", async () => {
    const pinned = pool({ legacy: { url: server.url("/sse"), type: "streamable-http" } });
    const error = await rejection(pinned.listTools("legacy"));
    expect(error).toBeInstanceOf(ServerUnavailableError);
    expect(error.message).toBe(
      `MCP server "legacy" at ${server.url("/sse")} answered HTTP 404: Error POSTing to endpoint: Error Cannot POST /sse`,
    );
  });
});

describe("HTTP failures", { timeout: SLOW }, () => {
  let recorder: Server;
  let recorderUrl: string;
  const seen: IncomingHttpHeaders[] = [];
  beforeAll(async () => {
    // A plain HTTP server that refuses everyone, to see what the pool sends and reports.
    recorder = createServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(401, { "content-type": "text/plain" }).end("bad token");
    });
    await new Promise<void>((resolve) => recorder.listen(0, "127.0.0.1", resolve));
    const address = recorder.address();
    recorderUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}/mcp`;
  });
  afterAll(() => new Promise<void>((resolve) => recorder.close(() => resolve())));

  it("sends the configured headers and reports the HTTP status", async () => {
    const api = pool({
      api: { url: recorderUrl, type: "http", headers: { Authorization: "Bearer s3cret" } },
    });
    const error = await rejection(api.listTools("api"));
    expect(error.message).toBe(
      `MCP server "api" at ${recorderUrl} answered HTTP 401: Error POSTing to endpoint: bad token`,
    );
    expect(seen.at(-1)?.authorization).toBe("Bearer s3cret");
  });

  it("reports both attempts when the SSE fallback fails too", async () => {
    const api = pool({ api: { url: recorderUrl } });
    const error = await rejection(api.listTools("api"));
    expect(error.message).toBe(
      `MCP server "api" at ${recorderUrl} rejected Streamable HTTP (HTTP 401) and SSE failed: answered HTTP 401: Non-200 status code (401)`,
    );
  });

  it("says a server nobody listens on is unreachable", async () => {
    const url = `http://127.0.0.1:${await freePort()}/mcp`;
    const api = pool({ api: { url } });
    const error = await rejection(api.callTool("api", "echo", {}));
    expect(error).toBeInstanceOf(ServerUnavailableError);
    expect(error.message).toBe(`MCP server "api" at ${url} is unreachable: ECONNREFUSED`);
  });
});

/**
 * A stateless Streamable HTTP server with `echo`, `big {bytes}` (a text answer of that size) and
 * `broken` (a JSON body cut short), answering POSTs with JSON bodies or with event streams;
 * counts executions per tool.
 */
async function startBigServer(jsonResponse: boolean) {
  const executions: Record<string, number> = {};
  const http = createServer(async (req, res) => {
    const server = new McpServer(
      { name: "big", version: "1.0.0" },
      { capabilities: { tools: {} } },
    );
    server.setRequestHandler(ListToolsRequestSchema, () => ({
      tools: ["echo", "big", "broken"].map((name) => ({
        name,
        inputSchema: { type: "object" as const },
      })),
    }));
    server.setRequestHandler(CallToolRequestSchema, async (request) => {
      const { name, arguments: args = {} } = request.params;
      executions[name] = (executions[name] ?? 0) + 1;
      if (name === "big") {
        return { content: [{ type: "text", text: "x".repeat(Number(args.bytes)) }] };
      }
      // Slow enough for the neighbours to be in flight when the big answer arrives.
      await new Promise((resolve) => setTimeout(resolve, 300));
      return { content: [{ type: "text", text: JSON.stringify(args) }] };
    });
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: jsonResponse,
    });
    res.on("close", () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    // `broken` is answered by hand, with a body that is not JSON.
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = chunks.length > 0 ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
    if (body?.method === "tools/call" && body.params?.name === "broken") {
      executions.broken = (executions.broken ?? 0) + 1;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(`{"jsonrpc":"2.0","id":${JSON.stringify(body.id)},"result":`);
      return;
    }
    await transport.handleRequest(req, res, body);
  });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const address = http.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    executions,
    stop: () => {
      http.closeAllConnections();
      return new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

describe("a malformed answer over Streamable HTTP", { timeout: SLOW }, () => {
  it("fails only its own call, and the connection goes on", async () => {
    const server = await startBigServer(true);
    try {
      const http = pool({ broken: { url: server.url, type: "http" } });
      const neighbours = Array.from({ length: 10 }, (_, n) =>
        http.callTool("broken", "echo", { n }),
      );
      const error = await rejection(http.callTool("broken", "broken", {}));
      expect(error).toBeInstanceOf(ToolError);
      expect(error).toMatchObject({ code: "malformed_result", tool: "broken" });
      expect(error.message).toMatch(/not valid JSON-RPC \(.*JSON/);
      expect(await Promise.all(neighbours)).toEqual(Array.from({ length: 10 }, (_, n) => ({ n })));
      expect(http.isConnected("broken")).toBe(true);
      expect(server.executions).toEqual({ echo: 10, broken: 1 });
    } finally {
      await server.stop();
    }
  });
});

describe("a too large answer over Streamable HTTP", { timeout: SLOW }, () => {
  it.each([
    ["a JSON body", true],
    ["an event stream", false],
  ])("fails only its own call when it comes as %s", async (_, json) => {
    const server = await startBigServer(json);
    try {
      const http = pool(
        { big: { url: server.url, type: "http" } },
        { maxMessageBytes: 1024 * 1024 },
      );
      const neighbours = Array.from({ length: 10 }, (_, n) => http.callTool("big", "echo", { n }));
      const error = await rejection(http.callTool("big", "big", { bytes: 12 * 1024 * 1024 }));
      expect(error).toBeInstanceOf(ToolError);
      expect(error).toMatchObject({ code: "result_too_large", server: "big", tool: "big" });
      expect(error.message).toMatch(
        /answered with (more than )?\d+ bytes, over the 1048576-byte limit/,
      );
      expect(await Promise.all(neighbours)).toEqual(Array.from({ length: 10 }, (_, n) => ({ n })));
      expect(http.isConnected("big")).toBe(true);
      expect(await http.callTool("big", "echo", { after: true })).toEqual({ after: true });
      expect(server.executions).toEqual({ echo: 11, big: 1 });
    } finally {
      await server.stop();
    }
  });
});
