import type { JobStatus } from "@turtle/db";
import type { Redis } from "ioredis";
import { channels } from "./queue.ts";

export interface JobEvent {
  jobId: string;
  /** The job's project: live lists (GET /v1/events) show a project only its own jobs. */
  projectId: string;
  status: JobStatus;
}

/**
 * What a running job does, as watchers see it live: a step starting or ending, a line it logged,
 * how many steps it has replayed.
 * Published per job on its own channel (only API instances streaming that job subscribe), in
 * batches, so a 1,000-step fan-out costs a few dozen messages, not 2,000. Each batch is also kept
 * for a while in a Redis list per run, so a watcher who arrives late starts with what it missed;
 * `seq` (per run) puts the two together without gaps or repeats.
 */
export type JobActivityItem =
  | {
      type: "step";
      key: string;
      server: string;
      tool: string;
      status: "running" | "succeeded" | "failed";
      attempt: number;
      startedAt: string;
      finishedAt?: string;
      durationMs?: number;
      error?: string;
    }
  | { type: "log"; level: string; message: string; at: number }
  /** Steps of this run replayed from checkpoints so far (a count that only grows). */
  | { type: "replayed"; count: number };

/**
 * An item as published: of which run and which delivery of it (a run handed back or redelivered
 * after a crash starts its activity again), and its place in that delivery's sequence.
 */
export type JobActivity = JobActivityItem & { run: number; delivery: number; seq: number };

/** Orders items of one run: by delivery, then by place. */
export function isAfter(item: JobActivity, last: { delivery: number; seq: number }): boolean {
  return item.delivery > last.delivery || (item.delivery === last.delivery && item.seq > last.seq);
}

/**
 * Batches of a run's activity kept for late watchers, for how long after the last one, and how
 * long once the run has ended (a watcher arriving then reads the ended job from Postgres).
 */
const BACKLOG_BATCHES = 200;
const BACKLOG_TTL_S = 3600;
const BACKLOG_AFTER_END_S = 60;

function backlogKey(queue: string, jobId: string, run: number): string {
  return `${queue}:job:${jobId}:run:${run}:activity`;
}

/**
 * Publishes a batch of a run's activity and, with `keep`, keeps it for late watchers; `ended`
 * shortens what is kept to a minute. One round trip.
 */
export async function publishJobActivity(
  redis: Redis,
  queue: string,
  jobId: string,
  run: number,
  activity: JobActivity[],
  options: { keep: boolean; ended?: boolean },
): Promise<void> {
  const key = backlogKey(queue, jobId, run);
  const pipeline = redis.pipeline();
  if (activity.length > 0) {
    const json = JSON.stringify(activity);
    if (options.keep) pipeline.rpush(key, json).ltrim(key, -BACKLOG_BATCHES, -1);
    pipeline.publish(channels(queue).activity(jobId), json);
  }
  pipeline.expire(key, options.ended ? BACKLOG_AFTER_END_S : BACKLOG_TTL_S);
  await pipeline.exec();
}

/** The activity of a job's run kept so far (its latest batches), oldest first. */
export async function readJobActivity(
  redis: Redis,
  queue: string,
  jobId: string,
  run: number,
): Promise<JobActivity[]> {
  const batches = await redis.lrange(backlogKey(queue, jobId, run), 0, -1);
  return batches.flatMap((batch) => {
    try {
      const parsed = JSON.parse(batch) as unknown;
      return Array.isArray(parsed) ? (parsed as JobActivity[]) : [];
    } catch {
      return [];
    }
  });
}

export function publishJobEvent(redis: Redis, queue: string, event: JobEvent): Promise<number> {
  return redis.publish(channels(queue).jobEvents, JSON.stringify(event));
}

/** One listener's failure must not keep the others from hearing the event. */
function callSafely<T>(listener: (value: T) => void, value: T): void {
  try {
    listener(value);
  } catch (error) {
    // Reported, not rethrown: rethrown here it would end the process that hosts every listener.
    process.emitWarning(`a job event listener failed: ${(error as Error)?.stack ?? String(error)}`);
  }
}

/**
 * Fans one Redis subscription out to in-process waiters, so an API instance can answer
 * `?wait=` for a job that a worker on another machine runs.
 */
export class JobEventHub {
  private readonly waiters = new Map<string, Set<(event: JobEvent) => void>>();
  /** Listeners to every job's status events. */
  private readonly everyJob = new Set<(event: JobEvent) => void>();
  private readonly watchers = new Map<
    string,
    { listeners: Set<(activity: JobActivity[]) => void>; live: Promise<void> }
  >();
  private readonly subscriber: Redis;
  private readonly queue: string;
  /** Resolves once the subscription is live: events published after it are seen. */
  readonly ready: Promise<unknown>;

  constructor(subscriber: Redis, queue: string) {
    this.subscriber = subscriber;
    this.queue = queue;
    const channel = channels(queue).jobEvents;
    // `<queue>:job:<id>:activity`, split around the id.
    const [activityHead, activityTail] = channels(queue).activity("\u0000").split("\u0000") as [
      string,
      string,
    ];
    this.ready = subscriber.subscribe(channel);
    subscriber.on("message", (from: string, message: string) => {
      if (from.startsWith(activityHead) && from.endsWith(activityTail) && from !== channel) {
        this.deliverActivity(from.slice(activityHead.length, -activityTail.length), message);
        return;
      }
      if (from !== channel) return;
      let event: JobEvent;
      try {
        event = JSON.parse(message) as JobEvent;
      } catch {
        return;
      }
      for (const waiter of this.waiters.get(event.jobId) ?? []) callSafely(waiter, event);
      for (const listener of this.everyJob) callSafely(listener, event);
    });
  }

  /** Resolves with the first event for the job that `accept` takes, or null at the deadline. */
  async waitFor(
    jobId: string,
    timeoutMs: number,
    accept: (event: JobEvent) => boolean,
    signal?: AbortSignal,
  ): Promise<JobEvent | null> {
    await this.ready;
    if (signal?.aborted) return null;
    return new Promise((resolve) => {
      const set = this.waiters.get(jobId) ?? new Set();
      this.waiters.set(jobId, set);
      const done = (event: JobEvent | null) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        set.delete(waiter);
        if (set.size === 0) this.waiters.delete(jobId);
        resolve(event);
      };
      const waiter = (event: JobEvent) => {
        if (accept(event)) done(event);
      };
      const onAbort = () => done(null);
      const timer = setTimeout(() => done(null), timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      set.add(waiter);
    });
  }

  /**
   * Calls `listener` with each batch of the job's activity until the returned function is
   * called. Resolves once the subscription is live; rejects (keeping nothing) when it fails.
   */
  async watch(jobId: string, listener: (activity: JobActivity[]) => void): Promise<() => void> {
    let entry = this.watchers.get(jobId);
    const channel = channels(this.queue).activity(jobId);
    if (entry === undefined) {
      const fresh = {
        listeners: new Set<(activity: JobActivity[]) => void>(),
        live: Promise.resolve(),
      };
      fresh.live = this.subscriber.subscribe(channel).then(() => {});
      entry = fresh;
      this.watchers.set(jobId, entry);
    }
    const watching = entry;
    watching.listeners.add(listener);
    const stop = () => {
      if (!watching.listeners.delete(listener) || watching.listeners.size > 0) return;
      if (this.watchers.get(jobId) === watching) this.watchers.delete(jobId);
      this.subscriber.unsubscribe(channel).catch(() => {});
    };
    try {
      // Every watcher waits for the one subscription, made by the first.
      await watching.live;
    } catch (error) {
      stop();
      if (this.watchers.get(jobId) === watching) this.watchers.delete(jobId);
      throw error;
    }
    return stop;
  }

  /** Calls `listener` with every status event of the job until the returned function is called. */
  listen(jobId: string, listener: (event: JobEvent) => void): () => void {
    const set = this.waiters.get(jobId) ?? new Set();
    this.waiters.set(jobId, set);
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.waiters.get(jobId) === set) this.waiters.delete(jobId);
    };
  }

  /** Calls `listener` with every job's status events until the returned function is called. */
  listenAll(listener: (event: JobEvent) => void): () => void {
    this.everyJob.add(listener);
    return () => {
      this.everyJob.delete(listener);
    };
  }

  private deliverActivity(jobId: string, message: string): void {
    const set = this.watchers.get(jobId)?.listeners;
    if (set === undefined) return;
    let activity: JobActivity[];
    try {
      activity = JSON.parse(message) as JobActivity[];
    } catch {
      return;
    }
    if (!Array.isArray(activity)) return;
    for (const listener of set) callSafely(listener, activity);
  }

  async close(): Promise<void> {
    await this.subscriber.quit().catch(() => {});
  }
}
