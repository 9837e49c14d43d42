/**
 * What callers of `runProgram` see: the options a run takes, the tool calls it hands the host,
 * and the result it ends with. Nothing here runs; how a run works is in run.ts (the isolate's
 * life), exchange.ts (the calls and console lines that cross from the guest) and outcome.ts (how
 * the way a run ended becomes its result).
 */
import type { JobError, RunErrorCode } from "@turtle/api-types";
import type { Limits } from "./limits.ts";

/** One tool call as the program made it, addressed by the identifiers it used. */
export interface ToolCall {
  readonly namespace: string;
  readonly method: string;
  readonly args: unknown;
  /** Aborted when the run ends (however it ends) before this call settles. */
  readonly signal: AbortSignal;
  /** 0-based, in the order the program started its calls. */
  readonly index: number;
  /**
   * With `durable`, the call's step key: `namespace.method:<hash of canonical args>#<n>`, where
   * n counts earlier calls with the same method and arguments in this run. Calls are made in
   * program order, even under `Promise.all`, so a re-run of the program derives the same keys.
   */
  readonly key?: string;
}

/**
 * Executes a tool call on the host. A thrown error becomes a catchable `ToolError` in the
 * program, carrying `server`, `tool` and `code` when the thrown error has them.
 */
export type ToolInvoker = (call: ToolCall) => Promise<unknown>;

export type LogLevel = "log" | "info" | "warn" | "error" | "debug";

export interface LogEntry {
  readonly level: LogLevel;
  readonly message: string;
  /** Milliseconds since the run started. */
  readonly at: number;
}

export interface RunOptions {
  /** The job's JSON input, the program's global `input`. */
  input?: unknown;
  /** Namespace identifier → method identifiers, as the program sees them. */
  namespaces?: Readonly<Record<string, readonly string[]>>;
  /**
   * Namespace identifier → a server that could not be reached: every method of its namespace
   * rejects with a ToolError coded `server_unavailable` carrying `message` (see guest-runtime).
   */
  unavailable?: Readonly<Record<string, { server: string; message: string }>>;
  invoke?: ToolInvoker;
  limits?: Partial<Limits>;
  /** Aborting it stops the run promptly: the isolate is disposed, tool calls are aborted. */
  signal?: AbortSignal;
  /**
   * Epoch ms at which the run is stopped as a timeout even if `timeoutMs` has not passed since
   * it started: a job's deadline, counted from before the run (while its servers started).
   */
  deadline?: number;
  /** Name the program's errors are reported against. */
  filename?: string;
  /**
   * Gives every tool call a step key (`ToolCall.key`). `replay` is JSON text of an object from
   * step keys to results: a call whose key is there is answered inside the isolate, without a
   * host round trip, and its key reported in `replayed`.
   */
  durable?: { replay?: string };
  /**
   * Told, while the program runs, how many of its calls so far were answered from
   * `durable.replay` (a count that only grows): each time the program next sends calls out, so
   * it costs no crossing of its own. `RunResult.replayed` has them all at the end.
   */
  onReplayed?: (count: number) => void;
  /** Called for each console line as it happens (logs are also in the result). */
  onLog?: (entry: LogEntry) => void;
}

/** What a run's error can be coded (the job errors' codes without the platform's own). */
export type { RunErrorCode };

/** A run's error: a job error (one shape for the API, the dashboard and here) with its stack. */
export type RunError = Readonly<Omit<JobError, "code"> & { code: RunErrorCode; stack?: string }>;

export interface RunStats {
  readonly wallMs: number;
  readonly cpuMs: number;
  readonly toolCalls: number;
  /**
   * Largest V8 heap (plus external memory) seen; sampled every 50 ms, so an approximation (0 for
   * a run that ends before the first sample).
   */
  readonly heapPeakBytes: number;
}

interface RunOutcomeBase {
  readonly logs: LogEntry[];
  /** Step keys answered from `durable.replay`, in call order. */
  readonly replayed: string[];
  readonly stats: RunStats;
}
export type RunResult =
  | (RunOutcomeBase & { readonly ok: true; readonly result: unknown })
  | (RunOutcomeBase & { readonly ok: false; readonly error: RunError });
