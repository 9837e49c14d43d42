// The network of a confined server under STDIO_SANDBOX_NETWORK=isolated: a network namespace of
// its own, reaching the outside through slirp4netns (Debian's `slirp4netns`), a user-mode TCP/IP
// stack that NATs the namespace's traffic through sockets Turtle's user opens on the host. With
// --disable-host-loopback it refuses connections to the host's 127.0.0.1, where Postgres, Redis
// and Turtle's API listen and often trust whoever connects; the outside world stays in reach.
//
// slirp4netns must enter the user namespace that owns the network namespace, and bwrap hides its
// own (the server lives in nested ones: --dev and --disable-userns each add one, and a process
// there has no say over the network namespace). So the namespace is made one step earlier:
// `unshare --user --net` creates a user and a network namespace and execs bwrap in them, bwrap
// shares that network (--share-net), and slirp4netns joins them through the bwrap process, which
// stays in them. bwrap's --info-fd says when its sandbox exists, --block-fd holds the server until
// slirp4netns has configured the interface: the server never runs without its network.
//
// Lifetimes: slirp4netns exits when its --exit-fd reaches end of file, that is when Turtle closes
// it (the server exited, or Turtle closed the connection) or when Turtle's process dies, SIGKILL
// included; the server dies with Turtle by bwrap's --die-with-parent, and Turtle kills it when
// slirp4netns dies first.

import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import type { Readable, Writable } from "node:stream";

/** slirp4netns's defaults: the namespace is 10.0.2.100, its gateway 10.0.2.2, DNS 10.0.2.3. */
const SLIRP_DNS = "10.0.2.3";

/** How long slirp4netns may take to configure the interface (it takes about 5 ms). */
const READY_TIMEOUT_MS = 10_000;

/** The program that makes the namespaces bwrap then runs in (util-linux, on every Debian). */
export const UNSHARE = "unshare";

/** The bwrap descriptors the isolated network needs: their numbers in the child's stdio. */
export const NETWORK_FDS = { info: 4, block: 5, resolv: 6 } as const;

/** The command line that runs bwrap in a user and network namespace of its own. */
export function unshareArgs(id: number, bwrap: string): string[] {
  return ["--user", `--map-user=${id}`, `--map-group=${id}`, "--net", "--", bwrap];
}

/** bwrap's options for the isolated network (after `--share-net`: the namespace unshare made). */
export function isolatedNetworkOptions(): string[] {
  return [
    "--info-fd",
    String(NETWORK_FDS.info),
    "--block-fd",
    String(NETWORK_FDS.block),
    "--ro-bind-data",
    String(NETWORK_FDS.resolv),
    "/etc/resolv.conf",
  ];
}

/**
 * The sandbox's resolv.conf: slirp4netns's DNS forwarder, which asks the host's resolvers (a host
 * resolver on 127.0.0.53, say, is out of the namespace's reach), and the host's search domains
 * and options.
 */
export function sandboxResolvConf(): string {
  let host = "";
  try {
    host = readFileSync("/etc/resolv.conf", "utf8");
  } catch {
    // No host file: the forwarder alone.
  }
  const kept = host.split("\n").filter((line) => /^\s*(search|domain|options)\s/.test(line));
  return [`nameserver ${SLIRP_DNS}`, ...kept, ""].join("\n");
}

/** Thrown when the network could not be given to a server: what slirp4netns said, and why. */
export class SandboxNetworkError extends Error {
  override readonly name = "SandboxNetworkError";
}

/** A running slirp4netns for one server. */
export interface SlirpNetwork {
  /** Ends slirp4netns (it exits at end of file on its exit descriptor). Idempotent. */
  stop(): void;
}

/**
 * Waits for bwrap's sandbox (its --info-fd), starts slirp4netns in the namespaces of `sandbox`
 * (the bwrap process), waits until the interface is up, then lets the server run (--block-fd).
 * `onLost` is called if slirp4netns exits while the server runs. Rejects, having stopped
 * slirp4netns, when any step fails; the caller kills the sandbox.
 */
export async function startSlirp(
  sandbox: ChildProcess,
  command: string,
  onLost: (why: string) => void,
): Promise<SlirpNetwork> {
  const stdio: ReadonlyArray<Readable | Writable | null | undefined> = sandbox.stdio;
  const info = stdio[NETWORK_FDS.info] as Readable | null | undefined;
  const block = stdio[NETWORK_FDS.block] as Writable | null | undefined;
  const resolv = stdio[NETWORK_FDS.resolv] as Writable | null | undefined;
  if (!info || !block || !resolv || sandbox.pid === undefined) {
    throw new SandboxNetworkError("the sandbox's network descriptors are missing");
  }
  block.on("error", () => {});
  resolv.on("error", () => {});
  resolv.end(sandboxResolvConf());
  const targetPid = sandbox.pid;

  await new Promise<void>((resolve, reject) => {
    let text = "";
    const onData = (chunk: Buffer) => {
      text += chunk;
      if (!/"child-pid"\s*:\s*\d+/.test(text)) return;
      // The rest of bwrap's information is read and dropped: closing the descriptor would kill
      // bwrap with SIGPIPE as it writes the namespaces' ids after the pid.
      info.off("data", onData);
      info.resume();
      sandbox.off("close", onClose);
      resolve();
    };
    const onClose = () => reject(new SandboxNetworkError("the sandbox exited while starting"));
    info.on("data", onData);
    info.on("error", () => {});
    sandbox.once("close", onClose);
  });

  // fd 3: the ready descriptor (slirp4netns writes "1"); fd 4: the exit descriptor (never written:
  // its end of file is the signal).
  const slirp = spawn(
    command,
    [
      "--configure",
      "--mtu=65520",
      "--disable-host-loopback",
      // slirp4netns parses the sandbox's packets: it drops its capabilities and mounts (as it
      // does for rootless Podman) and filters its own system calls.
      "--enable-sandbox",
      "--enable-seccomp",
      "--ready-fd=3",
      "--exit-fd=4",
      String(targetPid),
      "tap0",
    ],
    { env: {}, cwd: "/", stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] },
  );
  let stderr = "";
  slirp.stderr?.on("data", (chunk: Buffer) => {
    if (stderr.length < 4_096) stderr += chunk;
  });
  const exitFd = slirp.stdio[4] as Writable | null;
  exitFd?.on("error", () => {});
  let stopped = false;
  const stop = () => {
    stopped = true;
    exitFd?.destroy();
  };

  try {
    await new Promise<void>((resolve, reject) => {
      const ready = slirp.stdio[3] as Readable | null;
      const timer = setTimeout(
        () =>
          reject(
            new SandboxNetworkError(
              `slirp4netns did not configure the network within ${READY_TIMEOUT_MS} ms`,
            ),
          ),
        READY_TIMEOUT_MS,
      );
      timer.unref();
      const done = (error?: Error) => {
        clearTimeout(timer);
        ready?.destroy();
        if (error) reject(error);
        else resolve();
      };
      ready?.once("data", () => done());
      slirp.once("error", (error: NodeJS.ErrnoException) =>
        done(
          error.code === "ENOENT"
            ? new SandboxNetworkError(
                `confined stdio servers reach the network through slirp4netns (STDIO_SANDBOX_NETWORK=isolated), and "${command}" is not installed: install it (apt-get install -y slirp4netns, or npm run setup as root), or set STDIO_SANDBOX_NETWORK=none for servers that need no network`,
                { cause: error },
              )
            : error,
        ),
      );
      slirp.once("close", () =>
        done(new SandboxNetworkError(`slirp4netns could not give it a network: ${why(stderr)}`)),
      );
      sandbox.once("close", () =>
        done(new SandboxNetworkError("the sandbox exited while starting")),
      );
    });
  } catch (error) {
    stop();
    throw error;
  }
  slirp.once("close", () => {
    if (!stopped) onLost(`slirp4netns exited: ${why(stderr)}`);
  });
  // The interface is up: let the server run.
  block.end("1");
  return { stop };
}

/** slirp4netns's own words, or a hint at the usual cause when it said nothing useful. */
function why(stderr: string): string {
  const said = stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("WARNING"))
    .join("; ");
  const hint = /net\/tun/.test(said)
    ? " (slirp4netns needs /dev/net/tun: in a container, pass the device, as docker-compose.yml does)"
    : "";
  return `${said || "no message"}${hint}`;
}
