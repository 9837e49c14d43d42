import { createHash } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type ResolvedMethod,
  resolveMethod,
  ServerUnavailableError,
  type ToolHost,
} from "@turtle/bindings";
import type { JobActivityItem, PolicyTable } from "@turtle/core";
import type { ToolCall } from "@turtle/sandbox";
import { stringify } from "safe-stable-stringify";
import type { CheckpointWriter } from "./checkpoints.ts";

/** What a run knows of a job's earlier checkpoints. */
export interface PriorSteps {
  /** Results of succeeded steps by key, when the host answers replays (else the isolate does). */
  results: ReadonlyMap<string, unknown>;
  /** The highest `seq` used so far, -1 for none. */
  maxSeq: number;
}

export interface DurableStepsInit {
  jobId: string;
  /** The job's project: its audit log gets every call. */
  projectId: string;
  attempt: number;
  /**
   * Whether the run may still make a call (its worker holds the job): asked as each call goes
   * out, after any wait for a slot. False means the run has been stopped.
   */
  holds?: () => boolean;
  host: ToolHost;
  prior: PriorSteps;
  checkpoints: CheckpointWriter;
  /** Epoch ms when the job's time is up: no call waits for its answer past it. */
  deadline?: number;
  /** Bounds calls in flight to one server from this worker. */
  limit: <T>(server: string, task: () => Promise<T>) => Promise<T>;
  /** Told when an executed step starts and when it ends, for live watchers. */
  onStep?: (activity: JobActivityItem) => void;
  /** Told when a step is replayed here (`replayedKeys` has grown). */
  onReplay?: () => void;
  /**
   * Calls that fail because their server went away (it died, its connection broke) are made
   * again, this many more times at most, after `backoffMs`, doubling — with the same idempotency
   * key, so a server that had done the work before it died can answer without doing it again.
   */
  retry?: { retries: number; backoffMs: number };
  /** The tool policies in force, and the decisions people made on this job's calls. */
  policies?: PolicyTable;
  approvals?: ReadonlyMap<string, { status: string; reason: string | null; args?: unknown }>;
  /**
   * A call needs a person's approval that it does not have: record the request and pause the
   * run (the call's promise never settles for the program; the run ends and the job waits).
   */
  requestApproval?: (request: { key: string; server: string; tool: string; args: unknown }) => void;
  /** Told before a call is made again. */
  onRetry?: (retry: {
    server: string;
    tool: string;
    key: string;
    retry: number;
    error: string;
  }) => void;
}

/** Whether a failed call may be made again: its server was unreachable, not its answer an error. */
function isServerLost(error: unknown): boolean {
  return error instanceof ServerUnavailableError;
}

/**
 * Makes every tool call of one run a step, keyed by the step key the sandbox derived. A call
 * whose key has a succeeded checkpoint is replayed (usually inside the isolate already; here
 * when the checkpoints were too large to hand it); any other is executed — carrying
 * `jobId:key` as its idempotency key, so a server can drop the duplicate that a crash between
 * execution and checkpoint can cause — and checkpointed.
 */
export class DurableSteps {
  executed = 0;
  readonly replayedKeys: string[] = [];
  private nextSeq: number;
  private readonly init: DurableStepsInit;

  constructor(init: DurableStepsInit) {
    this.init = init;
    this.nextSeq = init.prior.maxSeq + 1;
  }

  /** The sandbox's invoker. */
  readonly invoke = async (call: ToolCall): Promise<unknown> => {
    const { host, jobId, projectId, attempt, checkpoints, limit, onStep } = this.init;
    const target = resolveMethod(host.catalog, call.namespace, call.method);
    const key = call.key;
    if (target === undefined || key === undefined) return host.invoke(call);
    const results = this.init.prior.results;
    if (results.has(key)) {
      this.replayedKeys.push(key);
      this.init.onReplay?.();
      return results.get(key);
    }
    const argsHash = hashArgs(call.args);
    const refused = this.checkPolicy(key, target, call.args, argsHash);
    if (refused !== undefined) return refused;
    const seq = this.nextSeq++;
    const startedAt = new Date();
    const base = {
      projectId,
      jobId,
      key,
      seq,
      server: target.server,
      tool: target.tool,
      argsHash,
      attempt,
      startedAt,
    };
    const step = {
      type: "step" as const,
      key,
      server: target.server,
      tool: target.tool,
      attempt,
      startedAt: startedAt.toISOString(),
    };
    onStep?.({ ...step, status: "running" });
    try {
      const { retries, backoffMs } = this.init.retry ?? { retries: 0, backoffMs: 0 };
      let result: unknown;
      for (let retry = 0; ; retry++) {
        try {
          result = await limit(target.server, () => {
            if (this.init.holds?.() === false) throw new RunStoppedError();
            return host.invoke({
              ...call,
              idempotencyKey: `${jobId}:${key}`,
              ...(this.init.deadline === undefined ? {} : { deadline: this.init.deadline }),
            });
          });
          break;
        } catch (error) {
          if (call.signal.aborted || retry >= retries || !isServerLost(error)) throw error;
          this.init.onRetry?.({
            server: target.server,
            tool: target.tool,
            key,
            retry: retry + 1,
            error: (error as Error).message,
          });
          try {
            await sleep(backoffMs * 2 ** retry, undefined, { signal: call.signal });
          } catch {
            throw error;
          }
        }
      }
      this.executed++;
      const finishedAt = new Date();
      checkpoints.add({ ...base, status: "succeeded", result, error: null, finishedAt });
      onStep?.({ ...step, status: "succeeded", ...ended(startedAt, finishedAt) });
      return result;
    } catch (error) {
      // A call cut short by the run's end (cancel, deadline) is not a finding about the tool;
      // one whose timeout was the job's deadline ends a moment before the run is stopped.
      const deadline = this.init.deadline;
      if (!call.signal.aborted && (deadline === undefined || Date.now() < deadline)) {
        this.executed++;
        const detail = error as { message?: unknown; code?: unknown };
        const message = typeof detail?.message === "string" ? detail.message : String(error);
        const finishedAt = new Date();
        checkpoints.add({
          ...base,
          status: "failed",
          result: null,
          error: {
            message,
            code: typeof detail?.code === "string" ? detail.code : "tool_error",
          },
          finishedAt,
        });
        onStep?.({ ...step, status: "failed", ...ended(startedAt, finishedAt), error: message });
      }
      throw error;
    }
  };

  /**
   * What the tool policies say of a call about to be made: nothing (it may run), or a promise
   * that rejects (denied, rejected) or never settles (waiting for a person; the run pauses).
   */
  private checkPolicy(
    key: string,
    target: ResolvedMethod,
    args: unknown,
    argsHash: string,
  ): Promise<never> | undefined {
    const { policies, approvals, requestApproval } = this.init;
    if (policies === undefined) return undefined;
    const { server, tool } = target;
    const { policy } = policies.resolve(server, tool, target.annotations);
    if (policy === "allow") return undefined;
    const refuse = (code: "denied" | "rejected", message: string) => {
      const now = new Date();
      const { jobId, projectId, attempt } = this.init;
      this.init.checkpoints.audit({
        projectId,
        jobId,
        key,
        server,
        tool,
        argsHash,
        status: code,
        error: { code, message },
        attempt,
        startedAt: now,
        finishedAt: now,
      });
      return Promise.reject(new ToolRefusedError(server, tool, code, message));
    };
    if (policy === "deny")
      return refuse("denied", `${server}.${tool} is denied by its tool policy`);
    const decision = approvals?.get(key);
    // Found by step key, whose hash is not cryptographic: the decision counts only for the very
    // arguments the person saw (SHA-256 of their canonical JSON, as the audit log keeps them).
    if (decision !== undefined && "args" in decision && hashArgs(decision.args) !== argsHash) {
      return refuse("rejected", `${server}.${tool} was approved for other arguments`);
    }
    if (decision?.status === "approved") return undefined;
    if (decision?.status === "rejected") {
      const why = decision.reason ? `: ${decision.reason}` : "";
      return refuse("rejected", `${server}.${tool} was rejected${why}`);
    }
    requestApproval?.({ key, server, tool, args });
    return new Promise<never>(() => {});
  }
}

/** A call not made because its run was stopped meanwhile (it no longer holds its job). */
class RunStoppedError extends Error {
  override readonly name = "RunStoppedError";
  constructor() {
    super("The run was stopped before this call: its worker no longer holds the job");
  }
}

/** A call the tool policies refuse: a ToolError (code `denied` or `rejected`) for the program. */
export class ToolRefusedError extends Error {
  override readonly name = "ToolError";
  readonly server: string;
  readonly tool: string;
  readonly code: "denied" | "rejected";

  constructor(server: string, tool: string, code: "denied" | "rejected", message: string) {
    super(message);
    this.server = server;
    this.tool = tool;
    this.code = code;
  }
}

/**
 * The audit log's fingerprint of a call's arguments: SHA-256 of their canonical JSON (keys
 * sorted at every level), so the same arguments always hash the same whatever their key order.
 */
export function hashArgs(args: unknown): string {
  return createHash("sha256")
    .update(stringify(args ?? null) ?? "null")
    .digest("hex");
}

/** A step's end as live watchers (and metrics) see it. */
function ended(startedAt: Date, finishedAt: Date) {
  return {
    finishedAt: finishedAt.toISOString(),
    durationMs: finishedAt.getTime() - startedAt.getTime(),
  };
}
