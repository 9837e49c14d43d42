import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_PROJECT_ID, joinSecrets } from "@turtle/core";
import {
  CONTROL_SERVER,
  EVERYTHING_SERVER,
  eventually,
  it,
  MEMORY_SERVER,
  type TestApi,
} from "@turtle/test-support";
import { describe, expect } from "vitest";
import { buildApp } from "../src/app.ts";

let api: TestApi;

const everything = { command: process.execPath, args: [EVERYTHING_SERVER, "stdio"] };

it.beforeAll(async ({ api: started }) => {
  api = started;
});

describe("POST /v1/servers", () => {
  it("registers a server and answers its view, with env names but never values", async () => {
    const response = await api.call({
      method: "POST",
      url: "/v1/servers",
      payload: { name: "everything", ...everything, env: { API_TOKEN: "very-secret" } },
    });
    expect(response.statusCode).toBe(201);
    expect(response.body).not.toContain("very-secret");
    expect(response.json()).toEqual({
      name: "everything",
      transport: "stdio",
      command: process.execPath,
      args: [EVERYTHING_SERVER, "stdio"],
      env: ["API_TOKEN"],
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    // The secret is kept (apart, encrypted) for the workers.
    const row = await api.db.server.findUniqueOrThrow({
      where: { projectId_name: { projectId: DEFAULT_PROJECT_ID, name: "everything" } },
    });
    expect(JSON.stringify(row.secrets)).not.toMatch(/very-secret|API_TOKEN/);
    expect(row.secrets).toMatchObject({ v: 2, kid: api.app.secrets.keyId });
    expect(joinSecrets(row, api.app.secrets)).toMatchObject({ env: { API_TOKEN: "very-secret" } });
  });

  it("registers HTTP servers with header names only", async () => {
    const response = await api.call({
      method: "POST",
      url: "/v1/servers",
      payload: {
        name: "remote",
        url: "http://127.0.0.1:9/mcp",
        type: "http",
        headers: { Authorization: "Bearer hidden" },
      },
    });
    expect(response.statusCode).toBe(201);
    expect(response.json()).toMatchObject({
      name: "remote",
      transport: "http",
      url: "http://127.0.0.1:9/mcp",
      type: "http",
      headers: ["Authorization"],
    });
    expect(response.body).not.toContain("hidden");
  });

  it("answers 409 for a name that is taken, pointing at PUT", async () => {
    const response = await api.call({
      method: "POST",
      url: "/v1/servers",
      payload: { name: "everything", command: "node" },
    });
    expect(response.statusCode).toBe(409);
    expect(response.json().error).toEqual({
      code: "server_exists",
      message: expect.stringContaining("PUT /v1/servers/everything"),
    });
  });

  it("answers 409 for a name that makes the namespace of another server, naming it", async () => {
    const first = await api.call({
      method: "POST",
      url: "/v1/servers",
      payload: { name: "a-b", ...everything },
    });
    expect(first.statusCode).toBe(201);
    for (const [method, url] of [
      ["POST", "/v1/servers"],
      ["PUT", "/v1/servers/a_b"],
      ["PUT", "/v1/servers/a.b"],
    ] as const) {
      const name = url.split("/").at(-1) === "servers" ? "a_b" : url.split("/").at(-1);
      const response = await api.call({ method, url, payload: { name, ...everything } });
      expect(response.statusCode).toBe(409);
      expect(response.json().error).toEqual({
        code: "namespace_taken",
        message: expect.stringContaining('the registered server "a-b"'),
      });
    }
    // The server itself may still be replaced.
    const replaced = await api.call({
      method: "PUT",
      url: "/v1/servers/a-b",
      payload: everything,
    });
    expect(replaced.statusCode).toBe(200);
  });

  it.each([
    [{}, "body.name is required"],
    [{ name: "a b", command: "node" }, 'body.name "a b" may only contain'],
    [{ name: "__proto__", command: "node" }, "would shadow __proto__, which every object inherits"],
    [{ name: "toString", command: "node" }, '"toString" would shadow toString, which every'],
    [{ name: "constructor", command: "node" }, "would shadow constructor"],
    [{ name: "console", command: "node" }, "would shadow the sandbox's global console"],
    [{ name: "input", command: "node" }, "would shadow the sandbox's global input"],
    [{ name: "JSON", command: "node" }, "would shadow the sandbox's global JSON"],
    [{ name: "delete", command: "node" }, '"delete" is a JavaScript reserved word'],
    [{ name: "turtle", command: "node" }, "a namespace Turtle keeps for itself"],
    [{ name: "x" }, 'body: needs either "command" or "url"'],
    [{ name: "x", command: "node", url: "http://a" }, 'has both "command" and "url"'],
    [{ name: "x", command: "" }, "body.command: must not be empty"],
    [{ name: "x", command: "node", args: "a" }, "body.args: must be an array"],
    [{ name: "x", command: "node", env: { A: 1 } }, "body.env.A: must be a string"],
    [{ name: "x", url: "ftp://a" }, "body.url: must be an http(s) URL"],
    [{ name: "x", url: "http://a", type: "ws" }, "body.type: must be"],
    [{ name: 5, command: "node" }, "body.name must be a string, not a number"],
  ])("rejects %j with 400 naming the field", async (payload, message) => {
    const response = await api.call({ method: "POST", url: "/v1/servers", payload });
    expect(response.statusCode).toBe(400);
    expect(response.json().error.message).toContain(message);
    expect(["invalid_server", "invalid_request"]).toContain(response.json().error.code);
  });
});

describe("PUT /v1/servers/:name", () => {
  it("creates (201) or replaces (200)", async () => {
    const created = await api.call({
      method: "PUT",
      url: "/v1/servers/replaced",
      payload: { command: "node", args: ["a.js"] },
    });
    expect(created.statusCode).toBe(201);
    const replaced = await api.call({
      method: "PUT",
      url: "/v1/servers/replaced",
      payload: { name: "replaced", url: "http://127.0.0.1:9/mcp" },
    });
    expect(replaced.statusCode).toBe(200);
    expect(replaced.json()).toMatchObject({ name: "replaced", transport: "http", headers: [] });
    expect(replaced.json()).not.toHaveProperty("command");

    const mismatch = await api.call({
      method: "PUT",
      url: "/v1/servers/replaced",
      payload: { name: "other", command: "node" },
    });
    expect(mismatch.statusCode).toBe(400);
    expect(mismatch.json().error.message).toContain("body.name");
  });
});

describe("GET /v1/servers", () => {
  it("lists servers by name without secret values", async () => {
    const response = await api.call({ method: "GET", url: "/v1/servers" });
    expect(response.statusCode).toBe(200);
    const names = response.json().servers.map((server: { name: string }) => server.name);
    expect(names).toEqual([...names].sort());
    expect(names).toEqual(expect.arrayContaining(["everything", "remote"]));
    expect(response.body).not.toContain("very-secret");
    expect(response.body).not.toContain("hidden");
  });
});

describe("GET /v1/servers/:name/tools", () => {
  it("lists the tools live from the server", async () => {
    const response = await api.call({ method: "GET", url: "/v1/servers/everything/tools" });
    expect(response.statusCode).toBe(200);
    const { server, tools } = response.json();
    expect(server).toBe("everything");
    const echo = tools.find((tool: { name: string }) => tool.name === "echo");
    expect(echo).toMatchObject({
      name: "echo",
      description: expect.any(String),
      inputSchema: { type: "object", properties: { message: { type: "string" } } },
    });
  });

  it("answers 404 for an unknown server and 502 with the reason for an unreachable one", async () => {
    const unknown = await api.call({ method: "GET", url: "/v1/servers/nope/tools" });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe("not_found");

    await api.call({
      method: "PUT",
      url: "/v1/servers/broken",
      payload: { command: "/nonexistent/mcp-server" },
    });
    const broken = await api.call({ method: "GET", url: "/v1/servers/broken/tools" });
    expect(broken.statusCode).toBe(502);
    expect(broken.json().error).toEqual({
      code: "server_unavailable",
      message: 'MCP server "broken" could not start: spawn /nonexistent/mcp-server ENOENT',
    });

    await api.call({
      method: "PUT",
      url: "/v1/servers/crashing",
      payload: {
        command: process.execPath,
        args: [CONTROL_SERVER, "--fail-on-start=no db for token s3cr3t-value"],
        env: { TOKEN: "s3cr3t-value" },
      },
    });
    const crashing = await api.call({ method: "GET", url: "/v1/servers/crashing/tools" });
    expect(crashing.statusCode).toBe(502);
    // What the server wrote is quoted, less its secrets.
    expect(crashing.json().error.message).toContain("no db for token [redacted]");
  });

  it("sees a replaced registration at once, and so does every other API instance", async () => {
    const other = await buildApp({ config: api.config });
    await other.ready();
    try {
      const toolNames = async (app: typeof other) => {
        const response = await app.inject({
          method: "GET",
          url: "/v1/servers/swapped/tools",
          headers: { authorization: `Bearer ${api.key}` },
        });
        expect(response.statusCode).toBe(200);
        return response.json().tools.map((tool: { name: string }) => tool.name) as string[];
      };
      await api.call({ method: "PUT", url: "/v1/servers/swapped", payload: everything });
      expect(await toolNames(api.app)).toContain("echo");
      expect(await toolNames(other)).toContain("echo");

      // Replaced through `api`: `other` hears of it over Redis and drops its session.
      const memory = { command: process.execPath, args: [MEMORY_SERVER] };
      await api.call({ method: "PUT", url: "/v1/servers/swapped", payload: memory });
      expect(await toolNames(api.app)).toContain("create_entities");
      await eventually("the other instance to see the new server", async () =>
        (await toolNames(other)).includes("create_entities") ? true : undefined,
      );
    } finally {
      await other.close();
    }
  });
});

describe("DELETE /v1/servers/:name", () => {
  it("removes a server (204), then 404", async () => {
    await api.call({ method: "PUT", url: "/v1/servers/doomed", payload: everything });
    expect((await api.call({ method: "GET", url: "/v1/servers/doomed/tools" })).statusCode).toBe(
      200,
    );
    const deleted = await api.call({ method: "DELETE", url: "/v1/servers/doomed" });
    expect(deleted.statusCode).toBe(204);
    expect(deleted.body).toBe("");
    expect((await api.call({ method: "GET", url: "/v1/servers/doomed/tools" })).statusCode).toBe(
      404,
    );
    expect((await api.call({ method: "DELETE", url: "/v1/servers/doomed" })).statusCode).toBe(404);
  });

  it("answers 400 for a name no server can have, in any route", async () => {
    for (const [method, url] of [
      ["GET", "/v1/servers/%00/tools"],
      ["DELETE", "/v1/servers/a%20b"],
      ["PUT", "/v1/servers/%F0%9F%98%80"],
    ] as const) {
      const response = await api.call({ method, url, payload: everything });
      expect(response.statusCode, url).toBe(400);
      expect(response.json().error.message).toMatch(
        /^params\.name must match pattern .+ \(got .+\): a server's name: 1 to 64 letters, digits, '_', '\.' or '-'$/,
      );
    }
  });
});

describe("GET /v1/types", () => {
  it("answers TypeScript declarations as text for the named servers", async () => {
    const response = await api.call({ method: "GET", url: "/v1/types?servers=everything" });
    expect(response.statusCode).toBe(200);
    expect(response.headers["content-type"]).toBe("text/plain; charset=utf-8");
    expect(response.body).toContain("declare namespace everything {");
    expect(response.body).toContain("function echo(input: EchoInput): Promise<");
    expect(response.body).not.toContain("declare namespace swapped");
  });

  it("covers every registered server when none are named", async () => {
    await api.call({ method: "DELETE", url: "/v1/servers/broken" });
    await api.call({ method: "DELETE", url: "/v1/servers/crashing" });
    await api.call({ method: "DELETE", url: "/v1/servers/remote" });
    await api.call({ method: "DELETE", url: "/v1/servers/replaced" });
    const response = await api.call({ method: "GET", url: "/v1/types" });
    expect(response.statusCode).toBe(200);
    expect(response.body).toContain("declare namespace everything {");
    expect(response.body).toContain("declare namespace swapped {");
  });

  it("answers 400 naming unknown servers", async () => {
    const response = await api.call({
      method: "GET",
      url: "/v1/types?servers=everything,nope,gone",
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toEqual({
      code: "unknown_server",
      message: expect.stringContaining('"nope", "gone"'),
    });
  });
});

describe("MCP_SERVERS_FILE", () => {
  it("registers (creates or replaces) the file's servers at start", async () => {
    const dir = mkdtempSync(join(tmpdir(), "turtle-api-"));
    try {
      const file = join(dir, "mcp.json");
      writeFileSync(
        file,
        JSON.stringify({
          mcpServers: {
            everything: { command: "node", args: ["server.js"], env: { K: "v" } },
            fresh: { url: "http://127.0.0.1:9/mcp" },
          },
        }),
      );
      const config = { ...api.config, MCP_SERVERS_FILE: file };
      const app = await buildApp({ config });
      await app.ready();
      await app.close();
      const rows = await api.db.server.findMany({
        where: { name: { in: ["everything", "fresh"] } },
      });
      expect(rows.map((row) => joinSecrets(row, api.app.secrets))).toEqual(
        expect.arrayContaining([
          { command: "node", args: ["server.js"], env: { K: "v" }, cwd: dir },
          { url: "http://127.0.0.1:9/mcp" },
        ]),
      );

      writeFileSync(file, JSON.stringify({ mcpServers: { bad: { command: 5 } } }));
      await expect(buildApp({ config })).rejects.toThrow(
        `${file}: mcpServers.bad.command: must be a string`,
      );

      // The operator's file obeys the operator's own rule for their project.
      writeFileSync(file, JSON.stringify({ mcpServers: { local: { command: "node" } } }));
      await api.db.project.update({
        where: { id: DEFAULT_PROJECT_ID },
        data: { allowStdioServers: false },
      });
      try {
        await expect(buildApp({ config })).rejects.toThrow(
          `${file}: stdio servers local: this project may not run stdio MCP servers`,
        );
      } finally {
        await api.db.project.update({
          where: { id: DEFAULT_PROJECT_ID },
          data: { allowStdioServers: true },
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
