/**
 * Turtle's worker as a real process, started the way `npm run worker` starts it. The caller
 * stops it (`kill`, then `await exited`); the platform and fleet fixtures stop theirs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { WORKER_MAIN } from "./paths.ts";

export interface TestWorker {
  child: ChildProcess;
  /** Everything it printed so far, stdout and stderr. */
  output: () => string;
  /** Its exit code (null when a signal ended it). */
  exited: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

/**
 * `node --no-node-snapshot apps/worker/src/main.ts` with exactly `env`, in `cwd`; resolves once it
 * logs that it is ready, and fails with its output if it exits before.
 */
export function spawnWorker(env: Record<string, string>, cwd: string): Promise<TestWorker> {
  const child = spawn(process.execPath, ["--no-node-snapshot", WORKER_MAIN], {
    cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let text = "";
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('"msg":"worker ready"')) resolve();
    });
    child.stderr?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
    });
    child.once("exit", (code) =>
      reject(new Error(`the worker exited (${code}) before it was ready:\n${text}`)),
    );
  });
  const worker: TestWorker = {
    child,
    output: () => text,
    exited,
    kill: (signal) => child.kill(signal),
  };
  return ready.then(() => worker);
}

/** SIGKILL, unless it has exited already, and wait for the exit. */
export async function killWorker(worker: TestWorker): Promise<void> {
  if (worker.child.exitCode === null && worker.child.signalCode === null) {
    worker.kill("SIGKILL");
    await worker.exited;
  }
}
