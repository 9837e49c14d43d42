// Stdio servers confined by bubblewrap: the servers Turtle's demo and tests use still start, and a
// hostile one finds none of the platform's secrets — not in its environment, not in any
// process's under /proc, not in a .env — and whatever a server says is quoted without them.
import { spawn } from "node:child_process";
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { type AddressInfo, createServer } from "node:net";
import { networkInterfaces } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CONTROL_SERVER,
  controlServer,
  EVERYTHING_SERVER,
  eventually,
  MEMORY_SERVER,
  nodeServer,
  SLOW,
  tempDir,
} from "@turtle/test-support";
import { afterAll, describe, expect, it } from "vitest";
import {
  bwrapOptions,
  type ClientPool,
  createClientPool,
  limitedCommand,
  loadMcpServersFile,
  type McpServerConfig,
  REDACTED,
  ServerUnavailableError,
  type StdioSandbox,
  setProcessSecrets,
  ToolError,
} from "../src/index.ts";

const SERVERS_DIR = dirname(CONTROL_SERVER);
const HOSTILE_SERVER = join(SERVERS_DIR, "hostile-server.ts");
const FILESYSTEM_SERVER = createRequire(import.meta.url).resolve(
  "@modelcontextprotocol/server-filesystem/dist/index.js",
);
const POOL_HOLDER = join(SERVERS_DIR, "pool-holder.ts");
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

interface ProcessEntry {
  pid: number;
  ppid: number;
  comm: string;
  state: string;
}

function processes(): ProcessEntry[] {
  const found: ProcessEntry[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so read after the last ")".
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const [state = "", ppid = "0"] = stat.slice(close + 2).split(" ");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      found.push({ pid: Number(entry), ppid: Number(ppid), comm, state });
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

/** The sandboxes (bwrap) and slirp4netns processes a process started. */
function sandboxProcesses(parent: number): ProcessEntry[] {
  return processes().filter(
    (found) =>
      found.ppid === parent &&
      found.state !== "Z" &&
      (found.comm === "bwrap" || found.comm === "slirp4netns"),
  );
}

function newSince(before: ProcessEntry[], now: ProcessEntry[]): ProcessEntry[] {
  return now.filter((found) => !before.some((old) => old.pid === found.pid));
}

function descendants(pid: number): number[] {
  const all = processes();
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    const parent = queue.shift();
    for (const child of all.filter((entry) => entry.ppid === parent)) {
      found.push(child.pid);
      queue.push(child.pid);
    }
  }
  return found;
}

/** Alive and not a zombie waiting for its parent (a container's init may never reap it). */
function running(pid: number): boolean {
  try {
    return !/^\S+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

interface Loot {
  uid: number;
  nestedUserNamespace: boolean;
  cwd: string;
  env: Record<string, string>;
  processes: Record<string, { environ?: string; cmdline?: string }>;
  files: Record<string, string>;
  postgres: { connected: boolean; error?: string };
  redis: { connected: boolean; said?: string; error?: string };
  reached: Record<string, { connected: boolean; said?: string; error?: string }>;
}

async function loot(sandbox: StdioSandbox, reach: string[] = []): Promise<Loot> {
  const args = [`--probe=${dotenv}`, ...reach.map((target) => `--reach=${target}`)];
  const hostile = pool(
    {
      // Registered to work beside the .env: in the sandbox its cwd is an empty directory.
      hostile: {
        ...nodeServer(HOSTILE_SERVER, args, { TENANT_TOKEN: "tenant-own-1" }),
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
      // Writable by whichever host user the sandbox runs as (see hostIds).
      chmodSync(join(shared.path, "state"), 0o777);
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

  it("reach the outside through their own network, but not the host's loopback: Postgres, Redis", async () => {
    // A TCP service on the host's own non-loopback address stands for "the outside": what a
    // server reaches through slirp4netns's NAT, as it would reach an API on the internet.
    const address = Object.values(networkInterfaces())
      .flat()
      .find((found) => found?.family === "IPv4" && !found.internal)?.address;
    const outside = createServer((socket) => socket.end("hello from outside\n"));
    if (address !== undefined) {
      await new Promise<void>((resolve) => outside.listen(0, address, resolve));
    }
    try {
      const target =
        address === undefined ? [] : [`${address}:${(outside.address() as AddressInfo).port}`];
      const found = await loot(confined, target);
      // Postgres trusts local TCP connections on this host, and Redis asks no password: the
      // default sandbox reaches neither.
      expect(found.postgres).toMatchObject({ connected: false });
      expect(found.postgres.error).toMatch(/ECONNREFUSED|ENETUNREACH|EHOSTUNREACH/);
      expect(found.redis).toMatchObject({ connected: false });
      expect(found.redis.error).toMatch(/ECONNREFUSED|ENETUNREACH|EHOSTUNREACH/);
      if (address === undefined) {
        console.warn("no non-loopback IPv4 address on this machine: outbound reach not checked");
      } else {
        expect(found.reached[target[0] ?? ""]).toEqual({
          connected: true,
          said: "hello from outside",
        });
      }
      // Loopback only: nothing beyond it.
      const none = await loot({ ...confined, network: "none" }, target);
      expect(none.postgres.connected).toBe(false);
      for (const reached of Object.values(none.reached)) expect(reached.connected).toBe(false);
      // The host's network, the operator's explicit choice: Postgres with trust auth is open.
      expect((await loot({ ...confined, network: "host" })).postgres.connected).toBe(true);
    } finally {
      outside.close();
    }
  });

  it("leave no process behind: when the server exits, when Turtle closes it, when slirp4netns or Turtle is SIGKILLed", async () => {
    // The server exits on its own: its sandbox and its slirp4netns go with it.
    const before = sandboxProcesses(process.pid);
    const exiting = pool({ control: controlServer() });
    await exiting.callTool("control", "noop", {});
    const started = newSince(before, sandboxProcesses(process.pid));
    expect(started.map((found) => found.comm).sort()).toEqual(["bwrap", "slirp4netns"]);
    await exiting.callTool("control", "exit", { code: 0 }).catch(() => undefined);
    await eventually("the sandbox and slirp4netns to exit", () =>
      started.some((found) => running(found.pid)) ? undefined : true,
    );

    // Turtle closes the connection.
    const closing = pool({ control: controlServer() });
    await closing.callTool("control", "noop", {});
    const open = newSince(before, sandboxProcesses(process.pid));
    expect(open).toHaveLength(2);
    await closing.close();
    await eventually("the sandbox and slirp4netns to exit", () =>
      open.some((found) => running(found.pid)) ? undefined : true,
    );

    // slirp4netns dies first: the server, left without its network, is ended too.
    const orphaned = pool({ control: controlServer() });
    await orphaned.callTool("control", "noop", {});
    const pair = newSince(before, sandboxProcesses(process.pid));
    process.kill(pair.find((found) => found.comm === "slirp4netns")?.pid ?? 0, "SIGKILL");
    await eventually("the sandbox to exit", () =>
      pair.some((found) => running(found.pid)) ? undefined : true,
    );

    // Turtle's process is SIGKILLed (a worker killed by the OOM killer, say).
    const holder = spawn(process.execPath, [POOL_HOLDER], { stdio: ["ignore", "pipe", "inherit"] });
    try {
      await eventually("the holder to start its server", () =>
        holder.stdout?.read()?.toString().includes("ready") ? true : undefined,
      );
      const held = sandboxProcesses(holder.pid ?? 0);
      expect(held.map((found) => found.comm).sort()).toEqual(["bwrap", "slirp4netns"]);
      const server = descendants(held.find((found) => found.comm === "bwrap")?.pid ?? 0);
      expect(server.length).toBeGreaterThan(0);
      holder.kill("SIGKILL");
      const all = [...held.map((found) => found.pid), ...server];
      await eventually("the sandbox, the server and slirp4netns to exit", () =>
        all.some(running) ? undefined : true,
      );
    } finally {
      holder.kill("SIGKILL");
    }
  });

  it("hold a server's /tmp and HOME to their size, and its processes and files to their limits", async () => {
    // Run as the transport runs a server (same options, same prlimit), with a shell instead of
    // an MCP server, so what it met can be read from its output.
    const sandbox = { kind: "bwrap", network: "none", tmpMb: 16 } as const;
    // Files of 4 MiB each (under the file size limit) until 32 MiB, in each mount: the mount's
    // size stops them. Then one file past the file size limit.
    const fill = (dir: string) =>
      `for i in 1 2 3 4 5 6 7 8; do dd if=/dev/zero of=${dir}/f$i bs=1M count=4 2>&1 | grep -i space; done; echo ${dir}=$(cat ${dir}/f* | wc -c)`;
    const script = [
      fill("/tmp"),
      fill("$HOME"),
      "rm -f /tmp/f*; (dd if=/dev/zero of=/tmp/big bs=1M count=17 2>&1) | head -n 1",
      "grep -E 'Max (processes|open files|file size)' /proc/self/limits",
    ].join("; ");
    const config = { command: "sh", args: ["-c", script] };
    const child = spawn("bwrap", ["--args", "3", "--", ...limitedCommand(config, sandbox)], {
      stdio: ["ignore", "pipe", "pipe", "pipe"],
      ...(process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {}),
    });
    (child.stdio[3] as NodeJS.WritableStream).end(`${bwrapOptions(config, sandbox).join("\0")}\0`);
    let output = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      output += chunk;
    });
    await new Promise((resolve) => child.once("close", resolve));
    expect(output).toMatch(/No space left on device/);
    const tmp = Number(/\/tmp=(\d+)/.exec(output)?.[1]);
    const home = Number(/\/home\/mcp=(\d+)/.exec(output)?.[1]);
    expect(tmp).toBeGreaterThan(0);
    expect(tmp).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(home).toBeGreaterThan(0);
    expect(home).toBeLessThanOrEqual(16 * 1024 * 1024);
    expect(output).toMatch(/File (size limit exceeded|too large)/);
    expect(output).toMatch(/Max processes\s+512\s+512/);
    expect(output).toMatch(/Max open files\s+4096\s+4096/);
    expect(output).toMatch(new RegExp(`Max file size\\s+${16 * 1024 * 1024}\\s`));
  });

  it("fail closed, saying to install slirp4netns, when it is missing", async () => {
    const missing = pool(
      { control: controlServer() },
      { ...confined, slirp4netns: "/nonexistent/slirp4netns" },
    );
    const error = await missing.listTools("control").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ServerUnavailableError);
    expect((error as Error).message).toMatch(
      /"\/nonexistent\/slirp4netns" is not installed: install it \(apt-get install -y slirp4netns/,
    );
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
