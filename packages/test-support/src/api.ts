/**
 * An API for tests: `startApi` builds the real app in this process (called with `app.inject`,
 * or listening when a test asks), on its own database and queue, with a key to call it;
 * `close()` empties its queue, closes it and drops the database it made. `startFleet` adds a
 * listening API, registered MCP servers and one worker process; its `close()` stops all three
 * and removes its directory. `startWorker` runs a worker process on an API's database and queue.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BuildAppOptions, buildApp, createApiKey } from "@turtle/api";
import { type Config, loadConfig } from "@turtle/core";
import type { Db } from "@turtle/db";
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from "fastify";
import { createTestDatabase, type TestDatabase, testQueueName } from "./database.ts";
import { TEST_SECRETS_KEY, UNCONFINED } from "./paths.ts";
import { spawnWorker, type TestWorker } from "./processes.ts";

/** The API's configuration for tests, on `databaseUrl` and a queue of its own; `env` overrides. */
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
  database: TestDatabase;
  /** Sends a request with the API key. */
  call(options: InjectOptions): Promise<LightMyRequestResponse>;
  close(): Promise<void>;
}

export interface StartApiOptions {
  /** The database to use (kept at close); a new one, dropped at close, when omitted. */
  database?: TestDatabase;
  env?: Record<string, string>;
  app?: Omit<BuildAppOptions, "config">;
  config?: Config;
}

/** An app that is ready, on `database` (a new one when omitted) and a queue of its own. */
export async function startApi(options: StartApiOptions = {}): Promise<TestApi> {
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
export function startWorker(
  api: Pick<TestApi, "config">,
  cwd: string,
  env: Record<string, string> = {},
): Promise<TestWorker> {
  return spawnWorker(
    { ...fleetEnv(api.config), WORKER_CONCURRENCY: "4", LOG_LEVEL: "info", ...env },
    cwd,
  );
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

export interface FleetOptions {
  /** The servers to register; gets the fleet's directory, for files they write. */
  servers: (dir: string) => Array<Record<string, unknown>>;
  apiEnv?: Record<string, string>;
  workerEnv?: Record<string, string>;
}

/**
 * What end-to-end tests run against: the API listening on a free port, MCP servers registered,
 * and one real worker process.
 */
export async function startFleet(options: FleetOptions): Promise<TestFleet> {
  const dir = mkdtempSync(join(tmpdir(), "turtle-fleet-"));
  const api = await startApi(options.apiEnv ? { env: options.apiEnv } : {});
  let worker: TestWorker | undefined;
  const close = async () => {
    if (worker) {
      worker.kill("SIGTERM");
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
