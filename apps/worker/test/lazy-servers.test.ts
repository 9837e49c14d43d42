// A job connects only to the servers its program names: a registered server that cannot start
// fails only the calls made to it, and a program that does not compile fails before any server
// is contacted. And each project's servers have call slots of their own (SERVER_CONCURRENCY).
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSecretBox, DEFAULT_PROJECT_ID, saveServer } from "@turtle/core";
import { CONTROL_SERVER, createPlatform, type Platform } from "@turtle/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let platform: Platform;
const dir = mkdtempSync(join(tmpdir(), "turtle-lazy-"));
/** The `watched` server writes its pid here when it starts: contact made visible. */
const startFile = join(dir, "watched-starts");
const starts = () => (existsSync(startFile) ? readFileSync(startFile, "utf8").trim() : "");

beforeAll(async () => {
  platform = await createPlatform({ label: "lazy", env: { SERVER_CONCURRENCY: "1" } });
  const box = createSecretBox(platform.env);
  const register = (projectId: string, name: string, config: Record<string, unknown>) =>
    saveServer(platform.db, box, { projectId, name }, config as never);
  await register(DEFAULT_PROJECT_ID, "unreachable", { url: "http://127.0.0.1:9/mcp" });
  // A misspelt package: npx would look for it on the registry and fail.
  await register(DEFAULT_PROJECT_ID, "misspelt", {
    command: "npx",
    args: ["-y", "@modelcontextprotocol/server-everythingg-misspelt"],
  });
  await register(DEFAULT_PROJECT_ID, "missing", { command: "/nonexistent/mcp-server" });
  await register(DEFAULT_PROJECT_ID, "watched", {
    command: process.execPath,
    args: [CONTROL_SERVER],
    env: { START_FILE: startFile },
  });
  await platform.startWorker();
});

afterAll(async () => {
  await platform?.close();
});

describe("a job's servers", () => {
  it("are only those its program names: a program that names none succeeds beside broken ones", async () => {
    const job = await platform.submit({ code: "return 42" });
    const done = await platform.waitFor(job.id, ["succeeded", "failed"]);
    expect(done.error).toBeNull();
    expect(done).toMatchObject({ status: "succeeded", result: 42 });
    // A server the program does not name is not started.
    expect(starts()).toBe("");
  });

  it("fail only the calls to a server that is down, with a ToolError the program can catch", async () => {
    const job = await platform.submit({
      code: [
        "const caught = [];",
        "for (const call of [() => unreachable.list_things({}), () => missing.anything({ a: 1 })]) {",
        "  try {",
        "    await call();",
        "  } catch (error) {",
        "    caught.push({ isToolError: error instanceof ToolError, code: error.code, server: error.server, message: error.message });",
        "  }",
        "}",
        "return { caught, echoed: await control.echo({ a: 1 }) };",
      ].join("\n"),
    });
    const done = await platform.waitFor(job.id, ["succeeded", "failed"]);
    expect(done.error).toBeNull();
    expect(done.status).toBe("succeeded");
    const result = done.result as {
      caught: Array<{ isToolError: boolean; code: string; server: string; message: string }>;
      echoed: unknown;
    };
    expect(result.echoed).toEqual({ a: 1 });
    expect(result.caught).toMatchObject([
      { isToolError: true, code: "server_unavailable", server: "unreachable" },
      { isToolError: true, code: "server_unavailable", server: "missing" },
    ]);
    // Each names its server and why it is down.
    expect(result.caught[0]?.message).toMatch(/MCP server "unreachable" .+/);
    expect(result.caught[1]?.message).toBe(
      'MCP server "missing" could not start: spawn /nonexistent/mcp-server ENOENT',
    );
  });

  it("an uncaught call to a server that is down fails the job with that ToolError", async () => {
    const job = await platform.submit({ code: "return await globalThis.missing.anything({});" });
    const done = await platform.waitFor(job.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({
      status: "failed",
      error: {
        code: "tool_error",
        name: "ToolError",
        message: 'MCP server "missing" could not start: spawn /nonexistent/mcp-server ENOENT',
        server: "missing",
        line: 1,
      },
    });
  });

  it("are not contacted when the program does not compile", async () => {
    const job = await platform.submit({
      code: "const result = await watched.echo({ a: 1 });\nreturn (result;",
    });
    const done = await platform.waitFor(job.id, ["succeeded", "failed"]);
    expect(done).toMatchObject({ status: "failed", error: { code: "compile_error", line: 2 } });
    expect(starts()).toBe("");
    // The same server does start for a program that compiles and names it.
    const named = await platform.submit({ code: "return await watched.echo({ a: 1 });" });
    expect(await platform.waitFor(named.id, ["succeeded", "failed"])).toMatchObject({
      status: "succeeded",
      result: { a: 1 },
    });
    expect(starts()).toMatch(/^\d+$/);
  });
});

describe("SERVER_CONCURRENCY", () => {
  it("is counted per project: a same-named server of another project is not held up", async () => {
    const projects = await Promise.all(
      ["one", "two"].map((name) =>
        platform.db.project.create({ data: { name, allowStdioServers: true } }),
      ),
    );
    const box = createSecretBox(platform.env);
    for (const project of projects) {
      await saveServer(
        platform.db,
        box,
        { projectId: project.id, name: "slow" },
        { command: process.execPath, args: [CONTROL_SERVER] },
      );
    }
    const [one, two] = projects as [(typeof projects)[0], (typeof projects)[0]];
    const gate = join(dir, "gate");
    // Project one's call holds the worker's only slot for its `slow` until the gate opens.
    const held = await platform.submit({
      projectId: one.id,
      code: `return await slow.gate({ path: ${JSON.stringify(gate)} });`,
    });
    await platform.waitFor(held.id, ["running"]);
    try {
      const other = await platform.submit({
        projectId: two.id,
        code: "return await slow.echo({ a: 2 });",
      });
      const done = await platform.waitFor(other.id, ["succeeded", "failed"], 30_000);
      expect(done).toMatchObject({ status: "succeeded", result: { a: 2 } });
      expect((await platform.db.job.findUniqueOrThrow({ where: { id: held.id } })).status).toBe(
        "running",
      );
    } finally {
      writeFileSync(gate, "");
    }
    expect(await platform.waitFor(held.id, ["succeeded", "failed"])).toMatchObject({
      status: "succeeded",
    });
  });
});
