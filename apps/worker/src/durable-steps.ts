import { resolveMethod, type ToolHost } from "@turtle/bindings";
import { createStepKeyer } from "@turtle/core";
import type { ToolCall } from "@turtle/sandbox";
import type { CheckpointWriter } from "./checkpoints.ts";

/** What a run knows of a job's earlier checkpoints. */
export interface PriorStep {
  key: string;
  status: "succeeded" | "failed";
  result: unknown;
  seq: number;
}

export interface DurableStepsInit {
  jobId: string;
  attempt: number;
  host: ToolHost;
  prior: readonly PriorStep[];
  checkpoints: CheckpointWriter;
  /** Bounds calls in flight to one server from this worker. */
  limit: <T>(server: string, task: () => Promise<T>) => Promise<T>;
}

/**
 * Makes every tool call of one run a step: a call whose key has a succeeded checkpoint is
 * replayed from it; any other is executed — carrying `jobId:key` as its idempotency key, so a
 * server can drop the duplicate that a crash between execution and checkpoint can cause — and
 * checkpointed.
 */
export class DurableSteps {
  executed = 0;
  readonly replayedKeys: string[] = [];
  private readonly done = new Map<string, PriorStep>();
  private readonly keyOf = createStepKeyer();
  private nextSeq: number;
  private readonly init: DurableStepsInit;

  constructor(init: DurableStepsInit) {
    this.init = init;
    let maxSeq = -1;
    for (const step of init.prior) {
      if (step.status === "succeeded") this.done.set(step.key, step);
      maxSeq = Math.max(maxSeq, step.seq);
    }
    this.nextSeq = maxSeq + 1;
  }

  /** The sandbox's invoker. */
  readonly invoke = async (call: ToolCall): Promise<unknown> => {
    const { host, jobId, attempt, checkpoints, limit } = this.init;
    const target = resolveMethod(host.catalog, call.namespace, call.method);
    if (target === undefined) return host.invoke(call);
    const key = this.keyOf(target.server, target.tool, call.args);
    const prior = this.done.get(key);
    if (prior !== undefined) {
      this.replayedKeys.push(key);
      return prior.result;
    }
    const seq = this.nextSeq++;
    const startedAt = new Date();
    const base = { jobId, key, seq, server: target.server, tool: target.tool, attempt, startedAt };
    try {
      const result = await limit(target.server, () =>
        host.invoke({ ...call, idempotencyKey: `${jobId}:${key}` }),
      );
      this.executed++;
      checkpoints.add({
        ...base,
        status: "succeeded",
        result,
        error: null,
        finishedAt: new Date(),
      });
      return result;
    } catch (error) {
      // A call cut short by the run's end (cancel, deadline) is not a finding about the tool.
      if (!call.signal.aborted) {
        this.executed++;
        const detail = error as { message?: unknown; code?: unknown };
        checkpoints.add({
          ...base,
          status: "failed",
          result: null,
          error: {
            message: typeof detail?.message === "string" ? detail.message : String(error),
            code: typeof detail?.code === "string" ? detail.code : "tool_error",
          },
          finishedAt: new Date(),
        });
      }
      throw error;
    }
  };
}
