/** Starting Turtle's own processes from the scripts, the way `npm run api|worker` start them. */
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../", import.meta.url));

const ENTRIES = {
  api: ["apps/api/src/server.ts"],
  worker: ["--no-node-snapshot", "apps/worker/src/main.ts"],
} as const;

export function startProcess(
  which: keyof typeof ENTRIES,
  env: Record<string, string>,
  stdio: "inherit" | "pipe",
): ChildProcess {
  return spawn(process.execPath, [...ENTRIES[which]], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", stdio, stdio],
  });
}

/** SIGTERM, then wait for the exit (each process closes gracefully on it). */
export function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

/** A TCP port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        resolve(typeof address === "object" && address !== null ? address.port : 0),
      );
    });
  });
}
