import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setProcessSecrets } from "@turtle/bindings";
import {
  ActiveJobs,
  type Config,
  channels,
  createSecretBox,
  metricsIndexKey,
  metricsKey,
  PolicyTable,
  parseServerRef,
  type QueuedJob,
  type SecretBox,
  sandboxWarnings,
  stdioSandbox,
  turtleSecrets,
  type WorkerInfo,
} from "@turtle/core";
import type { Db } from "@turtle/db";
import { Worker } from "bullmq";
import type { Redis } from "ioredis";
import pLimit, { type LimitFunction } from "p-limit";
import { CheckpointWriter } from "./checkpoints.ts";
import { WorkerMetrics } from "./metrics.ts";
import { ABORT_CANCEL, runJob } from "./run-job.ts";
import { RunStarter } from "./starts.ts";
import { ToolHosts } from "./tool-hosts.ts";

export interface TurtleWorkerDeps {
  config: Config;
  db: Db;
  /** BullMQ's commands; it duplicates this for its blocking connection. */
  redis: Redis;
  /** Job events go out on this (default: `redis`). */
  publisher?: Redis;
  /** A connection of its own for pub/sub. */
  subscriber: Redis;
  log?: (fields: Record<string, unknown>, message: string) => void;
  /** Opens servers' secrets (default: from config's SECRETS_KEY). */
  secrets?: SecretBox;
}

export interface TurtleWorker {
  readonly bull: Worker<QueuedJob, void, "run">;
  readonly checkpoints: CheckpointWriter;
  /** Resolves once the worker listens for jobs and cancel requests. */
  ready(): Promise<void>;
  /**
   * Stops taking jobs; running ones get `graceMs` to finish, then are handed back to the queue
   * for another worker to resume by replay.
   */
  close(graceMs: number): Promise<void>;
}

export function createTurtleWorker(deps: TurtleWorkerDeps): TurtleWorker {
  const { config, db, redis, subscriber } = deps;
  const log = deps.log ?? (() => {});
  const metrics = new WorkerMetrics();
  const checkpoints = new CheckpointWriter(db, {
    flushMs: config.CHECKPOINT_FLUSH_MS,
    batchMax: config.CHECKPOINT_BATCH_MAX,
    onBatch: metrics.batch,
  });
  let stopMetrics: (() => Promise<void>) | undefined;
  const starts = new RunStarter(db);
  // Whatever a server says is quoted without these (see @turtle/bindings' redact.ts).
  setProcessSecrets(turtleSecrets(config));
  for (const warning of sandboxWarnings(config)) log({ level: "warn" }, warning);
  const toolHosts = new ToolHosts(db, deps.secrets ?? createSecretBox(config), {
    idleMs: config.SERVER_IDLE_MS,
    maxMessageBytes: config.TOOL_RESULT_MAX_BYTES,
    onProtocolError: (server, error) =>
      log({ server, err: error.message }, "MCP server wrote a message that was dropped"),
    sandbox: stdioSandbox(config),
  });
  const running = new Map<string, { controller: AbortController; since: Date }>();
  const startedAt = new Date();
  const shutdown = new AbortController();

  // Keyed by server ref (project and name).
  const limiters = new Map<string, LimitFunction>();
  const limit = <T>(server: string, task: () => Promise<T>): Promise<T> => {
    let limiter = limiters.get(server);
    if (limiter === undefined) {
      limiter = pLimit(config.SERVER_CONCURRENCY);
      limiters.set(server, limiter);
    }
    return limiter(task);
  };

  const names = channels(config.TURTLE_QUEUE);
  // Each project's tool policies, read once and again after any change to them.
  const policyTables = new Map<string, Promise<PolicyTable>>();
  const policies = (projectId: string) => {
    const cached = policyTables.get(projectId);
    if (cached !== undefined) return cached;
    const loading = db.toolPolicy
      .findMany({ where: { projectId } })
      .then((rows) => new PolicyTable(rows));
    policyTables.set(projectId, loading);
    loading.catch(() => {
      if (policyTables.get(projectId) === loading) policyTables.delete(projectId);
    });
    return loading;
  };

  const subscribed = subscriber.subscribe(names.cancel, names.servers, names.policies);
  subscriber.on("message", (channel: string, message: string) => {
    if (channel === names.cancel) running.get(message)?.controller.abort(ABORT_CANCEL);
    else if (channel === names.servers) {
      const ref = parseServerRef(message);
      if (ref !== null) toolHosts.invalidate(ref.projectId);
    } else if (channel === names.policies) policyTables.delete(message);
  });
  const activeJobs = new ActiveJobs(deps.publisher ?? redis, config.TURTLE_QUEUE);

  const bull = new Worker<QueuedJob, void, "run">(
    config.TURTLE_QUEUE,
    (entry, token) =>
      runJob(
        entry,
        token,
        {
          config,
          db,
          publisher: deps.publisher ?? redis,
          toolHosts,
          checkpoints,
          starts,
          limit,
          log,
          metrics,
          policies,
          activeJobs,
          track: (jobId, controller) => {
            running.set(jobId, { controller, since: new Date() });
            return () => running.delete(jobId);
          },
        },
        shutdown.signal,
      ),
    {
      connection: redis,
      concurrency: config.WORKER_CONCURRENCY,
      autorun: false,
      // A worker that dies loses its lock: its jobs are redelivered after about this long.
      lockDuration: config.WORKER_LOCK_MS,
      stalledInterval: config.WORKER_LOCK_MS,
      // Turtle counts deliveries itself (and says why it gives up); BullMQ must not fail first.
      maxStalledCount: config.WORKER_MAX_DELIVERIES + 1,
    },
  );
  bull.on("error", (error) => log({ err: error.message }, "worker error"));
  bull.on("failed", (entry, error) => {
    if (entry !== undefined)
      log({ jobId: entry.data.jobId, err: error.message }, "job failed in the queue");
  });

  let closing: Promise<void> | null = null;
  return {
    bull,
    checkpoints,
    async ready() {
      await subscribed;
      void bull.run();
      await bull.waitUntilReady();
      const id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
      const describe = (): WorkerInfo => ({
        id,
        host: hostname(),
        pid: process.pid,
        concurrency: config.WORKER_CONCURRENCY,
        startedAt: startedAt.toISOString(),
        running: [...running].map(([jobId, run]) => ({ jobId, since: run.since.toISOString() })),
        finished: { ...metrics.finished },
      });
      stopMetrics = metrics.publish(
        deps.publisher ?? redis,
        metricsIndexKey(config.TURTLE_QUEUE),
        metricsKey(config.TURTLE_QUEUE, id),
        config.WORKER_METRICS_MS,
        describe,
      );
    },
    close(graceMs) {
      closing ??= (async () => {
        const grace = setTimeout(() => shutdown.abort(), graceMs);
        try {
          await bull.close();
        } finally {
          clearTimeout(grace);
        }
        await checkpoints.flush().catch(() => {});
        await stopMetrics?.();
        await toolHosts.close();
        await subscriber.quit().catch(() => {});
      })();
      return closing;
    },
  };
}
