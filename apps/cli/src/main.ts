import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { buildApp, createFacade, localAuth, loggerOptions } from "@turtle/api";
import {
  type ClientPool,
  createClientPool,
  createToolHost,
  loadMcpServersFile,
  renderDeclarations,
} from "@turtle/bindings";
import { loadConfig } from "@turtle/core";
import { type RunError, runProgram } from "@turtle/sandbox";
import { control, formatLogLine, listJobs, logs, submit } from "./job-commands.ts";
import { createKey, listKeys, revokeKey } from "./key-commands.ts";
import { RemoteError, remoteFrom } from "./remote.ts";

const USAGE = `Usage:
  turtle exec <program.ts> [--servers <mcpServers.json>] [--input <json | @file.json>]
                          [--timeout <ms>] [--memory <mb>]
  turtle types [--servers <mcpServers.json>]
  turtle mcp [--servers <mcpServers.json>]
  turtle submit <program.ts> [--wait] [--input <json | @file.json>] [--servers a,b]
                            [--timeout <ms>] [--memory <mb>]
  turtle jobs [--status <status>] [--limit <n>]
  turtle logs [-f] <job id>
  turtle cancel <job id>
  turtle resume <job id> [--code <program.ts>] [--wait]
  turtle keys [--revoked] | keys create <name> --scopes <submit,read,admin> | keys revoke <id>

exec   runs one program in a fresh isolate with the servers' tools as globals: the result as
       JSON on stdout, console output on stderr; exit 0 on success, 1 when the program fails.
types  prints the TypeScript declarations of the servers' tools.
mcp    serves Turtle's MCP tools (search_tools, execute, get_job) over stdio, for local MCP
       clients: programs run as jobs on the platform's queue and workers (DATABASE_URL and
       REDIS_URL from the environment or .env; start workers with "npm start" or "npm run
       worker"). --servers registers that file's servers first, as MCP_SERVERS_FILE does.

keys   lists, creates or revokes the API keys of the --key's project (it must be an admin key);
       a new key is printed once, on stdout.
submit, jobs, logs, cancel, resume and keys talk to a running Turtle: --url (or TURTLE_URL, default
http://127.0.0.1:$PORT) and --key (or TURTLE_API_KEY), from the environment or .env.
submit --wait shows a live progress line and the job's logs on stderr, then its result on
stdout; logs -f follows a running job's lines until it ends.`;

/** A mistake in how turtle was called: one line on stderr, exit 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stderr is a terminal (a progress line then redraws in place). */
  tty?: boolean;
}

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  tty: process.stderr.isTTY === true,
};

export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "exec":
        return await exec(rest, io);
      case "types":
        return await types(rest, io);
      case "mcp":
        return await mcp(rest, io);
      case "submit":
      case "jobs":
      case "logs":
      case "cancel":
      case "resume":
        return await jobCommand(command, rest, io);
      case "keys":
        return await keysCommand(rest, io);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        io.stdout(`${USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}"; try "turtle help"`);
    }
  } catch (error) {
    io.stderr(`turtle: ${oneLine(error)}\n`);
    // What the API refused (no such job, bad code…) is the job's failure, not the command's.
    return error instanceof RemoteError ? 1 : 2;
  }
}

type Flags = Record<string, { type: "string" }>;
type MixedFlags = Record<string, { type: "string" | "boolean"; short?: string }>;

function parse(args: string[], options: Flags) {
  return parseMixed(args, options) as {
    values: Record<string, string | undefined>;
    positionals: string[];
  };
}

function parseMixed(args: string[], options: MixedFlags) {
  try {
    const parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
    return parsed as {
      values: Record<string, string | boolean | undefined>;
      positionals: string[];
    };
  } catch (error) {
    throw new UsageError(`${oneLine(error)} (see "turtle help")`);
  }
}

async function exec(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, {
    servers: { type: "string" },
    input: { type: "string" },
    timeout: { type: "string" },
    memory: { type: "string" },
  });
  const [file, ...extra] = positionals;
  if (file === undefined)
    throw new UsageError("exec needs a program file: turtle exec <program.ts>");
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const code = await readText(file, "program");
  const input = await parseInput(values.input);
  const limits = {
    ...positiveInt(values.timeout, "--timeout", "timeoutMs"),
    ...positiveInt(values.memory, "--memory", "memoryMb"),
  };

  const pool = await openPool(values.servers);
  try {
    const host = await createToolHost(pool);
    const run = await runProgram(code, {
      input,
      namespaces: host.namespaces,
      invoke: (call) => host.invoke(call),
      limits,
      filename: file,
      onLog: (entry) => io.stderr(formatLogLine(entry)),
    });
    if (run.ok) {
      io.stdout(`${JSON.stringify(run.result, null, 2)}\n`);
      return 0;
    }
    io.stderr(formatRunError(run.error, file));
    return 1;
  } finally {
    await pool.close();
  }
}

async function types(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { servers: { type: "string" } });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  const pool = await openPool(values.servers);
  try {
    const host = await createToolHost(pool);
    io.stdout(renderDeclarations(host.catalog));
    return 0;
  } finally {
    await pool.close();
  }
}

async function mcp(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parse(args, { servers: { type: "string" } });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (values.servers !== undefined) await readText(values.servers, "servers file");
  if (existsSync(".env")) process.loadEnvFile(".env");
  const env = { ...process.env };
  if (values.servers !== undefined) env.MCP_SERVERS_FILE = values.servers;
  const config = loadConfig(env);
  let app: Awaited<ReturnType<typeof buildApp>>;
  try {
    // stdout carries the protocol: logs go to stderr.
    app = await buildApp({ config, logger: { ...loggerOptions(config), stream: process.stderr } });
    await app.ready();
  } catch (error) {
    io.stderr(`turtle: cannot start: ${oneLine(error)}\n`);
    return 1;
  }
  // Over stdio, with no key: the operator's own access to the default project.
  const server = createFacade(app, localAuth(config));
  const closed = new Promise<void>((resolve) => {
    server.onclose = resolve;
  });
  await server.connect(new StdioServerTransport());
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => server.close().catch(() => {}));
  }
  // The client ends the session by closing our stdin.
  process.stdin.once("end", () => server.close().catch(() => {}));
  await closed;
  await app.close();
  return 0;
}

const REMOTE_FLAGS: MixedFlags = { url: { type: "string" }, key: { type: "string" } };

async function jobCommand(
  command: "submit" | "jobs" | "logs" | "cancel" | "resume",
  args: string[],
  io: CliIo,
): Promise<number> {
  const flags: MixedFlags = {
    submit: {
      wait: { type: "boolean" },
      input: { type: "string" },
      servers: { type: "string" },
      timeout: { type: "string" },
      memory: { type: "string" },
    },
    jobs: { status: { type: "string" }, limit: { type: "string" } },
    logs: { follow: { type: "boolean", short: "f" } },
    cancel: {},
    resume: { code: { type: "string" }, wait: { type: "boolean" } },
  }[command] as MixedFlags;
  const { values, positionals } = parseMixed(args, { ...REMOTE_FLAGS, ...flags });
  const text = (name: string) => values[name] as string | undefined;
  const remote = remoteFrom({ url: text("url"), key: text("key") });
  const [target, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  if (command === "jobs") {
    if (target !== undefined) throw new UsageError(`unexpected argument "${target}"`);
    return listJobs(remote, { status: text("status"), limit: text("limit") }, io);
  }
  if (target === undefined) {
    const what = command === "submit" ? "a program file" : "a job id";
    throw new UsageError(
      `${command} needs ${what}: turtle ${command} <${command === "submit" ? "program.ts" : "job id"}>`,
    );
  }
  switch (command) {
    case "submit": {
      const input = text("input");
      const servers = text("servers");
      const body = {
        code: await readText(target, "program"),
        ...(input === undefined ? {} : { input: await parseInput(input) }),
        ...(servers === undefined
          ? {}
          : { servers: servers.split(",").map((name) => name.trim()) }),
        ...positiveInt(text("timeout"), "--timeout", "timeoutMs"),
        ...positiveInt(text("memory"), "--memory", "memoryMb"),
      };
      return submit(remote, body, values.wait === true, io);
    }
    case "logs":
      return logs(remote, target, values.follow === true, io);
    case "cancel":
      return control(remote, "cancel", target, {}, false, io);
    case "resume": {
      const code = text("code");
      const body = code === undefined ? {} : { code: await readText(code, "program") };
      return control(remote, "resume", target, body, values.wait === true, io);
    }
  }
}

async function keysCommand(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseMixed(args, {
    ...REMOTE_FLAGS,
    scopes: { type: "string" },
    revoked: { type: "boolean" },
  });
  const text = (name: string) => values[name] as string | undefined;
  const remote = remoteFrom({ url: text("url"), key: text("key") });
  const [action, target, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
  switch (action) {
    case undefined:
    case "list":
      if (target !== undefined) throw new UsageError(`unexpected argument "${target}"`);
      return listKeys(remote, values.revoked === true, io);
    case "create": {
      const scopes = text("scopes");
      if (target === undefined || scopes === undefined) {
        throw new UsageError(
          "keys create needs a name and scopes: turtle keys create <name> --scopes submit,read",
        );
      }
      return createKey(
        remote,
        target,
        scopes.split(",").map((scope) => scope.trim()),
        io,
      );
    }
    case "revoke":
      if (target === undefined)
        throw new UsageError("keys revoke needs a key id: turtle keys revoke <id>");
      return revokeKey(remote, target, io);
    default:
      throw new UsageError(`unknown keys action "${action}": list, create or revoke`);
  }
}

/**
 * The user's own servers, from their own `mcpServers` file, on their own machine: run as their MCP
 * client runs them, unconfined. (The platform confines the servers projects register.)
 */
const LOCAL = { sandbox: { kind: "none" } } as const;

async function openPool(serversFile: string | undefined): Promise<ClientPool> {
  if (serversFile === undefined) return createClientPool({}, LOCAL);
  await readText(serversFile, "servers file");
  return createClientPool(await loadMcpServersFile(serversFile), LOCAL);
}

async function readText(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const reason =
      code === "ENOENT" ? "no such file" : code === "EISDIR" ? "it is a directory" : oneLine(error);
    throw new UsageError(`cannot read ${what} "${path}": ${reason}`);
  }
}

async function parseInput(raw: string | undefined): Promise<unknown> {
  if (raw === undefined) return null;
  const fromFile = raw.startsWith("@");
  const text = fromFile ? await readText(raw.slice(1), "input file") : raw;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(
      `--input is not valid JSON${fromFile ? ` (${raw.slice(1)})` : ""}: ${oneLine(error)}`,
    );
  }
}

function positiveInt(raw: string | undefined, flag: string, key: "timeoutMs" | "memoryMb") {
  if (raw === undefined) return {};
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new UsageError(`${flag} must be a positive whole number, got "${raw}"`);
  }
  return { [key]: value };
}

function formatRunError(error: RunError, file: string): string {
  const where = error.line === null ? file : `${file}:${error.line}:${error.column ?? 1}`;
  const origin =
    error.server === undefined ? "" : ` (server "${error.server}", tool "${error.tool}")`;
  const stack = error.stack
    ?.split("\n")
    .filter((line) => /^\s+at /.test(line))
    .join("\n");
  return `${where} ${error.name}: ${error.message}${origin}\n${stack ? `${stack}\n` : ""}`;
}

function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0] ?? text;
}
