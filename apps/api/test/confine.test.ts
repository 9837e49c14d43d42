// A tenant's hostile stdio server against the real platform (the API, a worker process, Postgres,
// Redis): it tries the environment, every process's /proc entry, the .env beside the worker and
// the database, and none of Turtle's secrets may come out — not in any API answer, a job's
// result, error or logs, a step row, nor the API's or the worker's log.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import {
  CONTROL_SERVER,
  createTestDatabase,
  eventually,
  REPO_ROOT,
  startApi,
  startWorker,
  type TestApi,
  type TestDatabase,
  type TestWorker,
  testConfig,
} from "@turtle/test-support";
import type { InjectOptions } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApp, loggerOptions } from "../src/app.ts";

const SERVERS_DIR = join(CONTROL_SERVER, "..");
const HOSTILE = join(SERVERS_DIR, "hostile-server.ts");

let database: TestDatabase;
let api: TestApi;
let worker: TestWorker;
let apiLog = "";
const answers: string[] = [];
let dir: string;
/** Turtle's own secrets in this deployment. */
let secrets: string[];
let saved: Record<string, string | undefined> = {};

beforeAll(async () => {
  database = await createTestDatabase("confine");
  // Trust auth ignores it, but a deployment's DATABASE_URL holds a password: it must not leak.
  const url = new URL(database.url);
  url.password = "db-password-of-the-deployment";
  const env = {
    DATABASE_URL: url.toString(),
    STDIO_SANDBOX: "bwrap",
    // The tests' own servers live in the repository, which confined servers do not otherwise see.
    STDIO_SANDBOX_PATHS: SERVERS_DIR,
  };
  const config = testConfig(database.url, env);
  const stream = new Writable({
    write(chunk, _encoding, done) {
      apiLog += chunk;
      done();
    },
  });
  api = await startApi({
    database,
    config,
    app: { logger: { ...loggerOptions({ ...config, LOG_LEVEL: "info" }), stream } },
  });
  // The API's process holds its settings in its environment, as `npm run api` with a .env does.
  saved = { SECRETS_KEY: process.env.SECRETS_KEY, DATABASE_URL: process.env.DATABASE_URL };
  Object.assign(process.env, {
    SECRETS_KEY: config.SECRETS_KEY,
    DATABASE_URL: config.DATABASE_URL,
  });
  // The worker runs beside a .env, as `npm run worker` from the repository does.
  dir = mkdtempSync(join(tmpdir(), "turtle-confine-"));
  writeFileSync(
    join(dir, ".env"),
    `SECRETS_KEY=${config.SECRETS_KEY}\nDATABASE_URL=${config.DATABASE_URL}\n`,
    { mode: 0o600 },
  );
  worker = await startWorker(api, dir);
  secrets = [config.SECRETS_KEY ?? "", config.DATABASE_URL, url.password, api.key];
}, 60_000);

afterAll(async () => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  worker?.child.kill("SIGTERM");
  await worker?.exited;
  await api?.close();
  await database?.drop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A request whose answer is kept, to look for secrets in every one. */
async function call(key: string, request: InjectOptions) {
  const response = await api.app.inject({
    ...request,
    headers: { authorization: `Bearer ${key}`, ...request.headers },
  });
  answers.push(response.body);
  return response;
}

function expectNoSecret(where: string, text: string) {
  for (const secret of secrets) {
    expect(text.includes(secret), `${where} holds a secret`).toBe(false);
  }
  expect(text, `${where} holds an API key`).not.toMatch(/tt_[A-Za-z0-9_-]{32,}/);
}

describe("a tenant's hostile stdio server", () => {
  let tenant: (request: InjectOptions) => ReturnType<typeof call>;
  let projectId: string;
  const hostile = (name: string, extra: string[] = []) => ({
    name,
    command: process.execPath,
    args: [HOSTILE, `--probe=${join(dir, ".env")}`, `--probe=${REPO_ROOT}.env`, ...extra],
    env: { TENANT_TOKEN: "the-tenant-own-token" },
  });

  it("may not be registered by a project the operator has not allowed stdio servers", async () => {
    // Not kept with the answers: it shows the tenant's new key, once, as it should.
    const made = await api.call({
      method: "POST",
      url: "/v1/projects",
      payload: { name: "tenant" },
    });
    expect(made.statusCode, made.body).toBe(201);
    const { project, key } = made.json();
    projectId = project.id;
    tenant = (request: InjectOptions) => call(key.key, request);
    // Not the operator's project: stdio servers need the operator's leave.
    const refused = await tenant({ method: "POST", url: "/v1/servers", payload: hostile("loot") });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error.code).toBe("stdio_not_allowed");
  });

  it("finds none of Turtle's secrets, and nothing Turtle says of it holds one", async () => {
    await call(api.key, {
      method: "PATCH",
      url: `/v1/projects/${projectId}`,
      payload: { allowStdioServers: true },
    });
    for (const { name, ...payload } of [hostile("loot"), hostile("crash", ["--exit"])]) {
      const registered = await tenant({ method: "PUT", url: `/v1/servers/${name}`, payload });
      expect([200, 201], registered.body).toContain(registered.statusCode);
    }

    // Its start-up error (502), and its tool list, whose description carries what it found.
    const crashed = await tenant({ method: "GET", url: "/v1/servers/crash/tools" });
    expect(crashed.statusCode).toBe(502);
    const listed = await tenant({ method: "GET", url: "/v1/servers/loot/tools" });
    expect(listed.statusCode, listed.body).toBe(200);
    await tenant({ method: "GET", url: "/v1/types?servers=loot" });

    const program = `
      const found = await loot.loot({});
      let failure = "";
      try { await loot.fail({}); } catch (error) { failure = String(error.message); }
      console.log(JSON.stringify(found));
      return { found, failure };`;
    const ran = await tenant({
      method: "POST",
      url: "/v1/jobs?wait=60",
      payload: { code: program, servers: ["loot"] },
    });
    const job = await eventually("the job to end", async () => {
      const row = await api.db.job.findUnique({ where: { id: ran.json().id } });
      return row?.finishedAt ? row : undefined;
    });
    expect(job.status).toBe("succeeded");
    const failing = await tenant({
      method: "POST",
      url: "/v1/jobs?wait=60",
      payload: { code: "return await crash.loot({});", servers: ["crash"] },
    });
    const failed = await eventually("the failing job to end", async () => {
      const row = await api.db.job.findUnique({ where: { id: failing.json().id } });
      return row?.finishedAt ? row : undefined;
    });
    expect(failed.status).toBe("failed");
    for (const id of [job.id, failed.id]) {
      await tenant({ method: "GET", url: `/v1/jobs/${id}` });
      await tenant({ method: "GET", url: `/v1/jobs/${id}/steps` });
    }

    const steps = await api.db.step.findMany({ where: { jobId: { in: [job.id, failed.id] } } });
    const rows = [job, failed].map((row) => JSON.stringify(row));
    expectNoSecret("a job row", rows.join("\n"));
    expectNoSecret("a step row", JSON.stringify(steps));
    expectNoSecret("an API answer", answers.join("\n"));
    expectNoSecret("the API's log", apiLog);
    expectNoSecret("the worker's log", worker.output());

    // What it found, confined: its registration's env, its own processes, no .env, its own user.
    const found = (job.result as { found: Record<string, unknown> }).found as {
      uid: number;
      env: Record<string, string>;
      files: Record<string, string>;
      postgres: { connected: boolean };
      redis: { connected: boolean };
    };
    expect(found.uid).toBe(65534);
    expect(found.env.TENANT_TOKEN).toBe("the-tenant-own-token");
    expect(found.env).not.toHaveProperty("SECRETS_KEY");
    expect(found.files[join(dir, ".env")]).toMatch(/^unreadable: ENOENT/);
    expect(found.files[`${REPO_ROOT}.env`]).toMatch(/^unreadable: ENOENT/);
    // Its own network (STDIO_SANDBOX_NETWORK=isolated, the default) reaches the outside but not
    // the host's loopback: neither this Postgres, which trusts local connections, nor Redis.
    expect(found.postgres.connected).toBe(false);
    expect(found.redis.connected).toBe(false);
  });
});

/** What the API logs as warnings, and a worker prints, when each starts with `env`. */
async function startupWarnings(env: Record<string, string>) {
  let api = "";
  const stream = new Writable({
    write(chunk, _encoding, done) {
      api += chunk;
      done();
    },
  });
  const config = testConfig(database.url, env);
  const app = await buildApp({ config, logger: { level: "warn", stream } });
  await app.close();
  const worker = await startWorker({ config }, dir);
  worker.child.kill("SIGTERM");
  await worker.exited;
  return { api, worker: worker.output() };
}

describe("a weakened sandbox", () => {
  it.each([
    [
      { STDIO_SANDBOX: "bwrap", STDIO_SANDBOX_NETWORK: "host" },
      "STDIO_SANDBOX_NETWORK=host: confined stdio MCP servers share",
    ],
    [{ STDIO_SANDBOX: "none" }, "STDIO_SANDBOX=none: stdio MCP servers run unconfined"],
  ])("%j is said loudly at every start, by the API and by a worker", async (env, warning) => {
    const said = await startupWarnings(env);
    expect(said.api).toContain('"level":40');
    expect(said.api).toContain(warning);
    expect(said.worker).toContain(warning);
  });
});
