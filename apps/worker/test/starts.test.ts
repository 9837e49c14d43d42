import { DEFAULT_PROJECT_ID } from "@turtle/core";
import { createDb, type Db } from "@turtle/db";
import { it } from "@turtle/test-support";
import { describe, expect } from "vitest";
import { RunStarter } from "../src/starts.ts";

let db: Db;

it.beforeAll(async ({ database }) => {
  db = createDb(database.url);
});

// The database fixture drops the database after the file.
it.afterAll(async () => {
  await db?.$disconnect();
});

const queuedJob = (run = 0) =>
  db.job.create({
    data: {
      projectId: DEFAULT_PROJECT_ID,
      code: "return 1",
      servers: [],
      timeoutMs: 1000,
      memoryMb: 32,
      run,
    },
  });

describe("the run starter", () => {
  it("starts the entries of one turn together; a stale run and a junk entry get nothing", async () => {
    const starter = new RunStarter(db);
    const [plain, resumed, finished] = [await queuedJob(), await queuedJob(1), await queuedJob()];
    await db.job.update({ where: { id: finished.id }, data: { status: "succeeded" } });
    const [a, staleRun, currentRun, done, junk, hugeRun] = await Promise.all([
      starter.start(plain.id, 0),
      starter.start(resumed.id, 0),
      starter.start(resumed.id, 1),
      starter.start(finished.id, 0),
      starter.start("not-a-job", 0),
      starter.start(plain.id, 2 ** 40),
    ]);
    expect(a).toMatchObject({ id: plain.id, status: "running", attempts: 1, deliveries: 1 });
    expect(staleRun).toBeUndefined();
    expect(currentRun).toMatchObject({ id: resumed.id, run: 1, status: "running" });
    expect(done).toBeUndefined();
    expect(junk).toBeUndefined();
    expect(hugeRun).toBeUndefined();
  });
});
