// Each project's active jobs (queued or running), counted in Redis: the figure its concurrency
// limit reads, which the API and the workers both change.
import type { Redis } from "ioredis";

/**
 * A project's active jobs (queued or running) as a Redis sorted set: job id → when its slot was
 * taken. Submissions take a slot atomically against the project's limit; a job's end gives it
 * back. Postgres stays the record: a slot whose job is no longer active (a worker died between
 * the two) is found and freed when the set looks full (see ActiveJobs.reconcile).
 */
export function activeJobsKey(queue: string, projectId: string): string {
  return `${queue}:project:${projectId}:active`;
}

/**
 * KEYS[1] the set; ARGV: limit, job id, now (ms). The project's active jobs with this one once its
 * slot is taken (or already held), 0 when the project is at its limit.
 */
const TAKE_SLOT = `
local count = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then return count end
if count >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
return count + 1`;

/** KEYS[1] the set; ARGV: job id, now (ms). Takes a slot whatever the limit; returns the count. */
const HOLD_SLOT = `
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
return redis.call('ZCARD', KEYS[1])`;

type SlotCommands = {
  takeSlot(key: string, limit: number, jobId: string, now: number): Promise<number>;
  holdSlot(key: string, jobId: string, now: number): Promise<number>;
};

export class ActiveJobs {
  private readonly redis: Redis;
  private readonly queue: string;

  constructor(redis: Redis, queue: string) {
    this.redis = redis;
    this.queue = queue;
    if (typeof (redis as { takeSlot?: unknown }).takeSlot !== "function") {
      redis.defineCommand("takeSlot", { numberOfKeys: 1, lua: TAKE_SLOT });
    }
    if (typeof (redis as { holdSlot?: unknown }).holdSlot !== "function") {
      redis.defineCommand("holdSlot", { numberOfKeys: 1, lua: HOLD_SLOT });
    }
  }

  private get commands(): SlotCommands {
    return this.redis as unknown as SlotCommands;
  }

  /**
   * Takes a slot for the job if the project has fewer than `limit` active jobs. Returns the
   * project's active jobs counting this one (its place for fairPriority), or 0 when none is free.
   */
  take(projectId: string, jobId: string, limit: number): Promise<number> {
    return this.commands.takeSlot(activeJobsKey(this.queue, projectId), limit, jobId, Date.now());
  }

  /**
   * Takes a slot whatever the limit: for a job already accepted that runs again. Returns the
   * project's active jobs counting this one, as take does.
   */
  hold(projectId: string, jobId: string): Promise<number> {
    return this.commands.holdSlot(activeJobsKey(this.queue, projectId), jobId, Date.now());
  }

  /** Gives the job's slot back (the job ended, waits for a person, or was never recorded). */
  async release(projectId: string, jobId: string): Promise<void> {
    await this.redis.zrem(activeJobsKey(this.queue, projectId), jobId);
  }

  async count(projectId: string): Promise<number> {
    return this.redis.zcard(activeJobsKey(this.queue, projectId));
  }

  /**
   * Frees the slots of jobs that are not active any more: `stillActive` says which of the given
   * ids are queued or running in Postgres. Slots taken in the last `graceMs` are kept (their
   * submission may not have recorded its job yet). Returns how many were freed.
   */
  async reconcile(
    projectId: string,
    stillActive: (jobIds: string[]) => Promise<Set<string>>,
    graceMs = 10_000,
  ): Promise<number> {
    const key = activeJobsKey(this.queue, projectId);
    const members = await this.redis.zrangebyscore(key, "-inf", Date.now() - graceMs);
    if (members.length === 0) return 0;
    const active = await stillActive(members);
    const ended = members.filter((id) => !active.has(id));
    if (ended.length === 0) return 0;
    return this.redis.zrem(key, ...ended);
  }
}
