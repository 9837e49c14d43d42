// Registered servers that cannot start (an unreachable URL, a misspelt npx package) fail no
// request as a whole: the declarations and the tool search leave them out and say why, and a
// program run through the MCP façade's `execute` (which cannot name its servers) goes on, its
// calls to them failing with a ToolError coded server_unavailable.

import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { CONTROL_SERVER, startFleet, type TestApi, type TestFleet } from "@turtle/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

/** The `watched` server writes its pid here when it starts: contact made visible. */
const dir = mkdtempSync(join(tmpdir(), "turtle-unavailable-"));
const startFile = join(dir, "watched-starts");

let fleet: TestFleet;
let api: TestApi;
let client: Client;

beforeAll(async () => {
  fleet = await startFleet({
    apiEnv: { MCP_WAIT_MS: "30000" },
    servers: () => [
      { name: "control", command: process.execPath, args: [CONTROL_SERVER] },
      {
        name: "watched",
        command: process.execPath,
        args: [CONTROL_SERVER],
        env: { START_FILE: startFile },
      },
      { name: "unreachable", url: "http://127.0.0.1:9/mcp" },
      // npx looks for the package on the registry and gives up.
      { name: "misspelt", command: "npx", args: ["-y", "@modelcontextprotocol/server-evrything"] },
    ],
  });
  ({ api } = fleet);
  client = new Client({ name: "turtle-test", version: "1.0.0" });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(`${fleet.base}/mcp`), {
      requestInit: { headers: { authorization: `Bearer ${api.key}` } },
    }),
  );
});

afterAll(async () => {
  await client?.close();
  await fleet?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function call(name: string, args: Record<string, unknown>) {
  const result = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const text = result.content.map((part) => (part.type === "text" ? part.text : "")).join("");
  return { text, isError: result.isError === true };
}

// First in the file: the tests after it list every server's tools.
describe("type-checking a program", () => {
  it("reports a syntax error before any server is contacted", async () => {
    const response = await api.call({
      method: "POST",
      url: "/v1/check",
      payload: { code: "const echoed = await watched.echo({ a: 1 });\nreturn (echoed;" },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      ok: false,
      diagnostics: [expect.objectContaining({ line: 2, code: 1005 })],
    });
    const submitted = await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "const x = ;", typecheck: true },
    });
    expect(submitted.statusCode).toBe(400);
    expect(submitted.json().error.code).toBe("type_errors");
    expect(existsSync(startFile)).toBe(false);
  });

  it("contacts only the servers the program uses, and none that are down", async () => {
    const response = await api.call({
      method: "POST",
      url: "/v1/check",
      payload: { code: "const n: number = await control.echo({ a: 1 }).then(() => 1);\nreturn n;" },
    });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ ok: true, diagnostics: [], truncated: false });
    expect(existsSync(startFile)).toBe(false);
  });
});

describe("servers that cannot start", () => {
  it("are left out of GET /v1/types, named at the top with the reason", async () => {
    const response = await api.call({ method: "GET", url: "/v1/types" });
    expect(response.statusCode, response.body).toBe(200);
    const lines = response.body.split("\n");
    expect(lines[0]).toMatch(
      /^\/\/ MCP server "misspelt" is unavailable, so its tools are not declared: .+$/,
    );
    expect(lines[1]).toMatch(
      /^\/\/ MCP server "unreachable" is unavailable, so its tools are not declared: .+$/,
    );
    expect(response.body).toContain("declare namespace control {");
    // A program may still name them: they are declared, unchecked.
    expect(response.body).toContain("declare const unreachable: any;");
  });

  it("are left out of search_tools, which says which and why", async () => {
    const found = await call("search_tools", { query: "echo", detail: "name" });
    expect(found.isError).toBe(false);
    expect(found.text).toContain("control.echo");
    expect(found.text).toMatch(
      /\n\(server "unreachable" is unavailable, so its tools were not searched: .+\)/,
    );
  });

  it("fail no execute of a program that does not call them", async () => {
    const ran = await call("execute", { code: "return 42;" });
    expect(ran.isError, ran.text).toBe(false);
    expect(ran.text).toMatch(/succeeded/);
    expect(ran.text).toContain("42");
  });

  it("fail only the calls to them in execute, with a ToolError the program catches", async () => {
    const ran = await call("execute", {
      code: [
        "let code = '';",
        "let server = '';",
        "try {",
        "  await unreachable.anything({});",
        "} catch (error) {",
        "  if (error instanceof ToolError) ({ code, server } = error);",
        "}",
        "const echoed = await control.echo({ ok: true });",
        "return { code, server, echoed };",
      ].join("\n"),
    });
    expect(ran.isError, ran.text).toBe(false);
    // Stored as JSONB: its keys come back sorted.
    expect(ran.text).toContain(
      JSON.stringify({ code: "server_unavailable", echoed: { ok: true }, server: "unreachable" }),
    );
  });
});
