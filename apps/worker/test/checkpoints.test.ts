import { randomUUID } from "node:crypto";
import { createDb, type Db } from "@turtle/db";
import { createTestDatabase, type TestDatabase } from "@turtle/db/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Checkpoint, CheckpointsLostError, CheckpointWriter } from "../src/checkpoints.ts";

let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  database = await createTestDatabase("checkpoints");
  db = createDb(database.url);
});

afterAll(async () => {
  await db?.$disconnect();
  await database?.drop();
});

async function runningJob() {
  return db.job.create({
    data: { code: "return 1", servers: [], timeoutMs: 1000, memoryMb: 32, status: "running" },
  });
}

function step(jobId: string, key: string): Checkpoint {
  const at = new Date();
  return {
    jobId,
    key,
    seq: 0,
    server: "s",
    tool: "t",
    status: "succeeded",
    result: { key },
    error: null,
    attempt: 1,
    startedAt: at,
    finishedAt: at,
  };
}

describe("the checkpoint writer", () => {
  it("refuses to finish a job whose checkpoints were lost, and finishes the others", async () => {
    const writer = new CheckpointWriter(db, { flushMs: 1, batchMax: 100 });
    const [unlucky, bystander] = [await runningJob(), await runningJob()];
    // A step of a job that does not exist breaks its batch for good (the foreign key), and
    // with it the unlucky job's checkpoint that shares the batch.
    writer.add(step(unlucky.id, "a#0"));
    writer.add(step(randomUUID(), "b#0"));
    await expect(writer.flush()).rejects.toThrow();

    await expect(writer.finish({ jobId: unlucky.id, run: 0, status: "succeeded" })).rejects.toThrow(
      CheckpointsLostError,
    );
    writer.add(step(bystander.id, "c#0"));
    await expect(writer.finish({ jobId: bystander.id, run: 0, status: "succeeded" })).resolves.toBe(
      true,
    );

    const rows = await db.job.findMany({ where: { id: { in: [unlucky.id, bystander.id] } } });
    const status = Object.fromEntries(rows.map((row) => [row.id, row.status]));
    expect(status).toEqual({ [unlucky.id]: "running", [bystander.id]: "succeeded" });
    expect(await db.step.count({ where: { jobId: unlucky.id } })).toBe(0);
    expect(await db.step.count({ where: { jobId: bystander.id } })).toBe(1);
  }, 20_000);

  it("writes a job's checkpoints before or with its end, in one batch when they come together", async () => {
    const writer = new CheckpointWriter(db, { flushMs: 50, batchMax: 100 });
    const job = await runningJob();
    for (let i = 0; i < 30; i++) writer.add(step(job.id, `k#${i}`));
    await expect(
      writer.finish({ jobId: job.id, run: 0, status: "succeeded", result: 7 }),
    ).resolves.toBe(true);
    const done = await db.job.findUniqueOrThrow({ where: { id: job.id } });
    expect(done).toMatchObject({ status: "succeeded", result: 7 });
    expect(await db.step.count({ where: { jobId: job.id } })).toBe(30);
  });
});
