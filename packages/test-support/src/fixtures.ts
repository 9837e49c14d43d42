/**
 * Turtle's vitest fixtures: `import { test } from "@turtle/test-support"` and ask for what a test
 * needs by name. Each is made only when a test (or another fixture) asks for it.
 *
 * - `database` (per file): a fresh, migrated database; dropped after the file.
 * - `queueName` (per test): a queue name nobody else uses.
 * - `api` (per file): the real app in this process on the file's `database` and a queue of its
 *   own, with `key` and `call()`; emptied and closed after the file. `apiOptions` (per file,
 *   default none) changes its environment or app options: `test.override("apiOptions", {...})`.
 * - `fleet` (per file): the API listening, the servers of `fleetOptions` registered and one
 *   worker process; the worker stopped, the API closed and its database dropped after the file.
 * - `platform` (per test): database, queue, the control server registered, workers and the API
 *   on demand (see platform.ts); everything stopped and dropped after the test.
 *   `platformOptions` (per test) changes its environment or Postgres server.
 * - `worker` (per test): one worker process on `platform`, killed with the platform.
 */
import { test as base } from "vitest";
import {
  type FleetOptions,
  type StartApiOptions,
  startApi,
  startFleet,
  type TestApi,
  type TestFleet,
} from "./api.ts";
import { createTestDatabase, type TestDatabase, testQueueName } from "./database.ts";
import { createPlatform, type Platform, type PlatformOptions } from "./platform.ts";
import type { TestWorker } from "./processes.ts";

export const test = base
  // vitest reads a fixture's dependencies from its first parameter, which must be a pattern.
  // biome-ignore lint/correctness/noEmptyPattern: this fixture depends on none.
  .extend("database", { scope: "file" }, async ({}, { onCleanup }): Promise<TestDatabase> => {
    const database = await createTestDatabase("test");
    onCleanup(() => database.drop());
    return database;
  })
  .extend("queueName", async (): Promise<string> => testQueueName())
  .extend("apiOptions", { scope: "file" }, {} as Omit<StartApiOptions, "database">)
  .extend("api", { scope: "file" }, async ({ database, apiOptions }, { onCleanup }) => {
    const api: TestApi = await startApi({ ...apiOptions, database });
    onCleanup(() => api.close());
    return api;
  })
  .extend("fleetOptions", { scope: "file" }, { servers: () => [] } as FleetOptions)
  .extend("fleet", { scope: "file" }, async ({ fleetOptions }, { onCleanup }) => {
    const fleet: TestFleet = await startFleet(fleetOptions);
    onCleanup(() => fleet.close());
    return fleet;
  })
  .extend("platformOptions", {} as PlatformOptions)
  .extend("platform", async ({ platformOptions }, { onCleanup }) => {
    const platform: Platform = await createPlatform(platformOptions);
    onCleanup(() => platform.close());
    return platform;
  })
  .extend("worker", async ({ platform }): Promise<TestWorker> => platform.startWorker());

export const it = test;
