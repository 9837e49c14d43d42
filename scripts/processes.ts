/** Starting Turtle's own processes from the scripts, the way `npm run api|worker` start them. */
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Backoff } from "@turtle/core";

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

export interface Supervised {
  /** The process running now (undefined while waiting to start it again). */
  current(): ChildProcess | undefined;
  /** Stops restarting it, and stops it (SIGTERM, then waits for its exit). */
  stop(): Promise<void>;
}

/**
 * Runs one of Turtle's processes and starts it again, after a back-off, whenever it exits on its
 * own: `npm start`'s supervision. `say` reports each death and restart.
 */
export function supervise(
  which: keyof typeof ENTRIES,
  say: (line: string) => void,
  backoff = new Backoff(),
): Supervised {
  let child: ChildProcess | undefined;
  let timer: NodeJS.Timeout | undefined;
  let stopping = false;
  const start = () => {
    timer = undefined;
    const startedAt = Date.now();
    const started = startProcess(which, {}, "inherit");
    child = started;
    started.once("exit", (code, signal) => {
      child = undefined;
      if (stopping) return;
      const upMs = Date.now() - startedAt;
      const delay = backoff.died(upMs);
      const how = signal === null ? `with code ${code}` : `by ${signal}`;
      say(
        `${which} exited ${how} after ${Math.round(upMs / 1000)} s; starting it again in ${delay / 1000} s`,
      );
      timer = setTimeout(start, delay);
    });
  };
  start();
  return {
    current: () => child,
    async stop() {
      stopping = true;
      clearTimeout(timer);
      if (child !== undefined) await stop(child);
    },
  };
}
