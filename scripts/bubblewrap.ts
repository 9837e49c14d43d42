// Stdio MCP servers run confined by bubblewrap (`bwrap`; see packages/bindings/src/sandbox.ts).
// A fresh machine has none: this installs Debian's package when it is missing and we are root,
// and otherwise says what to run. slirp4netns too, Debian's `slirp4netns`: it gives each server
// its own network (STDIO_SANDBOX_NETWORK=isolated, the default; see sandbox-network.ts). `npm test` runs it first (pretest), `npm run setup` (and so the
// demo) too; `node scripts/bubblewrap.ts` on its own checks a machine.
//
// It also tries bwrap the way Turtle runs it (new user, PID and mount namespaces), so a container
// that forbids user namespaces is told so now, not at the first server's start.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { bwrapOptions } from "@turtle/bindings";
import { aptInstall } from "@turtle/core";

const say = (line: string) => process.stdout.write(`bubblewrap: ${line}\n`);

/** Debian's packages the sandbox needs, by the program each provides. */
function needed(env: NodeJS.ProcessEnv): Record<string, string> {
  const network = env.STDIO_SANDBOX_NETWORK ?? "isolated";
  return { bwrap: "bubblewrap", ...(network === "isolated" ? { slirp4netns: "slirp4netns" } : {}) };
}

function missing(env: NodeJS.ProcessEnv): string[] {
  return Object.entries(needed(env))
    .filter(([program]) => spawnSync(program, ["--version"], { stdio: "ignore" }).status !== 0)
    .map(([, pkg]) => pkg);
}

/**
 * Whether a server can start the way Turtle starts one: bwrap makes its namespaces, and Node and
 * node_modules are readable from inside (as root, servers run as uid 65534, which cannot read an
 * installation under a private directory such as /root).
 */
function works(): { ok: boolean; why: string } {
  const asRoot = process.getuid?.() === 0;
  const sdk = fileURLToPath(import.meta.resolve("@modelcontextprotocol/sdk/types.js"));
  const probe = `require("node:fs").accessSync(${JSON.stringify(sdk)})`;
  // The network is slirp4netns's part, checked apart: here, the namespaces and the files.
  const options = bwrapOptions({ command: process.execPath }, { kind: "bwrap", network: "none" });
  const tried = spawnSync("bwrap", [...options, "--", process.execPath, "-e", probe], {
    encoding: "utf8",
    env: {},
    cwd: "/",
    ...(asRoot ? { uid: 65534, gid: 65534 } : {}),
  });
  return { ok: tried.status === 0, why: (tried.stderr ?? "").trim() || String(tried.error ?? "") };
}

/**
 * Makes sure bubblewrap (and slirp4netns, for the isolated network) are there, installing them as
 * root on Debian-like systems. Never throws: without them, stdio servers fail to start with a
 * message saying to install them.
 */
export function ensureBubblewrap(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.STDIO_SANDBOX === "none") {
    say("STDIO_SANDBOX=none: stdio servers run unconfined, bubblewrap is not needed");
    return true;
  }
  const absent = missing(env);
  if (absent.length > 0) {
    const hasApt = spawnSync("apt-get", ["--version"], { stdio: "ignore" }).status === 0;
    if (process.getuid?.() === 0 && hasApt) {
      say(
        `not installed: installing Debian's ${absent.join(" and ")} (apt-get install -y ${absent.join(" ")})`,
      );
      try {
        aptInstall(absent);
      } catch (error) {
        say(`could not install it: ${(error as Error).message.split("\n")[0]}`);
      }
    }
    const still = missing(env);
    if (still.length > 0) {
      say(
        `${still.join(" and ")} not installed, so stdio MCP servers cannot start confined: run \`sudo apt-get install -y ${still.join(" ")}\` (or your system's packages)`,
      );
      return false;
    }
  }
  if (needed(env).slirp4netns !== undefined && !existsSync("/dev/net/tun")) {
    say(
      "slirp4netns needs /dev/net/tun, which this machine lacks: in a container, pass the device (docker-compose.yml does); or set STDIO_SANDBOX_NETWORK=none for servers that need no network",
    );
    return false;
  }
  const check = works();
  if (!check.ok) {
    say(
      `installed, but a stdio server cannot start in it (${check.why.split("\n")[0]}): in a container, allow user namespaces; as root, keep the installation readable by uid 65534 (not under /root). See the README, "Confining stdio servers"`,
    );
    return false;
  }
  return true;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) ensureBubblewrap();
