// The worker's MCP connections per project: a project's servers serve only its own jobs, and a
// project no job has used for SERVER_IDLE_MS has its servers' processes closed.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSecretBox, DEFAULT_PROJECT_ID, generateSecretsKey, saveServer } from "@turtle/core";
import { createDb, type Db } from "@turtle/db";
import { compileProgram } from "@turtle/sandbox";
import { CONTROL_SERVER, isAlive, test as it } from "@turtle/test-support";
import { describe, expect } from "vitest";
import { ServerStartTimeoutError, ToolHosts } from "../src/tool-hosts.ts";

let db: Db;
const box = createSecretBox({ SECRETS_KEY: generateSecretsKey() });
let other: string;
let slow: string;
const startFile = join(mkdtempSync(join(tmpdir(), "turtle-hosts-")), "starts");
let refused: string;
let hanging: string;
/** These tests read servers' pids: the sandbox's PID namespace would hide them. */
const sandbox = { kind: "none" } as const;

it.beforeAll(async ({ database }) => {
  db = createDb(database.url);
  other = (await db.project.create({ data: { name: "other", allowStdioServers: true } })).id;
  slow = (await db.project.create({ data: { name: "slow", allowStdioServers: true } })).id;
  refused = (await db.project.create({ data: { name: "refused" } })).id;
  const control = { command: process.execPath, args: [CONTROL_SERVER] };
  await saveServer(db, box, { projectId: DEFAULT_PROJECT_ID, name: "control" }, control);
  await saveServer(db, box, { projectId: other, name: "theirs" }, control);
  await saveServer(
    db,
    box,
    { projectId: slow, name: "slow" },
    { ...control, env: { START_DELAY_MS: "1500", START_FILE: startFile } },
  );
  hanging = (await db.project.create({ data: { name: "hanging", allowStdioServers: true } })).id;
  await saveServer(
    db,
    box,
    { projectId: hanging, name: "stuck" },
    {
      ...control,
      env: { HANG_ON_START: "1" },
    },
  );
  await saveServer(db, box, { projectId: hanging, name: "fine" }, control);
  // As if registered before the operator took stdio servers away from the project.
  await saveServer(db, box, { projectId: refused, name: "old" }, control);
});

// The database fixture drops the database after the file.
it.afterAll(async () => {
  await db?.$disconnect();
});

/** The pid of the `control`-like server's process that answers a call of the project. */
async function serverPid(hosts: ToolHosts, projectId: string, server: string) {
  const lease = await hosts.acquire(projectId, [server]);
  try {
    const stats = (await lease.host.invoke({ namespace: server, method: "stats", args: {} })) as {
      pid: number;
    };
    return { pid: stats.pid, lease };
  } catch (error) {
    lease.release();
    throw error;
  }
}

describe("the worker's tool hosts", () => {
  it("never start a stdio server of a project not allowed stdio servers, whenever it was registered", async () => {
    const hosts = new ToolHosts(db, box, { sandbox });
    try {
      // The server is unavailable to the job, which runs: its calls fail with the reason.
      const lease = await hosts.acquire(refused, ["old"]);
      lease.release();
      expect(lease.host.namespaces).toEqual({});
      expect(lease.host.unavailable?.old?.message).toMatch(
        /this project may not run stdio MCP servers .* register it as an HTTP server/,
      );
    } finally {
      await hosts.close();
    }
  });

  it("give a project only its own servers", async () => {
    const hosts = new ToolHosts(db, box, { sandbox });
    try {
      await expect(hosts.acquire(DEFAULT_PROJECT_ID, ["theirs"])).rejects.toThrow(
        /"theirs" is not registered/,
      );
      const lease = await hosts.acquire(other, []);
      expect(Object.keys(lease.host.namespaces)).toEqual(["theirs"]);
      lease.release();
    } finally {
      await hosts.close();
    }
  });

  it("close a project's servers once no job has used them for idleMs, never while one does", async () => {
    const hosts = new ToolHosts(db, box, { idleMs: 300, sandbox });
    try {
      const first = await serverPid(hosts, DEFAULT_PROJECT_ID, "control");
      // Held by a job: not idle, however long it takes.
      await new Promise((resolve) => setTimeout(resolve, 600));
      const second = await serverPid(hosts, DEFAULT_PROJECT_ID, "control");
      expect(second.pid).toBe(first.pid);
      second.lease.release();
      expect(isAlive(first.pid)).toBe(true);
      first.lease.release();
      const until = Date.now() + 10_000;
      while (isAlive(first.pid) && Date.now() < until) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(isAlive(first.pid)).toBe(false);
      // The next job connects afresh.
      const later = await serverPid(hosts, DEFAULT_PROJECT_ID, "control");
      expect(later.pid).not.toBe(first.pid);
      later.lease.release();
    } finally {
      await hosts.close();
    }
  });

  it("end one job's wait for a slow server at its deadline; the start goes on for the others", async () => {
    const hosts = new ToolHosts(db, box, { sandbox });
    try {
      const patient = hosts.acquire(slow, ["slow"], { deadline: Date.now() + 60_000 });
      const hasty = hosts.acquire(slow, ["slow"], { deadline: Date.now() + 300, timeoutMs: 300 });
      const error = await hasty.then(
        () => undefined,
        (reason: unknown) => reason,
      );
      expect(error).toBeInstanceOf(ServerStartTimeoutError);
      expect(error).toMatchObject({ code: "timeout", servers: ["slow"] });
      expect((error as Error).message).toMatch(
        /300 ms deadline \(timeoutMs\) passed .*MCP server "slow" had not finished starting/,
      );
      const lease = await patient;
      const stats = (await lease.host.invoke({ namespace: "slow", method: "stats", args: {} })) as {
        pid: number;
      };
      lease.release();
      // One process, started once: the hasty job's deadline did not cut the start short.
      expect(readFileSync(startFile, "utf8").trim().split("\n")).toEqual([String(stats.pid)]);
    } finally {
      await hosts.close();
    }
  });

  it("give a server that does not start within the connect timeout to the job as unavailable", async () => {
    const hosts = new ToolHosts(db, box, { sandbox, connectTimeoutMs: 5_000 });
    try {
      const lease = await hosts.acquire(hanging, [], { deadline: Date.now() + 60_000 });
      lease.release();
      expect(Object.keys(lease.host.namespaces)).toEqual(["fine"]);
      expect(lease.host.unavailable).toEqual({
        stuck: {
          server: "stuck",
          message: 'MCP server "stuck" is unavailable: it did not start within 5000 ms',
        },
      });
    } finally {
      await hosts.close();
    }
  });

  it("connect only the servers the job's program names", async () => {
    const compiled = await compileProgram(
      "const stuck = 1; return await globalThis['fine'].echo({ stuck });",
      "program.ts",
    );
    if (!compiled.ok) throw new Error(compiled.error.message);
    const hosts = new ToolHosts(db, box, { sandbox, connectTimeoutMs: 60_000 });
    try {
      // `stuck` would hold the wait for a minute: the program's `stuck` is its own constant.
      const lease = await hosts.acquire(hanging, [], {
        deadline: Date.now() + 60_000,
        program: compiled.program.js,
      });
      lease.release();
      expect(Object.keys(lease.host.namespaces)).toEqual(["fine"]);
      expect(lease.host.unavailable).toBeUndefined();
    } finally {
      await hosts.close();
    }
  });
});
