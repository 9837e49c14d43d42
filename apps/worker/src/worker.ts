import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setProcessSecrets } from "@turtle/bindings";
import {
  ActiveJobs,
  type Config,
  channels,
  createSecretBox,
  JobStates,
  metricsIndexKey,
  metricsKey,
  PolicyTable,
  parseServerRef,
  type QueuedJob,
  type SecretBox,
  type SecretsKeyMissingError,
  sandboxWarnings,
  stdioSandbox,
  turtleSecrets,
  type WorkerInfo,
} from "@turtle/core";
import type { Db } from "@turtle/db";
import { WaitingError, type Worker } from "bullmq";
import type { Redis } from "ioredis";
import { CheckpointWriter } from "./checkpoints.ts";
import { Leases, LeasingWorker } from "./leases.ts";
import { WorkerMetrics } from "./metrics.ts";
import { giveBack, ProjectShares, peekProjects } from "./project-shares.ts";
import { ABORT_CANCEL, ABORT_FENCED, ABORT_LEASE, runJob } from "./run-job.ts";
import { RunStarter } from "./starts.ts";
import { ToolHosts } from "./tool-hosts.ts";

/** How long a cancel request that found no run here is kept for a run about to register. */
const UNCLAIMED_CANCEL_MS = 60_000;

/** A key this worker lacks is logged at most this often, however many jobs it hands back. */
const KEY_MISSING_LOG_MS = 60_000;

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
  // Each run, with the start of its job (`attempts`) it is. Two runs of one job can be here at
  // once: an entry whose lock lapsed can be delivered again to the same worker.
  const running = new Set<{
    jobId: string;
    attempt: number;
    controller: AbortController;
    since: Date;
  }>();
  const checkpoints = new CheckpointWriter(db, {
    flushMs: config.CHECKPOINT_FLUSH_MS,
    batchMax: config.CHECKPOINT_BATCH_MAX,
    onBatch: metrics.batch,
    // Another delivery started the job, or it ended: this run must make no more calls.
    onFenced: (jobId, attempt) => {
      for (const run of running) {
        if (run.jobId === jobId && run.attempt === attempt) run.controller.abort(ABORT_FENCED);
      }
    },
  });
  const leases = new Leases(config.WORKER_LOCK_MS);
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
    serverConcurrency: config.SERVER_CONCURRENCY,
    connectTimeoutMs: config.SERVER_CONNECT_TIMEOUT_MS,
  });
  const startedAt = new Date();
  const shutdown = new AbortController();

  // Jobs whose servers' secrets are sealed with a key this worker lacks go back to the queue
  // (see run-job.ts): counted each time, and said loudly, once a minute per key at most.
  const keyMissingSaid = new Map<string, { at: number; since: number }>();
  const onKeyMissing = (error: SecretsKeyMissingError, jobId: string) => {
    const { kid } = error;
    metrics.keyMissing(kid);
    const now = performance.now();
    const said = keyMissingSaid.get(kid);
    if (said !== undefined && now - said.at < KEY_MISSING_LOG_MS) {
      said.since++;
      return;
    }
    keyMissingSaid.set(kid, { at: now, since: 0 });
    const { projectId, name } = error.server;
    // The project's name helps the operator; if Postgres cannot say it, the line goes without.
    void db.project
      .findUnique({ where: { id: projectId }, select: { name: true } })
      .catch(() => null)
      .then((project) => {
        const where = `MCP server "${name}" of project ${project ? `"${project.name}"` : projectId}`;
        log(
          {
            level: "error",
            kid,
            server: name,
            projectId,
            ...(project ? { project: project.name } : {}),
            jobId,
            handedBackSinceLastLine: said?.since ?? 0,
          },
          `this worker lacks key ${kid}, which the secrets of ${where} are sealed with (neither its SECRETS_KEY nor in SECRETS_READ_KEYS): jobs that need them are handed back to the queue for a worker that has the key, and stay queued, never failed, while no worker has it. Add that key to SECRETS_READ_KEYS of every worker (it is the SECRETS_KEY of the API that registered the server), or register the server again through an API whose key the workers have`,
        );
      });
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

  // Cancel requests that found no run of their job here, with when (monotonic) they came. The API
  // asks only once the job's start is committed, so the request can come before the run that
  // started it is registered (see track); kept a minute, long after any such run registers.
  const unclaimedCancels = new Map<string, number>();
  const rememberCancel = (jobId: string) => {
    const now = performance.now();
    for (const [id, at] of unclaimedCancels) {
      if (now - at < UNCLAIMED_CANCEL_MS) break;
      unclaimedCancels.delete(id);
    }
    unclaimedCancels.delete(jobId);
    unclaimedCancels.set(jobId, now);
  };

  const subscribed = subscriber.subscribe(names.cancel, names.servers, names.policies);
  subscriber.on("message", (channel: string, message: string) => {
    if (channel === names.cancel) {
      let claimed = false;
      for (const run of running) {
        if (run.jobId !== message) continue;
        run.controller.abort(ABORT_CANCEL);
        claimed = true;
      }
      if (!claimed) rememberCancel(message);
    } else if (channel === names.servers) {
      const ref = parseServerRef(message);
      if (ref !== null) toolHosts.invalidate(ref.projectId);
    } else if (channel === names.policies) policyTables.delete(message);
  });
  const activeJobs = new ActiveJobs(deps.publisher ?? redis, config.TURTLE_QUEUE);
  const states = new JobStates({
    db,
    redis: deps.publisher ?? redis,
    queueName: config.TURTLE_QUEUE,
    activeJobs,
    // Runs start and finish in batches: several jobs to a statement.
    runs: {
      start: (jobId, run) => starts.start(jobId, run),
      finish: (end) => checkpoints.finish(end),
    },
    warn: log,
  });
  const shares = new ProjectShares({
    perProject: config.WORKER_PROJECT_CONCURRENCY,
    slots: config.WORKER_CONCURRENCY,
    waitMs: config.WORKER_SHARE_WAIT_MS,
    peek: (count) => peekProjects(deps.publisher ?? redis, bull, count),
    onError: (error) => log({ err: (error as Error).message }, "could not read the queue's head"),
  });

  const bull: Worker<QueuedJob, void, "run"> = new LeasingWorker(
    config.TURTLE_QUEUE,
    async (entry, token) => {
      // The lease is taken at delivery, not when the run starts: a job waiting here for its
      // project's share holds the entry too, its lock's renewals count, and losing the lock
      // while it waits must stop it before it starts the job another worker may have taken.
      const lost = new AbortController();
      const lease = leases.take(String(entry.id), entry.processedOn ?? Date.now(), () =>
        lost.abort(ABORT_LEASE),
      );
      try {
        // Decided before the job is started in Postgres: a job given back was never delivered.
        // (An entry queued before entries named their project shares one bucket.)
        const project = entry.data.projectId ?? "";
        const share =
          (await shares.acquire(project, lost.signal)) ??
          (lease.holds() ? await giveBack(entry, token, lease.holds) : null);
        // Lost while it waited: the entry is another worker's, or back in the queue. Nothing
        // was written; BullMQ must leave the entry alone.
        if (share === null) throw new WaitingError();
        try {
          return await runJob(
            entry,
            token,
            {
              config,
              db,
              publisher: deps.publisher ?? redis,
              toolHosts,
              checkpoints,
              states,
              log,
              metrics,
              policies,
              onKeyMissing,
              holds: lease.holds,
              track: ({ jobId, attempt, startAskedAt }, controller) => {
                const run = { jobId, attempt, controller, since: new Date() };
                running.add(run);
                // Asked for after this run's start was: meant for it (an earlier run's came
                // before its end, so before this start).
                const cancelledAt = unclaimedCancels.get(jobId);
                if (cancelledAt !== undefined && cancelledAt >= startAskedAt) {
                  controller.abort(ABORT_CANCEL);
                }
                const onLost = () => controller.abort(ABORT_LEASE);
                if (lost.signal.aborted) onLost();
                else lost.signal.addEventListener("abort", onLost, { once: true });
                return {
                  holds: lease.holds,
                  release() {
                    running.delete(run);
                    lost.signal.removeEventListener("abort", onLost);
                  },
                };
              },
            },
            shutdown.signal,
          );
        } finally {
          share();
        }
      } finally {
        lease.release();
      }
    },
    {
      connection: redis,
      // Jobs waiting on tool calls cost memory, not CPU: more slots than cores, shared fairly.
      concurrency: config.WORKER_CONCURRENCY,
      autorun: false,
      // A worker that dies loses its lock: its jobs are redelivered after about this long.
      lockDuration: config.WORKER_LOCK_MS,
      stalledInterval: config.WORKER_LOCK_MS,
      // Turtle counts deliveries itself (and says why it gives up); BullMQ must not fail first.
      maxStalledCount: config.WORKER_MAX_DELIVERIES + 1,
    },
    leases,
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
        running: [...running].map((run) => ({ jobId: run.jobId, since: run.since.toISOString() })),
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
        // Jobs waiting here for their project's share go back to the queue at once.
        shares.close();
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
