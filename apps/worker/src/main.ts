/**
 * `npm run worker`: one worker process. Start as many as you like, on any machine that reaches
 * the same Postgres and Redis.
 */
import { existsSync } from "node:fs";
import { createRedis, createSecretBox, loadConfig, type SecretBox } from "@turtle/core";
import { createDb } from "@turtle/db";
import { createTurtleWorker } from "./worker.ts";

if (existsSync(".env")) process.loadEnvFile(".env");

let config: ReturnType<typeof loadConfig>;
let secrets: SecretBox;
try {
  config = loadConfig();
  secrets = createSecretBox(config);
} catch (error) {
  process.stderr.write(`turtle worker: ${(error as Error).message}\n`);
  process.exit(2);
}

// Lines logged in one turn of the event loop go out in one write: a busy worker logs a line per
// job, hundreds a second.
let unwritten = "";
const writeLog = () => {
  if (unwritten === "") return;
  process.stdout.write(unwritten);
  unwritten = "";
};
const log = (fields: Record<string, unknown>, message: string) => {
  if (config.LOG_LEVEL === "silent") return;
  if (unwritten === "") setImmediate(writeLog);
  unwritten += `${JSON.stringify({ time: new Date().toISOString(), pid: process.pid, msg: message, ...fields })}\n`;
};

const db = createDb(config.DATABASE_URL, {
  max: Math.max(4, Math.ceil(config.WORKER_CONCURRENCY / 2)),
});
const redis = createRedis(config.REDIS_URL, "turtle-worker");
const subscriber = createRedis(config.REDIS_URL, "turtle-worker-events");
const publisher = createRedis(config.REDIS_URL, "turtle-worker-publish", { autoPipelining: true });
const worker = createTurtleWorker({ config, db, redis, subscriber, publisher, log, secrets });

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  log({ signal, graceMs: config.WORKER_SHUTDOWN_GRACE_MS }, "worker stopping");
  await worker.close(config.WORKER_SHUTDOWN_GRACE_MS);
  await db.$disconnect();
  await redis.quit().catch(() => {});
  await publisher.quit().catch(() => {});
  log({}, "worker stopped");
  writeLog();
  process.exit(0);
};
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));

await worker.ready();
log({ queue: config.TURTLE_QUEUE, concurrency: config.WORKER_CONCURRENCY }, "worker ready");
