import { randomBytes } from "node:crypto";
import pg from "pg";
import { ensureDatabase, migrate } from "./migrate.ts";

/** The server tests run against; each test file gets its own database on it. */
export const TEST_SERVER_URL =
  process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database, so test files can run in parallel and never share rows; on the
 * test server, or on `server` (a URL of its maintenance database).
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
