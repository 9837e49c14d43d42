import { DEFAULT_PROJECT_ID } from "@turtle/core";
import { createDb, type Db } from "@turtle/db";
import { it } from "@turtle/test-support";
import { describe, expect } from "vitest";
import { type Checkpoint, CheckpointsLostError, CheckpointWriter } from "../src/checkpoints.ts";
import { hashArgs } from "../src/durable-steps.ts";

let db: Db;

it.beforeAll(async ({ database }) => {
  db = createDb(database.url);
});

// The database fixture drops the database after the file.
it.afterAll(async () => {
  await db?.$disconnect();
});

async function runningJob() {
  return db.job.create({
    data: {
      projectId: DEFAULT_PROJECT_ID,
      code: "return 1",
      servers: [],
      timeoutMs: 1000,
      memoryMb: 32,
      status: "running",
      attempts: 1,
    },
  });
}

function step(jobId: string, key: string): Checkpoint {
  const at = new Date();
  return {
    projectId: DEFAULT_PROJECT_ID,
    jobId,
    key,
    seq: 0,
    server: "s",
    tool: "t",
    argsHash: hashArgs({ key }),
    status: "succeeded",
    result: { key },
    error: null,
    attempt: 1,
    startedAt: at,
    finishedAt: at,
  };
}

describe("the checkpoint writer", () => {
  it("a row Postgres refuses costs only its own job, which is not finished", async () => {
    const writer = new CheckpointWriter(db, { flushMs: 1, batchMax: 100 });
    const [unlucky, bystander] = [await runningJob(), await runningJob()];
    // A seq past Postgres's int range breaks the batch for good; written job by job, only the
    // unlucky job's part fails.
    writer.add({ ...step(unlucky.id, "a#0"), seq: 2 ** 40 });
    writer.add(step(bystander.id, "b#0"));
    await writer.flush();

    await expect(
      writer.finish({ jobId: unlucky.id, run: 0, attempt: 1, status: "succeeded" }),
    ).rejects.toThrow(CheckpointsLostError);
    await expect(
      writer.finish({ jobId: bystander.id, run: 0, attempt: 1, status: "succeeded" }),
    ).resolves.toBe(true);
    const rows = await db.job.findMany({ where: { id: { in: [unlucky.id, bystander.id] } } });
    const status = Object.fromEntries(rows.map((row) => [row.id, row.status]));
    expect(status).toEqual({ [unlucky.id]: "running", [bystander.id]: "succeeded" });
    expect(await db.step.count({ where: { jobId: unlucky.id } })).toBe(0);
    expect(await db.step.count({ where: { jobId: bystander.id } })).toBe(1);

    // Delivered again, the job records its steps and finishes: the loss was forgotten.
    writer.add(step(unlucky.id, "a#0"));
    await expect(
      writer.finish({ jobId: unlucky.id, run: 0, attempt: 1, status: "succeeded" }),
    ).resolves.toBe(true);
  }, 20_000);

  it("a job alone in a batch that fails is not finished either, and can finish later", async () => {
    const writer = new CheckpointWriter(db, { flushMs: 1, batchMax: 100 });
    const job = await runningJob();
    writer.add({ ...step(job.id, "a#0"), seq: 2 ** 40 });
    await expect(
      writer.finish({ jobId: job.id, run: 0, attempt: 1, status: "succeeded" }),
    ).rejects.toThrow();
    expect((await db.job.findUniqueOrThrow({ where: { id: job.id } })).status).toBe("running");
    writer.add(step(job.id, "a#0"));
    await expect(
      writer.finish({ jobId: job.id, run: 0, attempt: 1, status: "succeeded" }),
    ).resolves.toBe(true);
  }, 20_000);

  it("writes a job's checkpoints before or with its end, in one batch when they come together", async () => {
    const writer = new CheckpointWriter(db, { flushMs: 50, batchMax: 100 });
    const job = await runningJob();
    for (let i = 0; i < 30; i++) writer.add(step(job.id, `k#${i}`));
    await expect(
      writer.finish({ jobId: job.id, run: 0, attempt: 1, status: "succeeded", result: 7 }),
    ).resolves.toBe(true);
    const done = await db.job.findUniqueOrThrow({ where: { id: job.id } });
    expect(done).toMatchObject({ status: "succeeded", result: 7 });
    expect(await db.step.count({ where: { jobId: job.id } })).toBe(30);
  });

  it("writes an audit entry for every checkpoint and refusal, in the same statement, and never edits one", async () => {
    const writer = new CheckpointWriter(db, { flushMs: 1, batchMax: 100 });
    const job = await runningJob();
    const failed: Checkpoint = {
      ...step(job.id, "t:x#0"),
      status: "failed",
      result: null,
      error: { code: "server_unavailable", message: "gone" },
    };
    writer.add(failed);
    const at = new Date();
    writer.audit({
      projectId: DEFAULT_PROJECT_ID,
      jobId: job.id,
      key: "t:y#0",
      server: "s",
      tool: "drop",
      argsHash: hashArgs({ table: "users" }),
      status: "denied",
      error: { code: "denied", message: "s.drop is denied by its tool policy" },
      attempt: 1,
      startedAt: at,
      finishedAt: at,
    });
    await writer.flush();
    // A later attempt makes the failed call again, and it succeeds: the step is overwritten,
    // the audit log gets a second entry.
    await db.job.update({ where: { id: job.id }, data: { attempts: 2 } });
    writer.add({ ...step(job.id, "t:x#0"), attempt: 2 });
    await expect(
      writer.finish({ jobId: job.id, run: 0, attempt: 2, status: "succeeded" }),
    ).resolves.toBe(true);

    const steps = await db.step.findMany({ where: { jobId: job.id } });
    expect(steps.map((s) => [s.key, s.status, s.attempt])).toEqual([["t:x#0", "succeeded", 2]]);
    const audit = await db.auditEntry.findMany({
      where: { jobId: job.id },
      orderBy: { id: "asc" },
    });
    expect(
      audit.map((e) => [e.stepKey, e.tool, e.outcome, e.errorCode, e.attempt, e.argsHash]),
    ).toEqual([
      ["t:x#0", "t", "failed", "server_unavailable", 1, hashArgs({ key: "t:x#0" })],
      ["t:y#0", "drop", "denied", "denied", 1, hashArgs({ table: "users" })],
      ["t:x#0", "t", "succeeded", null, 2, hashArgs({ key: "t:x#0" })],
    ]);
    expect(audit.every((e) => e.projectId === DEFAULT_PROJECT_ID && e.durationMs >= 0)).toBe(true);
  });

  it("refuses the checkpoints and the finish of a run whose job was started again since, and tells it", async () => {
    const fenced: Array<[string, number]> = [];
    const writer = new CheckpointWriter(db, {
      flushMs: 1,
      batchMax: 100,
      onFenced: (jobId, attempt) => fenced.push([jobId, attempt]),
    });
    const [job, bystander] = [await runningJob(), await runningJob()];
    writer.add(step(job.id, "k#0"));
    await writer.flush();
    expect(fenced).toEqual([]);
    // Delivered again (its worker lost the queue lock): the new delivery's start bumps attempts.
    await db.job.update({ where: { id: job.id }, data: { attempts: 2 } });
    writer.add(step(job.id, "k#1"));
    writer.add(step(bystander.id, "b#0"));
    await writer.flush();
    expect(fenced).toEqual([[job.id, 1]]);
    const keys = await db.step.findMany({ where: { jobId: { in: [job.id, bystander.id] } } });
    expect(keys.map((row) => row.key).sort()).toEqual(["b#0", "k#0"]);
    // The call did happen: the audit log has it.
    expect(await db.auditEntry.count({ where: { jobId: job.id, stepKey: "k#1" } })).toBe(1);
    await expect(
      writer.finish({ jobId: job.id, run: 0, attempt: 1, status: "succeeded", result: "stale" }),
    ).resolves.toBe(false);
    expect(await db.job.findUniqueOrThrow({ where: { id: job.id } })).toMatchObject({
      status: "running",
      result: null,
    });
    await expect(
      writer.finish({ jobId: job.id, run: 0, attempt: 2, status: "succeeded", result: "new" }),
    ).resolves.toBe(true);
  });

  it("refuses the checkpoints of a run whose job has ended, and tells it", async () => {
    const fenced: Array<[string, number]> = [];
    const writer = new CheckpointWriter(db, {
      flushMs: 1,
      batchMax: 100,
      onFenced: (jobId, attempt) => fenced.push([jobId, attempt]),
    });
    const job = await runningJob();
    await db.job.update({ where: { id: job.id }, data: { status: "succeeded" } });
    writer.add(step(job.id, "k#0"));
    await writer.flush();
    expect(fenced).toEqual([[job.id, 1]]);
    expect(await db.step.count({ where: { jobId: job.id } })).toBe(0);
  });
});
