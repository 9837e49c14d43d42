// What a worker tells the rest of the fleet about itself, kept in Redis: its Prometheus
// snapshot and its description, both expiring a few periods after it stops refreshing them,
// listed in a sorted set scored by that expiry. Workers write them (apps/worker/src/metrics.ts);
// any API instance reads them for /metrics and GET /v1/workers.
import type { Redis } from "ioredis";

/** Where a worker's snapshot lives, and the sorted set (by expiry) that lists the live ones. */
export function metricsKey(queue: string, worker: string): string {
  return `${queue}:metrics:worker:${worker}`;
}
export function metricsIndexKey(queue: string): string {
  return `${queue}:metrics:workers`;
}
/** Where a worker's description (WorkerInfo) lives, beside its snapshot. */
export function workerInfoKey(metricsKey: string): string {
  return `${metricsKey}:info`;
}

/** What the dashboard's workers page shows of a worker; stored with each snapshot. */
export interface WorkerInfo {
  id: string;
  host: string;
  pid: number;
  concurrency: number;
  startedAt: string;
  /** The jobs it runs now, and since when. */
  running: Array<{ jobId: string; since: string }>;
  /** Runs it has finished since it started, by how they ended. */
  finished: Record<string, number>;
}

/** The metrics keys of the workers alive now (dropping from the index those that expired). */
async function liveWorkerKeys(redis: Redis, queue: string): Promise<string[]> {
  const index = metricsIndexKey(queue);
  const now = Date.now();
  await redis.zremrangebyscore(index, "-inf", now);
  return redis.zrangebyscore(index, now, "+inf");
}

/** The worker a metrics key names. */
function workerIdOf(queue: string, key: string): string {
  return key.slice(metricsKey(queue, "").length);
}

/**
 * What each live worker stored under `keyOf(its metrics key)`, parsed (its snapshot with the
 * identity, its description with workerInfoKey); a worker whose value is gone or unreadable is
 * left out.
 */
export async function readLiveWorkers<T>(
  redis: Redis,
  queue: string,
  keyOf: (metricsKey: string) => string,
): Promise<Array<{ worker: string; value: T }>> {
  const keys = await liveWorkerKeys(redis, queue);
  if (keys.length === 0) return [];
  const values = await redis.mget(...keys.map(keyOf));
  return values.flatMap((text, i) => {
    if (text === null) return [];
    try {
      return [{ worker: workerIdOf(queue, keys[i] ?? ""), value: JSON.parse(text) as T }];
    } catch {
      return [];
    }
  });
}

/** The descriptions of the workers alive now, oldest first. */
export async function readWorkers(redis: Redis, queue: string): Promise<WorkerInfo[]> {
  const workers = (await readLiveWorkers<WorkerInfo>(redis, queue, workerInfoKey)).map(
    (entry) => entry.value,
  );
  return workers.sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
}
