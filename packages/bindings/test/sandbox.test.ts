// Stdio servers confined by bubblewrap: the servers Turtle's demo and tests use still start, and a
// hostile one finds none of the platform's secrets — not in its environment, not in any
// process's under /proc, not in a .env — and whatever a server says is quoted without them.
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import {
  type ClientPool,
  createClientPool,
  loadMcpServersFile,
  type McpServerConfig,
  REDACTED,
  ServerUnavailableError,
  type StdioSandbox,
  setProcessSecrets,
  ToolError,
} from "../src/index.ts";
import {
  CONTROL_SERVER,
  controlServer,
  EVERYTHING_SERVER,
  MEMORY_SERVER,
  nodeServer,
  SLOW,
  tempDir,
} from "./helpers.ts";

const SERVERS_DIR = dirname(CONTROL_SERVER);
const HOSTILE_SERVER = join(SERVERS_DIR, "hostile-server.ts");
const FILESYSTEM_SERVER = createRequire(import.meta.url).resolve(
  "@modelcontextprotocol/server-filesystem/dist/index.js",
);
const EXAMPLES = fileURLToPath(new URL("../../../examples/mcp-servers.json", import.meta.url));

/** The tests' own servers live in the repository, which confined servers do not see. */
const confined: StdioSandbox = {
  kind: "bwrap",
  paths: [{ path: SERVERS_DIR, writable: false }],
};

// What this process holds, as the API and workers hold theirs: an unconfined server could read it
// from /proc/<ppid>/environ.
const FAKE = {
  SECRETS_KEY: "c2VjcmV0cy1rZXktb2YtdGhlLXRlc3QtcHJvY2Vzcy0x",
  DATABASE_URL: "postgresql://turtle:db-password-of-the-test@127.0.0.1:5432/turtle",
  TURTLE_API_KEY: `tt_${"k".repeat(43)}`,
};
Object.assign(process.env, FAKE);
const dir = tempDir();
const dotenv = join(dir.path, ".env");
writeFileSync(dotenv, `SECRETS_KEY=${FAKE.SECRETS_KEY}\nDOTENV_MARKER=dotenv-file-was-read\n`);
chmodSync(dotenv, 0o600);

const pools: ClientPool[] = [];
function pool(servers: Record<string, McpServerConfig>, sandbox: StdioSandbox = confined) {
  const created = createClientPool(servers, { sandbox, connectTimeoutMs: 30_000 });
  pools.push(created);
  return created;
}
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
  setProcessSecrets([]);
  for (const name of Object.keys(FAKE)) delete process.env[name];
  dir.remove();
});

interface Loot {
  uid: number;
  nestedUserNamespace: boolean;
  cwd: string;
  env: Record<string, string>;
  processes: Record<string, { environ?: string; cmdline?: string }>;
  files: Record<string, string>;
  postgres: { connected: boolean };
}

async function loot(sandbox: StdioSandbox): Promise<Loot> {
  const hostile = pool(
    {
      // Registered to work beside the .env: in the sandbox its cwd is an empty directory.
      hostile: {
        ...nodeServer(HOSTILE_SERVER, [`--probe=${dotenv}`], { TENANT_TOKEN: "tenant-own-1" }),
        cwd: dir.path,
      },
    },
    sandbox,
  );
  return (await hostile.callTool("hostile", "loot", {})) as Loot;
}

describe("confined stdio servers", { timeout: SLOW }, () => {
  it("still start: the tests' control server, server-everything, server-memory and the demo's file", async () => {
    const servers = pool({
      control: controlServer(),
      everything: nodeServer(EVERYTHING_SERVER, ["stdio"]),
      memory: nodeServer(MEMORY_SERVER, [], { MEMORY_FILE_PATH: "/tmp/memory.jsonl" }),
    });
    expect(await servers.callTool("control", "echo", { a: 1 })).toEqual({ a: 1 });
    expect(await servers.callTool("everything", "get-sum", { a: 2, b: 3 })).toMatch(/5/);
    await servers.callTool("memory", "create_entities", {
      entities: [{ name: "a", entityType: "t", observations: ["o"] }],
    });
    expect(await servers.callTool("memory", "read_graph", {})).toMatchObject({
      entities: [{ name: "a" }],
    });
    // The demo's file: `node ../node_modules/…` from the examples directory.
    const demo = pool(await loadMcpServersFile(EXAMPLES));
    expect((await demo.listTools("everything")).length).toBeGreaterThan(5);
    expect((await demo.listTools("memory")).map((tool) => tool.name)).toContain("read_graph");
  });

  it("see the directories the operator lists (read-only, or writable), and no other", async () => {
    const shared = tempDir();
    try {
      // As root, confined servers are uid 65534: what they see must be reachable by it.
      chmodSync(shared.path, 0o755);
      mkdirSync(join(shared.path, "docs"));
      writeFileSync(join(shared.path, "docs", "readme.txt"), "hello");
      mkdirSync(join(shared.path, "state"));
      if (process.getuid?.() === 0) chownSync(join(shared.path, "state"), 65_534, 65_534);
      const memoryFile = join(shared.path, "state", "memory.jsonl");
      const servers = pool(
        {
          files: nodeServer(FILESYSTEM_SERVER, [join(shared.path, "docs")]),
          memory: nodeServer(MEMORY_SERVER, [], { MEMORY_FILE_PATH: memoryFile }),
          unlisted: nodeServer(FILESYSTEM_SERVER, [dir.path]),
        },
        {
          ...confined,
          paths: [
            ...(confined.kind === "bwrap" ? (confined.paths ?? []) : []),
            { path: join(shared.path, "docs"), writable: false },
            { path: join(shared.path, "state"), writable: true },
          ],
        },
      );
      const listed = await servers.callTool("files", "list_directory", {
        path: join(shared.path, "docs"),
      });
      expect(JSON.stringify(listed)).toContain("readme.txt");
      const write = await servers
        .callTool("files", "write_file", { path: join(shared.path, "docs", "x.txt"), content: "x" })
        .catch((error: unknown) => error);
      expect(write).toBeInstanceOf(ToolError);
      await servers.callTool("memory", "create_entities", {
        entities: [{ name: "kept", entityType: "t", observations: [] }],
      });
      expect(readFileSync(memoryFile, "utf8")).toContain("kept");
      // A directory nobody listed (the one holding this file's .env) is not there at all.
      const unlisted = await servers.listTools("unlisted").catch((error: unknown) => error);
      expect(unlisted).toBeInstanceOf(ServerUnavailableError);
    } finally {
      shared.remove();
    }
  });

  it("give a hostile server none of the platform's secrets: env, /proc, .env", async () => {
    const found = await loot(confined);
    const text = JSON.stringify(found);
    for (const secret of Object.values(FAKE)) expect(text).not.toContain(secret);
    expect(text).not.toContain("dotenv-file-was-read");
    // Its environment is what its registration set, and harmless basics (the host's certificate
    // paths, where it has them).
    const trust = ["NODE_EXTRA_CA_CERTS", "SSL_CERT_DIR", "SSL_CERT_FILE"];
    expect(
      Object.keys(found.env)
        .filter((name) => !trust.includes(name))
        .sort(),
    ).toEqual(["HOME", "LANG", "PATH", "PWD", "TENANT_TOKEN", "TMPDIR"]);
    // Its own PID namespace: a handful of processes, all its own sandbox's.
    expect(Object.keys(found.processes).length).toBeLessThan(5);
    expect(found.files[dotenv]).toMatch(/^unreadable: ENOENT/);
    expect(found.cwd).toBe(dir.path);
    expect(found.nestedUserNamespace).toBe(false);
    expect(found.uid).toBe(65534);
  });

  it("reaches the host's network unless it is unshared: Postgres with trust auth is in reach", async () => {
    // The truth on a host whose Postgres trusts local TCP connections: a confined server on the
    // host's network connects (the README says so); with STDIO_SANDBOX_NETWORK=none it cannot.
    expect((await loot(confined)).postgres.connected).toBe(true);
    expect((await loot({ ...confined, network: "none" })).postgres.connected).toBe(false);
  });

  it("fail closed, saying to install bubblewrap, when bwrap is missing", async () => {
    const missing = pool(
      { control: controlServer() },
      { kind: "bwrap", command: "/nonexistent/bwrap" },
    );
    const error = await missing.listTools("control").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServerUnavailableError);
    expect((error as Error).message).toMatch(
      /not installed: install it \(apt-get install -y bubblewrap/,
    );
  });
});

describe("what Turtle quotes from a server", { timeout: SLOW }, () => {
  it("never holds the platform's secrets, nor any API key, nor the server's own", async () => {
    setProcessSecrets(Object.values(FAKE));
    const words = `${FAKE.SECRETS_KEY} ${FAKE.DATABASE_URL} tt_${"z".repeat(43)} own-secret-1`;
    const crashing = pool({
      control: nodeServer(CONTROL_SERVER, [`--fail-on-start=boom: ${words}`], {
        OWN: "own-secret-1",
      }),
    });
    const startup = (await crashing
      .listTools("control")
      .catch((e: unknown) => e)) as ServerUnavailableError;
    expect(startup).toBeInstanceOf(ServerUnavailableError);
    expect(startup.message).toContain("boom:");
    for (const text of [startup.message, startup.stderr ?? ""]) {
      for (const secret of [...Object.values(FAKE), "own-secret-1", `tt_${"z".repeat(43)}`]) {
        expect(text).not.toContain(secret);
      }
      expect(text).toContain(REDACTED);
    }
    // Causes too, which loggers print (pino adds their messages and stacks).
    const wrapped = new ServerUnavailableError("control", "lost", {
      cause: new Error(`said ${FAKE.SECRETS_KEY}`, { cause: new Error(FAKE.DATABASE_URL) }),
    });
    const cause = wrapped.cause as Error;
    expect(`${cause.message} ${cause.stack}`).not.toContain(FAKE.SECRETS_KEY);
    expect((cause.cause as Error).message).toBe(REDACTED);

    // Tool errors, tool results and tool lists of a server that found them.
    const echo = pool({ control: controlServer() });
    const result = await echo.callTool("control", "echo", { said: words });
    expect(JSON.stringify(result)).not.toContain(FAKE.SECRETS_KEY);
    expect(JSON.stringify(result)).not.toContain("tt_zzz");
    const failed = await echo
      .callTool("control", "fail", { message: words })
      .catch((e: unknown) => e);
    expect(failed).toBeInstanceOf(ToolError);
    expect((failed as Error).message).not.toContain(FAKE.DATABASE_URL);
    setProcessSecrets([]);
  });
});

// The same hostile server without the sandbox: what the tests above would find before it.
describe("an unconfined stdio server", { timeout: SLOW }, () => {
  it("reads the platform's secrets from its parent's /proc entry and the .env", async () => {
    const text = JSON.stringify(await loot({ kind: "none" }));
    expect(text).toContain(FAKE.SECRETS_KEY);
    expect(text).toContain("dotenv-file-was-read");
  });
});
