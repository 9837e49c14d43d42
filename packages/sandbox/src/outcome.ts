/**
 * How the way a run ended becomes its outcome: the reply the guest runtime settled with (the
 * program's result or what it threw), an error isolated-vm threw on the host, or the kill that
 * stopped it (a limit, a deadline, a cancel). Stacks are mapped back to the submitted TypeScript
 * here, and nothing the program could have forged gets past as anything but a `result_error`.
 */
import type { CompiledProgram } from "./compile.ts";
import type { Limits } from "./limits.ts";
import { mapStack, RUNTIME_URL, SCRIPT_URL } from "./stack.ts";
import { MAX_KEY_LENGTH } from "./step-key.ts";
import type { RunError, RunErrorCode } from "./types.ts";

/** Where V8's message puts a SyntaxError in the program: `… [file:///…/program.js:2:3]`. */
const SYNTAX_AT = new RegExp(
  `\\[${SCRIPT_URL.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}:(\\d+):(\\d+)\\]$`,
);
const ISOLATE_BOUNDARY = /\n\s+at \(?<isolated-vm boundary>/;

export type Outcome = { ok: true; result: unknown } | { ok: false; error: RunError };

/** What an outcome is read against: the run's program, its limits and its replay table. */
export interface OutcomeContext {
  readonly program: CompiledProgram;
  readonly filename: string;
  readonly limits: Limits;
  /** `durable.replay` as given: the reply's head can list no more than it holds. */
  readonly replay: string | undefined;
  /** Where the step keys the guest answered from the replay table are put. */
  readonly replayed: string[];
}

/** How the isolate's run ended, as the host saw it. */
export interface RunEnding {
  /** Why the host stopped the run, if it did. */
  readonly killedFor: RunErrorCode | null;
  /** What the evaluation settled with (a string, unless the program forged it). */
  readonly reply: string | undefined;
  /** What setting up or evaluating threw on the host, when there is no reply. */
  readonly thrown: unknown;
  /** Whether the program's evaluation had begun. */
  readonly evaluating: boolean;
}

export function failure(
  code: RunErrorCode,
  message: string,
  name = "Error",
  at: { line: number; column: number } | null = null,
) {
  return {
    ok: false as const,
    error: { code, name, message, line: at?.line ?? null, column: at?.column ?? null },
  };
}

/** The run's outcome from how it ended. Never throws. */
export function decodeOutcome(run: OutcomeContext, ending: RunEnding) {
  const { killedFor, reply } = ending;
  if (killedFor !== null) {
    return failure(killedFor, killMessage(killedFor, run.limits), KILL_NAMES[killedFor]);
  }
  if (reply === undefined) return describeHostFailure(run, ending.thrown, ending.evaluating);
  // The reply is the program's to forge (a Promise species it poisoned can stand in for the
  // runtime's last promise and settle with anything): whatever arrives, runProgram must not
  // throw.
  try {
    if (typeof reply !== "string") throw new TypeError(`it is ${typeof reply}, not a string`);
    return decodeReply(run, reply);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return failure(
      "result_error",
      `The program's reply could not be read (${reason})`,
      "ResultError",
    );
  }
}

/** The number of console lines the guest says it sent, from the reply's head. */
export function sentLogLines(envelope: string): number {
  const split = envelope.indexOf("\0");
  if (split < 0) return Number.POSITIVE_INFINITY;
  const head = envelope.slice(envelope.lastIndexOf(",", split) + 1, split - 1);
  const count = Number(head);
  return Number.isSafeInteger(count) ? count : Number.POSITIVE_INFINITY;
}

function describeHostFailure(run: OutcomeContext, thrown: unknown, evaluating: boolean) {
  const { program, filename } = run;
  const message = thrown instanceof Error ? thrown.message : String(thrown);
  if (/memory limit/i.test(message)) {
    return failure("memory_limit", killMessage("memory_limit", run.limits), "MemoryLimitError");
  }
  const name = thrown instanceof Error ? thrown.name : "Error";
  // isolated-vm appends the host's own frames after a boundary line: never hand those out.
  const stack = thrown instanceof Error ? thrown.stack?.split(ISOLATE_BOUNDARY)[0] : undefined;
  const mapped = mapStack(stack, program, SCRIPT_URL, filename);
  // A failure to set the isolate up, a SyntaxError the transform let through, or a throw
  // while installing the runtime: no frame of the program's (it cannot run before that).
  // V8 refusing the program's own syntax (a `with` statement in strict code) names its place.
  const where = name === "SyntaxError" ? SYNTAX_AT.exec(message) : null;
  const at = where === null ? null : program.toSource(Number(where[1]), Number(where[2]));
  if (at !== null) {
    return failure("compile_error", message.replace(SYNTAX_AT, "").trimEnd(), "CompileError", at);
  }
  const ours = mapped.line === null && (name === "SyntaxError" || stack?.includes(RUNTIME_URL));
  if (!evaluating || ours) {
    return {
      ok: false as const,
      error: { code: "internal_error" as const, name, message, line: null, column: null },
    };
  }
  // Otherwise it is a rejection the program left unhandled: isolated-vm ends the evaluation
  // with one still unhandled at the end of the first task (the program's synchronous start
  // and the microtasks after it), in place of the result. It never reports one left
  // unhandled later, after the program has awaited a tool call.
  const error: RunError = {
    code: errorCode(name),
    name,
    message: `Unhandled promise rejection: ${message}`,
    line: mapped.line,
    column: mapped.column,
    ...(mapped.stack === undefined ? {} : { stack: mapped.stack }),
  };
  return { ok: false as const, error };
}

function decodeReply(run: OutcomeContext, envelope: string) {
  const { program, filename, limits } = run;
  // "<R|E>[replayed keys, log lines sent]\0<body>": the head comes first, whatever the outcome.
  const split = envelope.indexOf("\0");
  // A program can make the runtime's head say anything (an Array.prototype.toJSON, say). A true
  // one lists each replayed key once, every one from the replay table, so it is never longer
  // than that table: a longer head is not read, and no key is taken twice.
  const headText = envelope.slice(1, split);
  const bound = (run.replay?.length ?? 0) + 64;
  const head = headText.length <= bound ? (JSON.parse(headText) as unknown) : null;
  const replayed = Array.isArray(head) ? head[0] : undefined;
  if (Array.isArray(replayed)) {
    const seen = new Set<string>();
    for (const key of replayed) {
      if (typeof key !== "string" || key.length > MAX_KEY_LENGTH || seen.has(key)) continue;
      seen.add(key);
      run.replayed.push(key);
    }
  }
  const reply = envelope[0] + envelope.slice(split + 1);
  if (Buffer.byteLength(reply) > limits.maxResultBytes + 64 * 1024) {
    return failure(
      "result_error",
      `The program's result is over ${limits.maxResultBytes} bytes (maxResultBytes)`,
      "ResultError",
    );
  }
  const body = JSON.parse(reply.slice(1)) as unknown;
  if (reply[0] === "R") return { ok: true as const, result: body };
  const thrown = body as {
    name: string;
    message: string;
    stack?: string;
    server?: string;
    tool?: string;
    code?: string;
  };
  const mapped = mapStack(thrown.stack, program, SCRIPT_URL, filename);
  const code = errorCode(thrown.name);
  const error: RunError = {
    code,
    name: thrown.name,
    message: thrown.message,
    line: mapped.line,
    column: mapped.column,
    ...(mapped.stack === undefined ? {} : { stack: mapped.stack }),
    ...(code === "tool_error" ? { server: thrown.server, tool: thrown.tool } : {}),
  };
  return { ok: false as const, error };
}

/** The code of an error the program threw (or left unhandled), by its name. */
function errorCode(name: string): RunErrorCode {
  if (name === "ToolError") return "tool_error";
  if (name === "LimitError") return "limit_exceeded";
  if (name === "ResultError") return "result_error";
  return "runtime_error";
}

const KILL_NAMES: Partial<Record<RunErrorCode, string>> = {
  timeout: "TimeoutError",
  cpu_limit: "CpuLimitError",
  memory_limit: "MemoryLimitError",
  cancelled: "CancelledError",
};

function killMessage(reason: RunErrorCode, limits: Limits): string {
  switch (reason) {
    case "timeout":
      return `The program ran past its ${limits.timeoutMs} ms deadline (timeoutMs) and was stopped`;
    case "cpu_limit":
      return `The program used more than ${limits.cpuMs} ms of CPU (cpuMs) and was stopped`;
    case "memory_limit":
      return `The program used more than ${limits.memoryMb} MB of memory (memoryMb) and was stopped`;
    case "cancelled":
      return "The run was cancelled";
    default:
      return "The run was stopped";
  }
}
