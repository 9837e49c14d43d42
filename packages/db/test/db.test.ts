import { readdirSync } from "node:fs";
import { it } from "@turtle/test-support";
import { describe, expect } from "vitest";
import { createDb, type Db, migrate } from "../src/index.ts";

let db: Db;

/** The operator's project, which the migration that introduced projects creates. */
const DEFAULT_PROJECT_ID = "00000000-0000-4000-8000-000000000001";

it.beforeAll(async ({ database }) => {
  db = createDb(database.url);
});

// The database fixture drops the database after the file.
it.afterAll(async () => {
  await db.$disconnect();
});

describe("migrations", () => {
  it("are applied once and recorded as Prisma Migrate records them", async ({ database }) => {
    expect(await migrate(database.url)).toEqual([]);
    const rows = await db.$queryRaw<Array<{ migration_name: string; checksum: string }>>`
      SELECT migration_name, checksum FROM "_prisma_migrations"`;
    const folders = readdirSync(new URL("../../../prisma/migrations/", import.meta.url), {
      withFileTypes: true,
    })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
    expect(folders[0]).toBe("20261124000000_init");
    expect(rows.map((row) => row.migration_name).sort()).toEqual(folders);
    for (const row of rows) expect(row.checksum).toMatch(/^[0-9a-f]{64}$/);
  });

  it("match the schema: every model round-trips through Prisma Client", async () => {
    const project = await db.project.findUniqueOrThrow({ where: { id: DEFAULT_PROJECT_ID } });
    expect(project).toMatchObject({ name: "default", operator: true, maxConcurrentJobs: null });
    const projectId = project.id;
    const key = await db.apiKey.create({
      data: { projectId, scopes: ["read"], name: "ci", prefix: "tt_abc", hash: "h1" },
    });
    expect(key.revokedAt).toBeNull();
    expect(key.scopes).toEqual(["read"]);
    await db.server.create({ data: { projectId, name: "files", config: { command: "node" } } });
    const job = await db.job.create({
      data: {
        projectId,
        code: "return 1",
        servers: ["files"],
        timeoutMs: 1000,
        memoryMb: 64,
        input: { a: 1 },
      },
    });
    expect(job).toMatchObject({ status: "queued", attempts: 0, logs: [], servers: ["files"] });
    await db.step.createMany({
      data: [0, 1].map((seq) => ({
        jobId: job.id,
        key: `files/read#${seq}`,
        seq,
        server: "files",
        tool: "read",
        status: "succeeded" as const,
        result: { seq },
        attempt: 1,
        startedAt: new Date(),
        finishedAt: new Date(),
      })),
    });
    const loaded = await db.job.findUniqueOrThrow({
      where: { id: job.id },
      include: { steps: true },
    });
    expect(loaded.steps.map((step) => step.result)).toEqual([{ seq: 0 }, { seq: 1 }]);
    const entry = await db.auditEntry.create({
      data: {
        projectId,
        jobId: job.id,
        stepKey: "files/read#0",
        server: "files",
        tool: "read",
        argsHash: "0".repeat(64),
        outcome: "succeeded",
        attempt: 1,
        startedAt: new Date(),
        finishedAt: new Date(),
        durationMs: 0,
      },
    });
    expect(typeof entry.id).toBe("bigint");
    await db.job.delete({ where: { id: job.id } });
    expect(await db.step.count({ where: { jobId: job.id } })).toBe(0);
  });

  it("reject a migration edited after it was applied", async ({ database }) => {
    await db.$executeRaw`UPDATE "_prisma_migrations" SET checksum = 'x'`;
    await expect(migrate(database.url)).rejects.toThrow(/edited after it was applied/);
  });
});
