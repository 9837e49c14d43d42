// Confinement of stdio MCP servers with bubblewrap (`bwrap`, Debian's `bubblewrap`): a
// registered stdio server is any command a project's admin chose, run on the API's and the
// workers' hosts, so it runs in namespaces of its own with only what it needs in view:
//
// - its own user namespace, as an unprivileged user (host uid 65534 when Turtle runs as root;
//   otherwise Turtle's own uid, mapped to 65534 inside);
// - its own PID namespace and a fresh /proc: no view of Turtle's processes or their environment;
// - a root of its own: the system's program and library directories, a few files of /etc (DNS,
//   certificates, users), Node's directory and the installation's node_modules, all read-only;
//   a private, empty HOME and /tmp; never Turtle's sources, .env or data. A registration's `cwd`
//   is an empty directory unless the operator lists it (STDIO_SANDBOX_PATHS);
// - an environment holding only PATH, HOME, TMPDIR, LANG, the host's certificate paths and the
//   registration's own `env`;
// - a network namespace of its own that reaches the outside through slirp4netns but not the
//   host's loopback (sandbox-network.ts); or, as the operator chooses, loopback only or the host's.
//
// bwrap's options travel through a pipe (`--args 3`), not its command line: the registration's
// secret env values never show in the host's process list, and bwrap itself starts with an empty
// environment, so nothing a registration sets (LD_PRELOAD, say) applies outside the sandbox.

import { type ChildProcess, spawn } from "node:child_process";
import { lstatSync, readlinkSync, statSync } from "node:fs";
import { dirname, basename as pathBasename, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { serializeMessage } from "@modelcontextprotocol/sdk/shared/stdio.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { createBoundedReadBuffer, type MessageReadBuffer } from "./bounded-reads.ts";
import type { StdioServerConfig } from "./config.ts";
import {
  isolatedNetworkOptions,
  SandboxNetworkError,
  type SlirpNetwork,
  startSlirp,
  UNSHARE,
  unshareArgs,
} from "./sandbox-network.ts";

/** A host directory every confined server sees, at the same path. */
export interface SandboxPath {
  path: string;
  writable: boolean;
}

/** How stdio servers run: confined by bubblewrap, or (the operator's explicit choice) not. */
export type StdioSandbox =
  | { kind: "none" }
  | {
      kind: "bwrap";
      /** The bwrap program. Default: `bwrap` on PATH. */
      command?: string;
      /** Host user and group the sandbox runs as when Turtle runs as root. Default 65534. */
      uid?: number;
      gid?: number;
      /**
       * `isolated` (default): a network namespace of its own, reaching the outside through
       * slirp4netns but not the host's loopback; `none`: loopback only; `host`: the host's.
       */
      network?: "isolated" | "none" | "host";
      /** The slirp4netns program (`isolated`). Default: `slirp4netns` on PATH. */
      slirp4netns?: string;
      /** Operator-chosen host directories every confined server sees. */
      paths?: readonly SandboxPath[];
      /**
       * Size of each of the server's private tmpfs mounts (/tmp and HOME), in MiB. Default 256.
       * tmpfs is memory: unsized, each would grow to half the host's RAM.
       */
      tmpMb?: number;
    };

/** Default size of a confined server's /tmp and HOME, each, in MiB. */
export const DEFAULT_SANDBOX_TMP_MB = 256;

/**
 * Resource limits (setrlimit, through util-linux's `prlimit` inside the sandbox) on the server
 * and what it starts: processes and threads of its user (a fork bomb stops there), the size of
 * any file it writes, and open files. Memory is not limited this way: V8 reserves far more address
 * space than it uses, so an RLIMIT_AS low enough to matter stops Node from starting.
 */
export const SANDBOX_RLIMITS = { nproc: 512, nofile: 4096 } as const;

/** The user servers run as inside the sandbox (nobody). */
const SANDBOX_ID = 65534;
const SANDBOX_HOME = "/home/mcp";

/** Read-only, when present: what a Node or Python program needs to run and reach the network. */
const SYSTEM_DIRS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];
const ETC_FILES = [
  "alternatives",
  "ca-certificates",
  "ca-certificates.conf",
  "gai.conf",
  "group",
  "host.conf",
  "hosts",
  "ld.so.cache",
  "ld.so.conf",
  "ld.so.conf.d",
  "localtime",
  "mime.types",
  "nsswitch.conf",
  "passwd",
  "resolv.conf",
  "ssl",
];

/**
 * The installation's node_modules: servers installed as packages live there. Found from where
 * this package's own dependency lives, so it is the hoisted one (never a workspace's sources:
 * their links in it point outside the sandbox and dangle there).
 */
function nodeModulesDir(): string | undefined {
  const sdk = fileURLToPath(import.meta.resolve("@modelcontextprotocol/sdk/types.js"));
  const at = sdk.indexOf(`${sep}node_modules${sep}`);
  return at === -1 ? undefined : sdk.slice(0, at + `${sep}node_modules`.length);
}

/** The directory holding Node (its `lib/` too when Node lives in a `bin/`: npm, npx). */
function nodeDir(): string {
  const bin = dirname(process.execPath);
  return pathBasename(bin) === "bin" ? dirname(bin) : bin;
}

/** Whether any user may reach `path`: every directory on the way lets others search it. */
function reachableByOthers(path: string): boolean {
  for (let dir = path; ; dir = dirname(dir)) {
    try {
      if ((statSync(dir).mode & 0o001) === 0) return false;
    } catch {
      return false;
    }
    if (dirname(dir) === dir) return true;
  }
}

/**
 * The host user bwrap runs as. As root, a user of the sandbox's own (65534), so that what a server
 * can read of what is bound is what any unprivileged user can — when that user can reach Node and
 * node_modules (and the operator's paths) at all. An installation under a private directory (/root, mode 0700) is out of its
 * reach: bwrap then runs as root, its user namespace still mapping the server to 65534, and the
 * server still sees only what is bound, read-only. Said once on stderr.
 */
function hostIds(
  sandbox: Extract<StdioSandbox, { kind: "bwrap" }>,
): { uid: number; gid: number } | Record<string, never> {
  if (process.getuid?.() !== 0) return {};
  const bound = [nodeDir(), nodeModulesDir(), ...(sandbox.paths ?? []).map((entry) => entry.path)];
  if (bound.every((path) => path === undefined || reachableByOthers(path)))
    return { uid: sandbox.uid ?? SANDBOX_ID, gid: sandbox.gid ?? SANDBOX_ID };
  if (!warnedHostUser) {
    warnedHostUser = true;
    process.emitWarning(
      `Turtle is installed where an unprivileged user cannot reach it (${nodeModulesDir() ?? nodeDir()}): stdio servers' sandboxes are started as root, their servers still unprivileged inside; install Turtle under a directory others may search (chmod o+x) to have them started as user ${SANDBOX_ID}`,
    );
  }
  return {};
}
let warnedHostUser = false;

function isUnder(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : `${dir}${sep}`);
}

/**
 * bwrap's options for one server (everything before the command). Exported for tests, which
 * check what a server can see.
 */
export function bwrapOptions(
  config: StdioServerConfig,
  sandbox: Extract<StdioSandbox, { kind: "bwrap" }>,
): string[] {
  // --disable-userns: a server may not make user namespaces of its own, a common first step
  // of kernel exploits.
  const options = [
    "--unshare-all",
    "--unshare-user",
    "--disable-userns",
    "--die-with-parent",
    "--new-session",
  ];
  // `isolated` shares the network namespace `unshare` made for bwrap (sandbox-network.ts).
  const network = sandbox.network ?? "isolated";
  if (network !== "none") options.push("--share-net");
  options.push("--uid", String(SANDBOX_ID), "--gid", String(SANDBOX_ID));
  // The private mounts first: what is bound after them may lie under /tmp (an installation, an
  // operator's directory) and stays in view.
  // Sized: a tmpfs is host memory, half the RAM each unless told otherwise.
  const tmpBytes = String((sandbox.tmpMb ?? DEFAULT_SANDBOX_TMP_MB) * 1024 * 1024);
  options.push("--proc", "/proc", "--dev", "/dev");
  options.push("--size", tmpBytes, "--tmpfs", "/tmp", "--size", tmpBytes, "--tmpfs", SANDBOX_HOME);

  const bound: string[] = [];
  const bind = (flag: "--ro-bind-try" | "--ro-bind" | "--bind", path: string) => {
    options.push(flag, path, path);
    bound.push(path);
  };
  for (const dir of SYSTEM_DIRS) {
    const link = symlinkTarget(dir);
    if (link !== undefined) options.push("--symlink", link, dir);
    else bind("--ro-bind-try", dir);
  }
  for (const file of ETC_FILES) {
    // Isolated, the sandbox's resolv.conf names slirp4netns's DNS forwarder instead.
    if (network === "isolated" && file === "resolv.conf") continue;
    bind("--ro-bind-try", `/etc/${file}`);
  }
  const modules = nodeModulesDir();
  if (modules !== undefined) bind("--ro-bind-try", modules);
  const node = nodeDir();
  if (!bound.some((dir) => isUnder(node, dir))) bind("--ro-bind", node);
  for (const extra of sandbox.paths ?? [])
    bind(extra.writable ? "--bind" : "--ro-bind", extra.path);

  // A cwd nobody listed is an empty directory: relative paths in args still resolve (against
  // node_modules, say), but nothing of the host's directory is in view.
  const cwd = resolve("/", config.cwd ?? SANDBOX_HOME);
  if (!bound.some((dir) => isUnder(cwd, dir)) && !isUnder(cwd, SANDBOX_HOME)) {
    options.push("--dir", cwd);
  }
  options.push("--chdir", cwd);

  options.push("--clearenv");
  const path = [`${dirname(process.execPath)}`, "/usr/local/bin", "/usr/bin", "/bin"].join(":");
  const env: Record<string, string> = {
    PATH: path,
    HOME: SANDBOX_HOME,
    TMPDIR: "/tmp",
    LANG: "C.UTF-8",
    ...trustStore(),
    ...config.env,
  };
  for (const [name, value] of Object.entries(env)) options.push("--setenv", name, value);
  if (network === "isolated") options.push(...isolatedNetworkOptions());
  return options;
}

/**
 * Where the host keeps the certificates it trusts (a proxy's own CA, say): paths, never secrets,
 * passed on so a server reaches the same HTTPS hosts Turtle does.
 */
const TRUST_STORE_VARIABLES = ["NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR"];

function trustStore(): Record<string, string> {
  const found: Record<string, string> = {};
  for (const name of TRUST_STORE_VARIABLES) {
    const value = process.env[name];
    if (value?.startsWith("/")) found[name] = value;
  }
  return found;
}

function symlinkTarget(path: string): string | undefined {
  try {
    return lstatSync(path).isSymbolicLink() ? readlinkSync(path) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The server's command line inside the sandbox, under prlimit (see SANDBOX_RLIMITS). The file
 * size limit is the tmpfs's size: no file the server may write needs to be larger. Exported for
 * tests.
 */
export function limitedCommand(
  config: StdioServerConfig,
  sandbox: Extract<StdioSandbox, { kind: "bwrap" }>,
): string[] {
  const fsize = (sandbox.tmpMb ?? DEFAULT_SANDBOX_TMP_MB) * 1024 * 1024;
  return [
    "prlimit",
    `--nproc=${SANDBOX_RLIMITS.nproc}`,
    `--nofile=${SANDBOX_RLIMITS.nofile}`,
    `--fsize=${fsize}`,
    "--",
    config.command,
    ...(config.args ?? []),
  ];
}

/** Thrown by start() when the bwrap program is missing. */
export class SandboxMissingError extends Error {
  override readonly name = "SandboxMissingError";
}

function bwrapMissing(command: string, cause: unknown): SandboxMissingError {
  return new SandboxMissingError(
    `stdio servers run confined by bubblewrap, and "${command}" is not installed: install it (apt-get install -y bubblewrap, or npm run setup as root)`,
    { cause },
  );
}

/**
 * The MCP SDK's stdio transport, spawning the server inside bwrap. A transport of our own
 * because the SDK's cannot hand the child a third pipe (for `--args`) nor spawn it as another
 * user; the framing is the SDK's own (serializeMessage, and a capped ReadBuffer).
 */
export class BwrapStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  private child: ChildProcess | undefined;
  private network: SlirpNetwork | undefined;
  private drained: Promise<void> | undefined;
  private readonly buffer: MessageReadBuffer;
  private readonly config: StdioServerConfig;
  private readonly sandbox: Extract<StdioSandbox, { kind: "bwrap" }>;
  private readonly onStderr: (chunk: Buffer) => void;

  constructor(
    config: StdioServerConfig,
    sandbox: Extract<StdioSandbox, { kind: "bwrap" }>,
    onStderr: (chunk: Buffer) => void,
    maxMessageBytes: number,
  ) {
    // Capped as the SDK transport is (bounded-reads.ts): one huge line fails only its call.
    this.buffer = createBoundedReadBuffer(maxMessageBytes);
    this.config = config;
    this.sandbox = sandbox;
    this.onStderr = onStderr;
  }

  async start(): Promise<void> {
    if (this.child) throw new Error("BwrapStdioTransport already started");
    const options = bwrapOptions(this.config, this.sandbox);
    for (const option of options) {
      if (option.includes("\0")) throw new Error("an env value or path holds a NUL character");
    }
    const command = this.sandbox.command ?? "bwrap";
    const isolated = (this.sandbox.network ?? "isolated") === "isolated";
    const bwrapArgs = ["--args", "3", "--", ...limitedCommand(this.config, this.sandbox)];
    const child = spawn(
      isolated ? UNSHARE : command,
      isolated ? [...unshareArgs(SANDBOX_ID, command), ...bwrapArgs] : bwrapArgs,
      {
        env: {},
        // 3: bwrap's options; isolated, 4 to 6 too (sandbox-network.ts).
        stdio: isolated
          ? ["pipe", "pipe", "pipe", "pipe", "pipe", "pipe", "pipe"]
          : ["pipe", "pipe", "pipe", "pipe"],
        // As root, the sandbox gets a host user of its own where it can (see hostIds).
        ...hostIds(this.sandbox),
        // The host's cwd stays Turtle's; bwrap's --chdir sets the server's.
        cwd: "/",
      },
    );
    this.child = child;
    const args = child.stdio[3] as NodeJS.WritableStream | null;
    args?.on("error", () => {});
    args?.end(`${options.join("\0")}\0`);
    child.stderr?.on("data", this.onStderr);
    child.stdin?.on("error", (error) => this.onerror?.(error));
    child.stdout?.on("error", (error) => this.onerror?.(error));
    child.stdout?.on("data", (chunk: Buffer) => {
      this.buffer.append(chunk);
      for (;;) {
        let message: JSONRPCMessage | null;
        try {
          message = this.buffer.readMessage();
        } catch (error) {
          this.onerror?.(error as Error);
          continue;
        }
        if (message === null) break;
        this.onmessage?.(message);
      }
    });
    child.on("close", () => {
      this.network?.stop();
      this.child = undefined;
      this.onclose?.();
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (error: NodeJS.ErrnoException) => {
        reject(
          error.code === "ENOENT" && error.path === command ? bwrapMissing(command, error) : error,
        );
      });
    });
    if (!isolated) return;
    try {
      this.network = await startSlirp(child, this.sandbox.slirp4netns ?? "slirp4netns", (why) => {
        // Without slirp4netns the server has no network left: end it rather than leave it
        // half-working.
        this.onerror?.(new SandboxNetworkError(why));
        child.kill("SIGKILL");
      });
    } catch (error) {
      child.kill("SIGKILL");
      // unshare says 127 when it found no bwrap to run.
      throw child.exitCode === 127 ? bwrapMissing(command, error) : error;
    }
  }

  async send(message: JSONRPCMessage): Promise<void> {
    const stdin = this.child?.stdin;
    if (!stdin) throw new Error("Not connected");
    if (stdin.write(serializeMessage(message))) return;
    // One wait for every send that found the pipe full (a thousand concurrent calls would
    // otherwise add a thousand listeners).
    this.drained ??= new Promise<void>((resolve) =>
      stdin.once("drain", () => {
        this.drained = undefined;
        resolve();
      }),
    );
    await this.drained;
  }

  async close(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    this.buffer.clear();
    if (!child) return;
    const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
    const settle = (ms: number) =>
      Promise.race([closed, new Promise<void>((r) => setTimeout(r, ms).unref())]);
    // As the SDK does: end stdin, then SIGTERM, then SIGKILL (bwrap's --die-with-parent takes the
    // sandbox's processes with it).
    child.stdin?.end();
    await settle(2_000);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await settle(2_000);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
}
