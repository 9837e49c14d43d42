import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "@turtle/test-support";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, loadMcpServersFile, parseMcpServersFile } from "../src/index.ts";

function errorOf(value: unknown): string {
  try {
    parseMcpServersFile(value);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).code).toBe("invalid_config");
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("parseMcpServersFile", () => {
  it("accepts stdio and http servers in the Claude Desktop format, dropping unknown keys", () => {
    const servers = parseMcpServersFile({
      mcpServers: {
        files: {
          command: "npx",
          args: ["-y", "@modelcontextprotocol/server-filesystem", "."],
          env: { DEBUG: "1" },
          disabled: false,
        },
        "api.v2": { url: "https://example.com/mcp", headers: { Authorization: "Bearer x" } },
        legacy: { url: "http://localhost:3001/sse", type: "sse" },
        local_tool: { type: "stdio", command: "./bin/tool" },
      },
    });
    expect(servers).toEqual({
      files: {
        command: "npx",
        args: ["-y", "@modelcontextprotocol/server-filesystem", "."],
        env: { DEBUG: "1" },
      },
      "api.v2": { url: "https://example.com/mcp", headers: { Authorization: "Bearer x" } },
      legacy: { url: "http://localhost:3001/sse", type: "sse" },
      local_tool: { type: "stdio", command: "./bin/tool" },
    });
  });

  it("names the server and the field in one line", () => {
    expect(errorOf({ mcpServers: { github: {} } })).toBe(
      'mcpServers.github: needs either "command" or "url"',
    );
    expect(errorOf({ mcpServers: { both: { command: "x", url: "http://x" } } })).toBe(
      'mcpServers.both: has both "command" and "url"; use one',
    );
    expect(errorOf({ mcpServers: { files: { command: "" } } })).toBe(
      "mcpServers.files.command: must not be empty",
    );
    expect(errorOf({ mcpServers: { files: { command: "x", args: ["a", 2] } } })).toBe(
      "mcpServers.files.args.1: must be a string",
    );
    expect(errorOf({ mcpServers: { files: { command: "x", args: "a b" } } })).toBe(
      "mcpServers.files.args: must be an array",
    );
    expect(errorOf({ mcpServers: { files: { command: "x", env: { TOKEN: 1 } } } })).toBe(
      "mcpServers.files.env.TOKEN: must be a string",
    );
    expect(errorOf({ mcpServers: { api: { url: "not a url" } } })).toBe(
      "mcpServers.api.url: must be an http(s) URL",
    );
    expect(errorOf({ mcpServers: { api: { url: "ftp://example.com" } } })).toBe(
      "mcpServers.api.url: must be an http(s) URL",
    );
    expect(errorOf({ mcpServers: { api: { url: "http://x", type: "websocket" } } })).toBe(
      'mcpServers.api.type: must be "http", "streamable-http" or "sse"',
    );
    expect(errorOf({ mcpServers: { api: "http://x" } })).toBe("mcpServers.api: must be an object");
  });

  it("says what a server name may contain", () => {
    expect(errorOf({ mcpServers: { "my server": { command: "x" } } })).toBe(
      `mcpServers: server name "my server" may only contain letters, digits, '_', '.' and '-' (allowed: 1-64 characters of A-Z a-z 0-9 _ . -)`,
    );
    expect(errorOf({ mcpServers: { "": { command: "x" } } })).toMatch(
      /^mcpServers: server name "" must not be empty/,
    );
    expect(errorOf({ mcpServers: { ["x".repeat(65)]: { command: "x" } } })).toMatch(
      /must be at most 64 characters/,
    );
  });

  it("rejects documents without an mcpServers object", () => {
    expect(errorOf([])).toBe('expected a JSON object with an "mcpServers" object');
    expect(errorOf({ servers: {} })).toBe('expected a JSON object with an "mcpServers" object');
    expect(errorOf({ mcpServers: [] })).toBe(
      "mcpServers: must be an object mapping server names to servers",
    );
  });
});

describe("loadMcpServersFile", () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it("runs stdio servers in the file's directory unless cwd says otherwise", async () => {
    const file = join(dir.path, "mcp.json");
    writeFileSync(
      file,
      JSON.stringify({
        mcpServers: {
          here: { command: "./server.sh", args: ["./data"] },
          sub: { command: "node", cwd: "sub" },
          abs: { command: "node", cwd: "/srv" },
          web: { url: "http://127.0.0.1:9/mcp" },
        },
      }),
    );
    expect(await loadMcpServersFile(file)).toEqual({
      here: { command: "./server.sh", args: ["./data"], cwd: dir.path },
      sub: { command: "node", cwd: join(dir.path, "sub") },
      abs: { command: "node", cwd: "/srv" },
      web: { url: "http://127.0.0.1:9/mcp" },
    });
  });

  it("prefixes errors with the file path", async () => {
    const bad = join(dir.path, "bad.json");
    writeFileSync(bad, JSON.stringify({ mcpServers: { github: { args: [] } } }));
    await expect(loadMcpServersFile(bad)).rejects.toThrow(
      new ConfigError(`${bad}: mcpServers.github: needs either "command" or "url"`),
    );

    const broken = join(dir.path, "broken.json");
    writeFileSync(broken, "{ mcpServers: ");
    await expect(loadMcpServersFile(broken)).rejects.toThrow(/broken\.json: invalid JSON: /);

    const missing = join(dir.path, "missing.json");
    await expect(loadMcpServersFile(missing)).rejects.toThrow(/missing\.json: cannot read: ENOENT/);
  });
});
