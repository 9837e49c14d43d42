// Turtle's test support: fixtures first, then the plain functions behind them, for tests that
// start, kill and restart processes themselves.

// The tests' own processes need free ports too; it lives in core beside the scripts' use.
export { freePort } from "@turtle/core";
export {
  type FleetOptions,
  fleetEnv,
  type StartApiOptions,
  startApi,
  startFleet,
  startWorker,
  type TestApi,
  type TestFleet,
  testConfig,
} from "./api.ts";
export { type Outcome, runTurtle } from "./cli.ts";
export {
  createTestDatabase,
  TEST_SERVER_URL,
  type TestDatabase,
  testQueueName,
} from "./database.ts";
export { eventually } from "./eventually.ts";
export { it, test } from "./fixtures.ts";
export {
  API_MAIN,
  CONTROL_SERVER,
  EVERYTHING_SERVER,
  MEMORY_SERVER,
  REPO_ROOT,
  SLOW,
  TEST_SECRETS_KEY,
  TURTLE_BIN,
  UNCONFINED,
  UNCONFINED_POOL,
  WORKER_MAIN,
} from "./paths.ts";
export {
  createPlatform,
  type Execution,
  type Platform,
  type PlatformOptions,
} from "./platform.ts";
export { killWorker, spawnWorker, type TestWorker } from "./processes.ts";
export {
  controlServer,
  type HttpServer,
  isAlive,
  nodeServer,
  rejection,
  startEverythingHttp,
  tempDir,
} from "./servers.ts";
