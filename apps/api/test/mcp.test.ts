// Turtle's MCP façade, as agents reach it: the official MCP SDK client over Streamable HTTP, the
// MCP Inspector's CLI as a third-party client, and `turtle mcp` over stdio — against a listening
// API, a real worker process and real MCP servers (our control server with a 520-tool catalog,
// and the reference "everything" server).
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import {
  CONTROL_SERVER,
  EVERYTHING_SERVER,
  fleetEnv,
  it,
  REPO_ROOT,
  type TestApi,
  type TestFleet,
} from "@turtle/test-support";
import { countTokens } from "gpt-tokenizer/encoding/o200k_base";
import { describe, expect } from "vitest";

let fleet: TestFleet;
let api: TestApi;
let dir: string;
let url: string;
let client: Client;

it.override("fleetOptions", {
  apiEnv: { MCP_WAIT_MS: "3000", MCP_RESULT_MAX_CHARS: "300", MCP_LOGS_MAX_CHARS: "200" },
  servers: () => [
    {
      name: "control",
      command: process.execPath,
      args: [CONTROL_SERVER],
      env: { EXTRA_TOOLS: "520" },
    },
    { name: "everything", command: process.execPath, args: [EVERYTHING_SERVER, "stdio"] },
  ],
});

it.beforeAll(async ({ fleet: started }) => {
  fleet = started;
  ({ api, dir } = fleet);
  url = `${fleet.base}/mcp`;
  client = await connect(api.key);
});

// Before the fleet fixture stops the fleet.
it.afterAll(async () => {
  await client?.close();
});

async function connect(key: string): Promise<Client> {
  const connected = new Client({ name: "turtle-test", version: "1.0.0" });
  await connected.connect(
    new StreamableHTTPClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
    }),
  );
  return connected;
}

async function call(name: string, args: Record<string, unknown>, via = client) {
  const result = (await via.callTool({ name, arguments: args })) as CallToolResult;
  const text = result.content.map((part) => (part.type === "text" ? part.text : "")).join("");
  return { text, isError: result.isError === true };
}

const jobIdOf = (text: string) => /job ([0-9a-f-]{36})/.exec(text)?.[1] ?? "";

describe("the façade's tool list", () => {
  it("offers search_tools, execute and get_job, naming the namespaces, not the tools", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name)).toEqual(["search_tools", "execute", "get_job"]);
    const execute = tools.find((tool) => tool.name === "execute");
    expect(execute?.description).toContain("Namespaces: control, everything.");
    expect(JSON.stringify(tools)).not.toContain("extra_1");
  });

  it("costs at most 1,100 tokens with 520+ tools registered", async () => {
    const listed = await api.call({ method: "GET", url: "/v1/servers/control/tools" });
    expect(listed.json().tools.length).toBeGreaterThanOrEqual(520);
    const { tools } = await client.listTools();
    const tokens = countTokens(JSON.stringify(tools));
    expect(tokens).toBeGreaterThan(300);
    expect(tokens).toBeLessThanOrEqual(1_100);
  });

  it("refuses a client without the API key", async () => {
    await expect(connect("not-a-key")).rejects.toThrow(/401|unauthorized/i);
    const response = await fetch(url, { method: "GET" });
    expect(response.status).toBe(401);
  });

  it("serves a client that accepts only JSON, as every answer is JSON", async () => {
    for (const accept of ["application/json", "*/*"]) {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          authorization: `Bearer ${api.key}`,
          "content-type": "application/json",
          accept,
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/list", params: {} }),
      });
      expect(response.status).toBe(200);
      const body = (await response.json()) as { result: { tools: Array<{ name: string }> } };
      expect(body.result.tools.map((tool) => tool.name)).toEqual([
        "search_tools",
        "execute",
        "get_job",
      ]);
    }
  });

  it("answers GET and DELETE with 405: the endpoint is stateless", async () => {
    for (const method of ["GET", "DELETE"]) {
      const response = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${api.key}` },
      });
      expect(response.status).toBe(405);
      const body = (await response.json()) as { error: { message: string } };
      expect(body.error.message).toMatch(/stateless/);
    }
  });
});

describe("search_tools", () => {
  it("ranks tools by name, description and parameters", async () => {
    const echo = await call("search_tools", { query: "echo back arguments", detail: "name" });
    expect(echo.isError).toBe(false);
    const lines = echo.text.split("\n");
    expect(lines[0]).toMatch(/^\d+ of \d+ tools for "echo back arguments", best first:$/);
    expect(lines.slice(1, 3)).toContain("control.echo");

    const sleep = await call("search_tools", { query: "wait milliseconds", limit: 3 });
    expect(sleep.text).toContain("control.sleep({ ms }) — Waits, then answers.");
    expect(sleep.text.split("\n").length).toBeLessThanOrEqual(4);
  });

  it("returns the hits' TypeScript declarations at detail full", async () => {
    const full = await call("search_tools", { query: "sleep", detail: "full", limit: 1 });
    expect(full.text).toContain("declare namespace control {");
    expect(full.text).toContain("function sleep(input: SleepInput): Promise<any>;");
    expect(full.text).not.toContain("function echo");
  });

  it("keeps to the servers asked for, and says when nothing matches", async () => {
    const scoped = await call("search_tools", {
      query: "echo",
      servers: ["everything"],
      detail: "name",
    });
    expect(scoped.text).not.toContain("control.");
    expect(scoped.text).toContain("everything.echo");
    const none = await call("search_tools", { query: "zzzqqq", servers: ["control"] });
    expect(none.text).toMatch(/^No tool matches "zzzqqq" among \d+ tools/);
    const unknown = await call("search_tools", { query: "x", servers: ["nope"] });
    expect(unknown).toMatchObject({ isError: true });
    expect(unknown.text).toMatch(/servers names servers that are not registered: "nope"/);
  });

  it("searches the servers that are up when one is down, and says which is not", async () => {
    const broken = {
      name: "broken",
      command: process.execPath,
      args: [CONTROL_SERVER],
      env: { FAIL_ON_START: "no database configured" },
    };
    expect(
      (await api.call({ method: "POST", url: "/v1/servers", payload: broken })).statusCode,
    ).toBe(201);
    try {
      const found = await call("search_tools", { query: "echo", detail: "name", limit: 2 });
      expect(found.isError).toBe(false);
      expect(found.text).toContain("control.echo");
      expect(found.text).toMatch(
        /\(server "broken" is unavailable, so its tools were not searched: .+\)$/,
      );
      // Its namespace is unchecked, not unknown: the program type-checks, and the run fails.
      const ran = await call("execute", { code: "return await broken.anything({});" });
      expect(ran.isError).toBe(true);
      expect(ran.text).not.toMatch(/^Not run/);
      // Mended (registered anew), it is searched again at once, not after the pause.
      const mended = { command: process.execPath, args: [CONTROL_SERVER] };
      expect(
        (await api.call({ method: "PUT", url: "/v1/servers/broken", payload: mended })).statusCode,
      ).toBe(200);
      const again = await call("search_tools", {
        query: "echo",
        servers: ["broken"],
        detail: "name",
      });
      expect(again.text).toContain("broken.echo");
    } finally {
      await api.call({ method: "DELETE", url: "/v1/servers/broken" });
    }
  });

  it("answers an unknown tool name, even one on Object's prototype, with an error", async () => {
    for (const name of ["constructor", "run_program"]) {
      const answer = await call(name, {});
      expect(answer).toMatchObject({ isError: true });
      expect(answer.text).toMatch(/^no tool ".+": the tools are search_tools, execute, get_job$/);
    }
  });

  it("answers bad arguments with a message naming the field", async () => {
    const bad = await call("search_tools", { query: "x", detail: "everything" });
    expect(bad.isError).toBe(true);
    expect(bad.text).toMatch(/^search_tools: arguments\.detail must be equal to one of/);
    const long = await call("search_tools", { query: "x".repeat(501) });
    expect(long.text).toBe("search_tools: arguments.query must NOT have more than 500 characters");
    const missing = await call("search_tools", {});
    expect(missing.text).toMatch(/must have required property 'query'/);
  });
});

describe("execute", () => {
  it("runs a program as a durable job and returns its result and logs", async () => {
    const answer = await call("execute", {
      code: [
        "const echoed = await control.echo({ n: input.n });",
        "console.log('doubling', echoed.n);",
        "return { doubled: echoed.n * 2 };",
      ].join("\n"),
      input: { n: 21 },
    });
    expect(answer.isError).toBe(false);
    expect(answer.text).toMatch(/^job [0-9a-f-]{36} succeeded \(1 steps executed, 0 replayed/);
    expect(answer.text).toContain('result:\n{"doubled":42}');
    expect(answer.text).toContain("logs:\ndoubling 21");
    const job = (await api.call({ method: "GET", url: `/v1/jobs/${jobIdOf(answer.text)}` })).json();
    expect(job).toMatchObject({ status: "succeeded", result: { doubled: 42 } });
  });

  it("type-checks first: type errors come back with line and column, and no job is made", async () => {
    const before = await api.db.job.count();
    const answer = await call("execute", {
      code: "const a = await control.sleep({ ms: 'soon' });\nreturn control.nothing({});",
    });
    expect(answer.isError).toBe(true);
    expect(answer.text).toMatch(/^Not run: the program has 2 type errors\./);
    expect(answer.text).toMatch(/line 1, column 33: TS2322 Type 'string' is not assignable/);
    expect(answer.text).toMatch(/line 2, column 16: TS2339 Property 'nothing' does not exist/);
    expect(await api.db.job.count()).toBe(before);
  });

  it("runs unchecked code with typecheck: false, and reports a failure at its line", async () => {
    const answer = await call("execute", {
      code: "const x: number = 'not checked';\nawait control.fail({ message: 'boom' });",
      typecheck: false,
    });
    expect(answer.isError).toBe(true);
    expect(answer.text).toMatch(/failed/);
    expect(answer.text).toContain("error: ToolError: boom (line 2, column 1) [tool control.fail]");
  });

  it("cuts a long result with a marker, and get_job pages through the rest", async () => {
    const answer = await call("execute", {
      code: "return Array.from({ length: 200 }, (_, i) => 'item-' + i);",
    });
    expect(answer.text).toMatch(
      /\[cut: characters 0–300 of 2,\d{3} shown\. The next part: get_job/,
    );
    const id = jobIdOf(answer.text);
    const whole = JSON.stringify(Array.from({ length: 200 }, (_, i) => `item-${i}`));
    let collected = "";
    let offset = 0;
    for (let pages = 0; pages < 20 && offset < whole.length; pages++) {
      const part = await call("get_job", { id, part: "result", offset });
      const body = part.text.split("\n").slice(1);
      const marker = body.at(-1) ?? "";
      const cut = marker.startsWith("[cut:");
      const shown = (cut ? body.slice(0, -1) : body).join("\n");
      collected += shown;
      offset += shown.length;
    }
    expect(collected).toBe(whole);
    const rest = await api.call({ method: "GET", url: `/v1/jobs/${id}` });
    expect(rest.json().result).toHaveLength(200);
  });

  it("cuts long logs the same way", async () => {
    const answer = await call("execute", {
      code: "for (let i = 0; i < 50; i++) console.log('line', i);\nreturn 1;",
    });
    expect(answer.text).toMatch(
      /logs:\nline 0\nline 1\n[\s\S]*\[cut: characters 0–200 of \d+ shown/,
    );
  });

  it("answers with the job's id when it outlives the wait; get_job waits for its end", async () => {
    const answer = await call("execute", {
      code: "await control.sleep({ ms: 4500 });\nreturn 'late';",
    });
    expect(answer.isError).toBe(false);
    expect(answer.text).toMatch(/^job [0-9a-f-]{36} is running/);
    expect(answer.text).toMatch(
      /Still running after 3 s: get_job \{"id":"[0-9a-f-]{36}","wait":30\}/,
    );
    const later = await call("get_job", { id: jobIdOf(answer.text), wait: 30 });
    expect(later.text).toContain("succeeded");
    expect(later.text).toContain('result:\n"late"');
  });

  it("answers an unknown job id with a clear error", async () => {
    const missing = await call("get_job", { id: "00000000-0000-4000-8000-000000000000" });
    expect(missing).toMatchObject({ isError: true });
    expect(missing.text).toMatch(/^get_job: no job "00000000-0000-4000-8000-000000000000"/);
  });
});

describe("third-party and stdio clients", () => {
  it("works with the MCP Inspector's CLI over Streamable HTTP", async () => {
    // It looks for its own package.json relative to the working directory, so it runs from there.
    const build = `${REPO_ROOT}node_modules/@modelcontextprotocol/inspector-cli/build`;
    const inspector = `${build}/index.js`;
    const run = (args: string[]) =>
      new Promise<string>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          [
            inspector,
            url,
            "--transport",
            "http",
            "--header",
            `Authorization: Bearer ${api.key}`,
            ...args,
          ],
          { cwd: build, stdio: ["ignore", "pipe", "pipe"] },
        );
        let out = "";
        let err = "";
        child.stdout.on("data", (chunk: Buffer) => {
          out += chunk;
        });
        child.stderr.on("data", (chunk: Buffer) => {
          err += chunk;
        });
        child.once("exit", (code) =>
          code === 0 ? resolve(out) : reject(new Error(`inspector exited ${code}: ${err}`)),
        );
      });
    const listed = JSON.parse(await run(["--method", "tools/list"]));
    expect(listed.tools.map((tool: { name: string }) => tool.name)).toEqual([
      "search_tools",
      "execute",
      "get_job",
    ]);
    const executed = JSON.parse(
      await run([
        "--method",
        "tools/call",
        "--tool-name",
        "execute",
        "--tool-arg",
        "code=return 6 * 7;",
      ]),
    );
    expect(executed.content[0].text).toMatch(/succeeded[\s\S]*result:\n42/);
  });

  it("serves the same tools over stdio with `turtle mcp --servers`", async () => {
    const serversFile = join(dir, "servers.json");
    writeFileSync(
      serversFile,
      JSON.stringify({
        mcpServers: { stdio_echo: { command: process.execPath, args: [CONTROL_SERVER] } },
      }),
    );
    const stdio = new Client({ name: "turtle-test-stdio", version: "1.0.0" });
    await stdio.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [`${REPO_ROOT}apps/cli/bin/turtle.js`, "mcp", "--servers", serversFile],
        cwd: dir,
        env: { ...fleetEnv(api.config), LOG_LEVEL: "silent" },
        stderr: "pipe",
      }),
    );
    try {
      const { tools } = await stdio.listTools();
      expect(tools.map((tool) => tool.name)).toEqual(["search_tools", "execute", "get_job"]);
      expect(tools[1]?.description).toContain("stdio_echo");
      const answer = await call(
        "execute",
        { code: "const r = await stdio_echo.echo({ via: 'stdio' });\nreturn r.via;" },
        stdio,
      );
      expect(answer.text).toContain('result:\n"stdio"');
    } finally {
      await stdio.close();
    }
  });
});
