// What the API tests share: an app on its own database and queue, with a key to call it.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type Config, generateSecretsKey, loadConfig } from "@turtle/core";
import type { Db } from "@turtle/db";
import { createTestDatabase, type TestDatabase } from "@turtle/db/testing";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { type BuildAppOptions, buildApp } from "../src/app.ts";
import { createApiKey } from "../src/index.ts";

export { freePort } from "../../../scripts/processes.ts";

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const EVERYTHING_SERVER = `${REPO_ROOT}node_modules/@modelcontextprotocol/server-everything/dist/index.js`;
export const MEMORY_SERVER = `${REPO_ROOT}node_modules/@modelcontextprotocol/server-memory/dist/index.js`;
export const CONTROL_SERVER = `${REPO_ROOT}packages/bindings/test/servers/control-server.ts`;

/** The key the tests' APIs and workers seal and open servers' secrets with. */
export const TEST_SECRETS_KEY = generateSecretsKey();

export function testQueueName(): string {
  return `test-${randomBytes(6).toString("hex")}`;
}

/**
 * The suite's servers (the control server in the repository, files in temporary directories,
 * pids read back) run unconfined; the sandbox has tests of its own (confine.test.ts, and
 * packages/bindings/test/sandbox.test.ts), which set STDIO_SANDBOX=bwrap.
 */
const UNCONFINED = { STDIO_SANDBOX: "none" } as const;

export function testConfig(databaseUrl: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    DATABASE_URL: databaseUrl,
    TURTLE_QUEUE: testQueueName(),
    LOG_LEVEL: "silent",
    SECRETS_KEY: TEST_SECRETS_KEY,
    // Tests send many requests without a valid key from one address on purpose.
    AUTH_FAILURES_PER_MINUTE: "1000000",
    ...UNCONFINED,
    ...env,
  });
}

export interface TestApi {
  app: FastifyInstance;
  config: Config;
  db: Db;
  key: string;
  /** Sends a request with the API key. */
  call(options: InjectOptions): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

/** An app that is ready, on `database` (a new one when omitted) and a queue of its own. */
export async function startApi(
  options: {
    database?: TestDatabase;
    env?: Record<string, string>;
    app?: Omit<BuildAppOptions, "config">;
    config?: Config;
  } = {},
): Promise<TestApi & { database: TestDatabase }> {
  const database = options.database ?? (await createTestDatabase("api"));
  const config = options.config ?? testConfig(database.url, options.env);
  const app = await buildApp({ config, ...options.app });
  await app.ready();
  const { key } = await createApiKey(app.db, "test");
  return {
    app,
    config,
    db: app.db,
    key,
    database,
    call: (request) =>
      app.inject({
        ...request,
        headers: { authorization: `Bearer ${key}`, ...request.headers },
      }),
    async close() {
      await app.queue.obliterate({ force: true }).catch(() => {});
      await app.close();
      if (options.database === undefined) await database.drop();
    },
  };
}

/** Polls `check` until it returns something other than undefined, or fails at the deadline. */
export async function eventually<T>(
  what: string,
  check: () => T | undefined | Promise<T | undefined>,
  deadlineMs = 30_000,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

export interface TestWorker {
  child: ChildProcess;
  output: () => string;
  exited: Promise<unknown>;
}

/** What a Turtle process of the tests (worker, `turtle mcp`) needs to join the API's fleet. */
export function fleetEnv(config: Config): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "",
    DATABASE_URL: config.DATABASE_URL,
    REDIS_URL: config.REDIS_URL,
    TURTLE_QUEUE: config.TURTLE_QUEUE,
    SECRETS_KEY: config.SECRETS_KEY ?? "",
    STDIO_SANDBOX: config.STDIO_SANDBOX,
    STDIO_SANDBOX_NETWORK: config.STDIO_SANDBOX_NETWORK,
    STDIO_SANDBOX_PATHS: config.STDIO_SANDBOX_PATHS.map(
      ({ path, writable }) => `${path}${writable ? ":rw" : ""}`,
    ).join(","),
  };
}

/** `npm run worker` on the API's database and queue, in `cwd` (a directory without a .env). */
export async function startWorker(
  api: Pick<TestApi, "config">,
  cwd: string,
  env: Record<string, string> = {},
): Promise<TestWorker> {
  const child = spawn(
    process.execPath,
    ["--no-node-snapshot", `${REPO_ROOT}apps/worker/src/main.ts`],
    {
      cwd,
      env: {
        ...fleetEnv(api.config),
        WORKER_CONCURRENCY: "4",
        LOG_LEVEL: "info",
        ...env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    output += chunk;
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    output += chunk;
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  await Promise.race([
    eventually("the worker to be ready", () =>
      output.includes('"msg":"worker ready"') ? true : undefined,
    ),
    exited.then(() => {
      throw new Error(`the worker exited before it was ready:\n${output}`);
    }),
  ]);
  return { child, output: () => output, exited };
}

export interface TestFleet {
  api: TestApi;
  worker: TestWorker;
  /** A temporary directory of the fleet's own, removed at close. */
  dir: string;
  /** The API's address, listening on a free port. */
  base: string;
  close(): Promise<void>;
}

/**
 * What end-to-end tests run against: the API listening on a free port, MCP servers registered
 * (`servers` gets the fleet's directory, for files they write), and one real worker process.
 */
export async function startFleet(options: {
  servers: (dir: string) => Array<Record<string, unknown>>;
  apiEnv?: Record<string, string>;
  workerEnv?: Record<string, string>;
}): Promise<TestFleet> {
  const dir = mkdtempSync(join(tmpdir(), "turtle-fleet-"));
  const api = await startApi(options.apiEnv ? { env: options.apiEnv } : {});
  let worker: TestWorker | undefined;
  const close = async () => {
    if (worker) {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const payload of options.servers(dir)) {
      const registered = await api.call({ method: "POST", url: "/v1/servers", payload });
      if (registered.statusCode !== 201) {
        throw new Error(`could not register ${String(payload.name)}: ${registered.body}`);
      }
    }
    const base = await api.app.listen({ host: "127.0.0.1", port: 0 });
    worker = await startWorker(api, dir, options.workerEnv);
    return { api, worker, dir, base, close };
  } catch (error) {
    await close();
    throw error;
  }
}
