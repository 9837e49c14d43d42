/**
 * A database and a queue name of a test's own, so test files run in parallel and never share
 * rows or queue entries. `createTestDatabase` gives a fresh, migrated database; its `drop()`
 * removes it (with any connections still open). Importable without vitest (the benchmarks
 * use it too).
 */
import { randomBytes } from "node:crypto";
import { ensureDatabase, migrate } from "@turtle/db";
import pg from "pg";

/** The server tests run against; each test file gets its own database on it. */
export const TEST_SERVER_URL =
  process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database on the test server, or on `server` (a URL of its maintenance
 * database); `label` goes into its name, to tell whose it is.
 */
export async function createTestDatabase(
  label = "test",
  server = TEST_SERVER_URL,
): Promise<TestDatabase> {
  const name = `turtle_${label.replace(/[^a-z0-9_]/gi, "_").toLowerCase()}_${randomBytes(4).toString("hex")}`;
  const url = new URL(server);
  url.pathname = `/${name}`;
  await ensureDatabase(url.toString());
  await migrate(url.toString());
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: server });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** A queue name nobody else uses (`label` goes into it). */
export function testQueueName(label = "test"): string {
  return `${label}-${randomBytes(6).toString("hex")}`;
}
