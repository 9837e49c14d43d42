// The pool against real servers over stdio: server-everything, server-memory, and our control
// server where a test needs to make a server misbehave.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  CONTROL_SERVER,
  controlServer,
  EVERYTHING_SERVER,
  eventually,
  isAlive,
  MEMORY_SERVER,
  nodeServer,
  rejection,
  SLOW,
  tempDir,
  UNCONFINED_POOL,
} from "@turtle/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type ClientPool,
  type ClientPoolOptions,
  createClientPool,
  createToolHost,
  IDEMPOTENCY_META_KEY,
  REDACTED,
  ServerUnavailableError,
  setProcessSecrets,
  ToolError,
} from "../src/index.ts";

interface Stats {
  pid: number;
  executions: number;
  byTool: Record<string, number>;
  listRequests: number;
}

const pools: ClientPool[] = [];
/** A pool closed after all tests of the file, however they end. */
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

const dir = tempDir();
afterAll(() => dir.remove());

describe("server-everything over stdio", { timeout: SLOW }, () => {
  let everything: ClientPool;
  beforeAll(() => {
    process.env.TURTLE_TEST_SECRET = "must-not-leak";
    everything = pool({
      everything: { ...nodeServer(EVERYTHING_SERVER, ["stdio"]), env: { TURTLE_FLAVOR: "green" } },
    });
  });

  it("lists its tools and calls them, unwrapping each kind of result", async () => {
    const tools = await everything.listTools("everything");
    expect(tools.map((tool) => tool.name)).toEqual(
      expect.arrayContaining(["echo", "get-sum", "get-structured-content", "get-tiny-image"]),
    );
    expect(everything.serverNames()).toEqual(["everything"]);

    // Text that is not JSON comes back as text.
    expect(await everything.callTool("everything", "echo", { message: "hi" })).toBe("Echo: hi");
    // structuredContent wins over the text block.
    expect(
      await everything.callTool("everything", "get-structured-content", { location: "Chicago" }),
    ).toEqual({ temperature: 36, conditions: "Light rain / drizzle", humidity: 82 });
    // Non-text content is returned as the content array.
    const image = (await everything.callTool("everything", "get-tiny-image", {})) as Array<{
      type: string;
    }>;
    expect(image.map((block) => block.type)).toContain("image");
  });

  it("throws ToolError for a call the tool rejects", async () => {
    const error = await rejection(everything.callTool("everything", "get-sum", { a: "one" }));
    expect(error).toBeInstanceOf(ToolError);
    expect(error).toMatchObject({
      name: "ToolError",
      code: "tool_error",
      server: "everything",
      tool: "get-sum",
    });
    expect(error.message).toMatch(/Input validation error/);
  });

  it("gives the server the safe default environment plus its configured env", async () => {
    const env = (await everything.callTool("everything", "get-env", {})) as Record<string, string>;
    expect(env.TURTLE_FLAVOR).toBe("green");
    expect(env.PATH).toBe(process.env.PATH);
    expect(env.TURTLE_TEST_SECRET).toBeUndefined();
  });
});

describe("server-memory", { timeout: SLOW }, () => {
  it("keeps state across calls", async () => {
    const memory = pool({
      memory: nodeServer(MEMORY_SERVER, [], { MEMORY_FILE_PATH: join(dir.path, "memory.jsonl") }),
    });
    const entities = [
      { name: "Turtle", entityType: "project", observations: ["runs programs in isolates"] },
      { name: "Redis", entityType: "service", observations: ["holds the queue"] },
    ];
    expect(await memory.callTool("memory", "create_entities", { entities })).toEqual({ entities });
    await memory.callTool("memory", "create_relations", {
      relations: [{ from: "Turtle", to: "Redis", relationType: "queues jobs in" }],
    });
    const graph = (await memory.callTool("memory", "open_nodes", { names: ["Turtle"] })) as {
      entities: Array<{ name: string; observations: string[] }>;
    };
    expect(graph.entities).toEqual([expect.objectContaining(entities[0])]);
    const all = (await memory.callTool("memory", "read_graph", {})) as {
      relations: unknown[];
    };
    expect(all.relations).toEqual([
      expect.objectContaining({ from: "Turtle", to: "Redis", relationType: "queues jobs in" }),
    ]);
  });
});

describe("control server", { timeout: SLOW }, () => {
  it("shares one connect among concurrent first callers", async () => {
    const control = pool({ control: controlServer() });
    const results = (await Promise.all(
      Array.from({ length: 8 }, () => control.callTool("control", "stats", {})),
    )) as Stats[];
    expect(new Set(results.map((stats) => stats.pid)).size).toBe(1);
  });

  it("follows nextCursor through every tools/list page and caches the result", async () => {
    const control = pool({ control: controlServer({ PAGE_SIZE: "2" }) });
    const tools = await control.listTools("control");
    expect(tools.map((tool) => tool.name)).toEqual([
      "noop",
      "echo",
      "count",
      "stats",
      "say",
      "sleep",
      "fail",
      "add_tool",
      "remove_tool",
      "big",
      "malformed",
      "exit",
      "gate",
    ]);
    expect(await control.listTools("control")).toBe(tools);
    const stats = (await control.callTool("control", "stats", {})) as Stats;
    expect(stats.listRequests).toBe(7); // 13 tools, 2 a page
  });

  it("drops the cached tool list when the server sends tools/list_changed", async () => {
    const changed: string[] = [];
    const control = pool(
      { control: controlServer() },
      { onToolListChanged: (server) => changed.push(server) },
    );
    const before = await control.listTools("control");
    expect(before.map((tool) => tool.name)).not.toContain("extra");

    // The server sends list_changed before it answers, so it has arrived when the call returns.
    await control.callTool("control", "add_tool", { name: "extra" });
    expect(changed).toEqual(["control"]);
    expect((await control.listTools("control")).map((tool) => tool.name)).toContain("extra");
    expect(await control.callTool("control", "extra", {})).toEqual({ tool: "extra" });

    await control.callTool("control", "remove_tool", { name: "extra" });
    expect((await control.listTools("control")).map((tool) => tool.name)).not.toContain("extra");
  });

  it("sends the idempotency key in params._meta", async () => {
    const countFile = join(dir.path, "executions.jsonl");
    const control = pool({ control: controlServer({ COUNT_FILE: countFile }) });
    expect(IDEMPOTENCY_META_KEY).toBe("io.turtle/idempotency-key");

    const key = "job-7:step-3";
    expect(await control.callTool("control", "count", {}, { idempotencyKey: key })).toEqual({
      idempotencyKey: key,
      executions: 1,
    });
    expect(await control.callTool("control", "count", {}, { idempotencyKey: key })).toEqual({
      idempotencyKey: key,
      executions: 2,
    });
    expect(await control.callTool("control", "count", {})).toEqual({
      idempotencyKey: null,
      executions: 1,
    });

    const lines = readFileSync(countFile, "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(lines.map(({ tool, args, idempotencyKey }) => ({ tool, args, idempotencyKey }))).toEqual(
      [
        { tool: "count", args: {}, idempotencyKey: key },
        { tool: "count", args: {}, idempotencyKey: key },
        { tool: "count", args: {}, idempotencyKey: null },
      ],
    );
  });

  it("unwraps empty content to null and echoes structured arguments", async () => {
    const control = pool({ control: controlServer() });
    expect(await control.callTool("control", "noop", {})).toBeNull();
    const args = { text: "x", list: [1, 2], nested: { ok: true } };
    expect(await control.callTool("control", "echo", args)).toEqual(args);
  });

  it("throws ToolError for isError results and for JSON-RPC errors", async () => {
    const control = pool({ control: controlServer() });
    const failed = await rejection(control.callTool("control", "fail", { message: "disk full" }));
    expect(failed).toBeInstanceOf(ToolError);
    expect(failed).toMatchObject({
      message: "disk full",
      server: "control",
      tool: "fail",
      rpcCode: undefined,
    });

    const unknown = await rejection(control.callTool("control", "no_such_tool", {}));
    expect(unknown).toBeInstanceOf(ToolError);
    expect(unknown).toMatchObject({
      message: "Unknown tool: no_such_tool (JSON-RPC error -32602)",
      tool: "no_such_tool",
      rpcCode: -32602,
    });
  });

  it("turns a call timeout into a ToolError and an abort into the signal's reason", async () => {
    const control = pool({ control: controlServer() });
    const timedOut = await rejection(
      control.callTool("control", "sleep", { ms: 600_000 }, { timeoutMs: 200 }),
    );
    expect(timedOut).toBeInstanceOf(ToolError);
    expect(timedOut.message).toBe("timed out after 200 ms");

    const controller = new AbortController();
    const call = control.callTool(
      "control",
      "sleep",
      { ms: 600_000 },
      {
        signal: controller.signal,
      },
    );
    const reason = new Error("job cancelled");
    controller.abort(reason);
    expect(await rejection(call)).toBe(reason);

    // The session survives both.
    expect(await control.callTool("control", "noop", {})).toBeNull();
  });

  it("fails a call in flight when the process dies, then reconnects", async () => {
    const countFile = join(dir.path, "reconnect.jsonl");
    const control = pool({ control: controlServer({ COUNT_FILE: countFile }) });
    const { pid } = (await control.callTool("control", "stats", {})) as Stats;

    const inFlight = rejection(control.callTool("control", "sleep", { ms: 600_000 }));
    await eventually("the sleep call to start", () =>
      readFileSync(countFile, "utf8").includes('"sleep"') ? true : undefined,
    );
    process.kill(pid, "SIGKILL");
    const error = await inFlight;
    expect(error).toBeInstanceOf(ServerUnavailableError);
    expect(error).toMatchObject({ code: "server_unavailable", server: "control" });
    expect(error.message).toBe('MCP server "control" exited');

    const after = (await control.callTool("control", "stats", {})) as Stats;
    expect(after.pid).not.toBe(pid);
    expect(after.executions).toBe(1);
  });

  it("quotes the server's last stderr line when it crashes", async () => {
    const control = pool({ control: controlServer() });
    const error = await rejection(
      control.callTool("control", "exit", {
        stderr: "Error: out of coffee\n    at brew (x.js:1:1)",
      }),
    );
    expect(error).toBeInstanceOf(ServerUnavailableError);
    expect(error.message).toBe('MCP server "control" exited: Error: out of coffee');
    expect((error as ServerUnavailableError).stderr).toContain("at brew (x.js:1:1)");
  });

  it("never quotes a secret env value the server printed", async () => {
    const control = pool({
      control: { ...controlServer(), env: { GITHUB_TOKEN: "ghp_hunter2hunter2" } },
    });
    const error = await rejection(
      control.callTool("control", "exit", { stderr: "auth failed for ghp_hunter2hunter2" }),
    );
    expect(error.message).toBe('MCP server "control" exited: auth failed for [redacted]');
    expect((error as ServerUnavailableError).stderr).not.toContain("hunter2");
  });

  it("never quotes a secret the stderr tail's cut went through", async () => {
    const secret = "ghp_hunter2hunter2hunter2";
    const control = pool({ control: { ...controlServer(), env: { GITHUB_TOKEN: secret } } });
    // The server writes the secret, a line end and 8 KiB - 12 bytes more: the last 8 KiB start
    // 10 characters before the secret's end ("2hunter2").
    const error = await rejection(
      control.callTool("control", "exit", { stderr: `${secret}\n${"x".repeat(8 * 1024 - 13)}` }),
    );
    expect(error).toBeInstanceOf(ServerUnavailableError);
    expect((error as ServerUnavailableError).stderr).toMatch(/x{1000}/);
    expect((error as ServerUnavailableError).stderr).not.toMatch(/hunter|unter2|ter2/);
  });

  it("never returns Turtle's own secrets written with JSON escapes", async () => {
    setProcessSecrets(["db-password-of-the-pool-test"]);
    try {
      const control = pool({ control: controlServer() });
      // JSON escapes: the tool's text is parsed as JSON, which turns them into the secret.
      const escaped = await control.callTool("control", "say", {
        text: '{"url":"\\u0064b-password-of-the-pool-test"}',
      });
      expect(escaped).toEqual({ url: REDACTED });
    } finally {
      setProcessSecrets([]);
    }
  });

  it("never returns Turtle's own secrets nested deeper than redaction walks", async () => {
    setProcessSecrets(["db-password-of-the-pool-test"]);
    try {
      const control = pool({ control: controlServer() });
      // Replaced whole, unread.
      let deep: Record<string, unknown> = { at: "db-password-of-the-pool-test" };
      for (let i = 0; i < 80; i++) deep = { deeper: deep };
      const echoed = await control.callTool("control", "echo", deep);
      expect(JSON.stringify(echoed)).not.toContain("db-password");
      expect(JSON.stringify(echoed)).toContain(REDACTED);
    } finally {
      setProcessSecrets([]);
    }
  });

  it("bounds concurrent connects without starving anyone", async () => {
    const servers = { a: controlServer(), b: controlServer(), c: controlServer() };
    const control = pool(servers, { maxConcurrentConnects: 1 });
    const pids = (await Promise.all(
      control.serverNames().map((name) => control.callTool(name, "stats", {})),
    )) as Stats[];
    expect(new Set(pids.map((stats) => stats.pid)).size).toBe(3);
  });
});

describe("startup failures", { timeout: SLOW }, () => {
  it("names the server and the reason in one line", async () => {
    const broken = pool({
      missing: { command: "./definitely-not-here", cwd: dir.path },
      crashing: nodeServer(CONTROL_SERVER, ["--fail-on-start=fatal: config missing"]),
      silent: { command: process.execPath, args: ["-e", "process.exit(3)"] },
    });

    const missing = await rejection(broken.listTools("missing"));
    expect(missing).toBeInstanceOf(ServerUnavailableError);
    expect(missing.message).toBe(
      'MCP server "missing" could not start: spawn ./definitely-not-here ENOENT',
    );
    expect((await rejection(broken.callTool("crashing", "noop", {}))).message).toBe(
      'MCP server "crashing" exited during startup: fatal: config missing',
    );
    expect((await rejection(broken.listTools("silent"))).message).toBe(
      'MCP server "silent" exited during startup without writing to stderr',
    );
    const hanging = pool(
      { hanging: { command: process.execPath, args: ["-e", "setInterval(() => {}, 1000)"] } },
      { connectTimeoutMs: 1_000 },
    );
    expect((await rejection(hanging.listTools("hanging"))).message).toBe(
      'MCP server "hanging" did not finish initializing within 1000 ms',
    );
    const unknown = await rejection(broken.callTool("nope", "x", {}));
    expect(unknown).toBeInstanceOf(ServerUnavailableError);
    expect(unknown.message).toBe('no MCP server named "nope" is configured');
  });
});

describe("close", { timeout: SLOW }, () => {
  it("stops spawned servers, fails calls in flight and every later call", async () => {
    const control = createClientPool({ control: controlServer() }, UNCONFINED_POOL);
    const { pid } = (await control.callTool("control", "stats", {})) as Stats;
    const inFlight = rejection(control.callTool("control", "sleep", { ms: 600_000 }));

    await control.close();
    expect((await inFlight).message).toBe(
      'MCP server "control" is unavailable: the client pool is closed',
    );
    await eventually("the server process to exit", () => (isAlive(pid) ? undefined : true));

    const later = await rejection(control.callTool("control", "noop", {}));
    expect(later).toBeInstanceOf(ServerUnavailableError);
    expect(later.message).toBe('MCP server "control" is unavailable: the client pool is closed');
    await expect(control.listTools("control")).rejects.toThrow(/the client pool is closed/);
    await control.close();
  });
});

describe("createToolHost", { timeout: SLOW }, () => {
  it("routes namespace.method calls to the server's tool", async () => {
    const control = pool({ "my-control": controlServer() });
    const host = await createToolHost(control);
    expect(host.namespaces.my_control).toEqual(expect.arrayContaining(["noop", "add_tool"]));
    expect(await host.invoke({ namespace: "my_control", method: "echo", args: { a: 1 } })).toEqual({
      a: 1,
    });
    await expect(
      host.invoke({ namespace: "my_control", method: "missing", args: {} }),
    ).rejects.toThrow(ToolError);
    await expect(
      host.invoke({ namespace: "my_control", method: "echo", args: [1] }),
    ).rejects.toThrow("the tool's input must be an object");

    const subset = await createToolHost(control, { servers: [] });
    expect(subset.namespaces).toEqual({});
  });
});
