// A worker that lacks the key a server's secrets are sealed with (a key rotation under way, or two
// deployments on one Postgres and Redis with different keys) hands the job back to the queue for
// a worker that has the key, says so in its log and its metrics, and fails nothing; secrets that
// were altered still fail the job. Real API, real worker processes, a real MCP server.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createSecretBox,
  DEFAULT_PROJECT_ID,
  generateSecretsKey,
  queueEntryId,
  type SealedSecrets,
} from "@turtle/core";
import type { Job } from "@turtle/db";
import {
  CONTROL_SERVER,
  eventually,
  startApi,
  startWorker,
  type TestApi,
  type TestWorker,
} from "@turtle/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let api: TestApi;
let dir: string;
const workers: TestWorker[] = [];
/** The key the API seals with, and its id. */
let keyId: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "turtle-sealing-keys-"));
  api = await startApi();
  keyId = createSecretBox(api.config).keyId;
  await register("control", "sealed-with-the-api-key");
});

/** Registers the control server under `name`, with a secret the API seals under its key. */
async function register(name: string, token: string): Promise<void> {
  const registered = await api.call({
    method: "POST",
    url: "/v1/servers",
    payload: { name, command: process.execPath, args: [CONTROL_SERVER], env: { API_TOKEN: token } },
  });
  expect(registered.statusCode).toBe(201);
}

afterAll(async () => {
  for (const worker of workers) {
    worker.child.kill("SIGKILL");
    await worker.exited;
  }
  await api?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

async function submit(code: string): Promise<string> {
  const submitted = await api.call({ method: "POST", url: "/v1/jobs", payload: { code } });
  expect(submitted.statusCode).toBe(202);
  return submitted.json().id;
}

async function job(id: string): Promise<Job> {
  return api.db.job.findUniqueOrThrow({ where: { id } });
}

async function scrape(): Promise<string> {
  const response = await api.call({ method: "GET", url: "/metrics" });
  expect(response.statusCode).toBe(200);
  return response.body;
}

/** The value of the one series starting so (worker series carry a `worker` label after). */
function sample(text: string, start: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(start));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/** The worker's log lines at error level. */
function errorLines(worker: TestWorker): Array<Record<string, unknown>> {
  return worker
    .output()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.level === "error");
}

describe("a worker without the key a server's secrets are sealed with", () => {
  it("runs the jobs that do not use that server, and says nothing", async () => {
    const withoutKey = await startWorker(api, dir, { SECRETS_KEY: generateSecretsKey() });
    try {
      const ids = [
        await submit("return 42;"),
        // Its own `control`, not the server's.
        await submit("const control = { n: 3 }; return control.n;"),
      ];
      for (const id of ids) {
        const done = await eventually(`job ${id} ended`, async () => {
          const row = await job(id);
          return row.finishedAt === null ? undefined : row;
        });
        expect(done.error).toBeNull();
        expect(done.status).toBe("succeeded");
        expect(done.attempts).toBe(1);
      }
      expect(errorLines(withoutKey)).toEqual([]);
    } finally {
      // Gone before the next test, whose jobs it must not take.
      withoutKey.child.kill("SIGKILL");
      await withoutKey.exited;
    }
  });

  it("hands the job back, says which key it lacks, and a worker with the key runs it", async () => {
    const withoutKey = await startWorker(api, dir, {
      SECRETS_KEY: generateSecretsKey(),
      WORKER_METRICS_MS: "200",
    });
    workers.push(withoutKey);
    const ids = [
      await submit("return await control.echo({ n: 1 });"),
      await submit("return await control.echo({ n: 2 });"),
    ];

    // Each is delivered, then handed back: queued again, its delivery not counted, and its
    // queue entry delayed so that this worker does not spin on it.
    for (const id of ids) {
      const back = await eventually(`job ${id} handed back`, async () => {
        const row = await job(id);
        expect(row.status).not.toBe("failed");
        return row.status === "queued" && row.attempts >= 1 ? row : undefined;
      });
      expect(back.deliveries).toBe(0);
      expect(back.error).toBeNull();
      await eventually(`job ${id}'s entry delayed`, async () =>
        (await api.app.queue.getJobState(queueEntryId(id, 0))) === "delayed" ? true : undefined,
      );
    }

    // One line for the key, not one per job: it names the key, the server and the project, and
    // says what the operator must do.
    const lines = errorLines(withoutKey);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      kid: keyId,
      server: "control",
      projectId: DEFAULT_PROJECT_ID,
      project: "default",
    });
    expect(lines[0]?.msg).toMatch(/SECRETS_READ_KEYS/);
    expect(lines[0]?.msg).toMatch(/stay queued/);

    // The fleet's /metrics: the key this worker lacks, and the jobs it handed back for it.
    const text = await eventually("the worker's figures for the missing key", async () => {
      const scraped = await scrape();
      const handedBack = sample(scraped, `turtle_jobs_key_missing_total{kid="${keyId}"`) ?? 0;
      return handedBack >= 2 ? scraped : undefined;
    });
    expect(sample(text, `turtle_secrets_keys_missing{kid="${keyId}"`)).toBe(1);

    // A worker that has the key (the API's) takes the jobs when their entries come back.
    workers.push(await startWorker(api, dir));
    for (const [i, id] of ids.entries()) {
      const done = await eventually(
        `job ${id} run by the worker with the key`,
        async () => {
          const row = await job(id);
          return row.status === "queued" || row.status === "running" ? undefined : row;
        },
        120_000,
      );
      expect(done.status).toBe("succeeded");
      expect(done.result).toEqual({ n: i + 1 });
      expect(done.deliveries).toBe(1);
    }
  });

  it("still fails a job whose secrets were altered (sealed with a key the worker has)", async () => {
    // A worker with the key is running (the test above started it).
    await register("altered", "to-be-altered");
    const where = { projectId_name: { projectId: DEFAULT_PROJECT_ID, name: "altered" } };
    const row = await api.db.server.findUniqueOrThrow({ where });
    const sealed = row.secrets as unknown as SealedSecrets;
    expect(sealed.kid).toBe(keyId);
    await api.db.server.update({
      where,
      data: { secrets: { ...sealed, tag: Buffer.alloc(16).toString("base64") } },
    });
    const id = await submit("return await altered.echo({ n: 3 });");
    const failed = await eventually(
      `job ${id} failed`,
      async () => {
        const current = await job(id);
        return current.status === "queued" || current.status === "running" ? undefined : current;
      },
      120_000,
    );
    expect(failed.status).toBe("failed");
    expect(failed.error).toMatchObject({ code: "secrets_unreadable" });
    expect(JSON.stringify(failed.error)).toMatch(/do not open/);
  });
});
