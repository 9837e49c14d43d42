/**
 * Turtle the way an agent meets it: a fresh database and API key, the API and one worker as
 * child processes started the way `npm run api|worker` start them, and servers registered.
 * `stop()` stops both processes (SIGTERM, waiting for their exits) and drops the database.
 * Importable without vitest: the benchmarks run it too.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createApiKey } from "@turtle/api";
import { freePort, generateSecretsKey } from "@turtle/core";
import { createDb } from "@turtle/db";
import { createTestDatabase, testQueueName } from "./database.ts";
import { API_MAIN, REPO_ROOT, WORKER_MAIN } from "./paths.ts";

export interface ProcessPlatform {
  base: string;
  key: string;
  /** The platform's own database, dropped at stop. */
  databaseUrl: string;
  stop(): Promise<void>;
}

const STARTUP_MS = 60_000;

/**
 * An API and a worker process on a fresh database (`label` goes into its name); `servers` are
 * registered by name, and `extraEnv` adds to (or overrides) both processes' environment.
 */
export async function startProcessPlatform(
  servers: Record<string, object> = {},
  extraEnv: Record<string, string> = {},
  label = "platform",
): Promise<ProcessPlatform> {
  const database = await createTestDatabase(label);
  const children: ChildProcess[] = [];
  const shutdown = async () => {
    await Promise.all(children.map(stopProcess));
    await database.drop();
  };
  try {
    const db = createDb(database.url);
    const { key } = await createApiKey(db, label);
    await db.$disconnect();
    const port = await freePort();
    const env = {
      DATABASE_URL: database.url,
      TURTLE_QUEUE: testQueueName(label),
      PORT: String(port),
      LOG_LEVEL: "info",
      SECRETS_KEY: generateSecretsKey(),
      ...extraEnv,
    };
    const base = `http://127.0.0.1:${port}`;
    const api = spawnTurtle([API_MAIN], env);
    const worker = spawnTurtle(["--no-node-snapshot", WORKER_MAIN], env);
    children.push(api, worker);
    await Promise.all([
      waitForOutput(api, /Server listening/, "the API"),
      waitForOutput(worker, /worker ready/, "the worker"),
    ]);
    for (const [name, entry] of Object.entries(servers)) {
      const response = await fetch(`${base}/v1/servers`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ name, ...entry }),
      });
      if (response.status !== 201)
        throw new Error(`registering ${name}: ${response.status} ${await response.text()}`);
    }
    return { base, key, databaseUrl: database.url, stop: shutdown };
  } catch (error) {
    await shutdown();
    throw error;
  }
}

function spawnTurtle(args: string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** SIGTERM, then wait for the exit (each process closes gracefully on it). */
function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

/**
 * Resolves when the process prints a line matching `ready`, and keeps draining its output after
 * (a full pipe would stall it). Rejects, with its last output, if it exits or takes too long.
 */
function waitForOutput(child: ChildProcess, ready: RegExp, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let tail = "";
    let done = false;
    const fail = (why: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      reject(new Error(`${what} ${why}; its last output:\n${tail.slice(-3_000)}`));
    };
    const timer = setTimeout(() => fail(`was not ready after ${STARTUP_MS / 1000} s`), STARTUP_MS);
    const read = (chunk: Buffer) => {
      if (done) return;
      tail = (tail + chunk.toString()).slice(-10_000);
      if (ready.test(tail)) {
        done = true;
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on("data", read);
    child.stderr?.on("data", read);
    child.once("exit", (code, signal) => fail(`exited (${signal ?? code})`));
  });
}
