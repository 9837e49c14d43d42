import type { JobStatus } from "@turtle/db";
import type { Redis } from "ioredis";
import { channels } from "./queue.ts";

export interface JobEvent {
  jobId: string;
  status: JobStatus;
}

export function publishJobEvent(redis: Redis, queue: string, event: JobEvent): Promise<number> {
  return redis.publish(channels(queue).jobEvents, JSON.stringify(event));
}

/**
 * Fans one Redis subscription out to in-process waiters, so an API instance can answer
 * `?wait=` for a job that a worker on another machine runs.
 */
export class JobEventHub {
  private readonly waiters = new Map<string, Set<(event: JobEvent) => void>>();
  private readonly subscriber: Redis;
  /** Resolves once the subscription is live: events published after it are seen. */
  readonly ready: Promise<unknown>;

  constructor(subscriber: Redis, queue: string) {
    this.subscriber = subscriber;
    const channel = channels(queue).jobEvents;
    this.ready = subscriber.subscribe(channel);
    subscriber.on("message", (from: string, message: string) => {
      if (from !== channel) return;
      let event: JobEvent;
      try {
        event = JSON.parse(message) as JobEvent;
      } catch {
        return;
      }
      for (const waiter of this.waiters.get(event.jobId) ?? []) waiter(event);
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

  async close(): Promise<void> {
    await this.subscriber.quit().catch(() => {});
  }
}
