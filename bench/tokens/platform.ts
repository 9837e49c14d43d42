// Turtle as the Code Mode agent meets it: a fresh database and API key, the API and one worker
// as child processes (the way bench/api.ts starts them), and the workflows' servers registered.
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createApiKey } from "@turtle/api";
import { generateSecretsKey } from "@turtle/core";
import { createDb } from "@turtle/db";
import { createTestDatabase } from "@turtle/db/testing";
import { freePort, startProcess, stop } from "../../scripts/processes.ts";
import type { ServerEntry } from "./servers.ts";

export interface Platform {
  base: string;
  key: string;
  /** The platform's own database, dropped at stop. */
  databaseUrl: string;
  stop(): Promise<void>;
}

const STARTUP_MS = 60_000;

/** An API and a worker process on a fresh database; `extraEnv` adds to (or overrides) theirs. */
export async function startPlatform(
  servers: Record<string, ServerEntry>,
  extraEnv: Record<string, string> = {},
): Promise<Platform> {
  const database = await createTestDatabase("bench_tokens");
  const children: ChildProcess[] = [];
  const shutdown = async () => {
    await Promise.all(children.map(stop));
    await database.drop();
  };
  try {
    const db = createDb(database.url);
    const { key } = await createApiKey(db, "bench-tokens");
    await db.$disconnect();
    const port = await freePort();
    const env = {
      DATABASE_URL: database.url,
      TURTLE_QUEUE: `bench-tokens-${randomBytes(4).toString("hex")}`,
      PORT: String(port),
      LOG_LEVEL: "info",
      SECRETS_KEY: generateSecretsKey(),
      ...extraEnv,
    };
    const base = `http://127.0.0.1:${port}`;
    const api = startProcess("api", env, "pipe");
    const worker = startProcess("worker", env, "pipe");
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
