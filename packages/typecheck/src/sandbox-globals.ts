/**
 * What the sandbox's guest runtime puts in the global scope beyond the standard library and
 * beyond what the declarations header already declares (`input`, the `ToolError` interface and
 * the namespaces). Kept to exactly what the guest provides: a name declared here that the guest
 * lacks would pass the check and fail at run time.
 *
 * - `console` is a frozen object of log, info, warn, error, debug and trace (trace is debug);
 *   each call becomes one captured log line. There is no `console.table`, `time` or `assert`.
 * - `ToolError` is a class: the runtime throws instances and a program may `new` one or test
 *   `instanceof`. The header declares only its instance type, as an interface; this `const`
 *   merges with it to add the value side.
 *
 * No timers, `fetch`, DOM or Node APIs: the guest has none, and the standard library loaded
 * beside this text is plain ES2025.
 */
export const SANDBOX_GLOBALS = `/** Captured output: each call is one line of the job's log, which is capped. */
declare const console: {
  readonly log: (...data: unknown[]) => void;
  readonly info: (...data: unknown[]) => void;
  readonly warn: (...data: unknown[]) => void;
  readonly error: (...data: unknown[]) => void;
  readonly debug: (...data: unknown[]) => void;
  readonly trace: (...data: unknown[]) => void;
};
/** The class of the errors tool calls throw; a program may throw its own. */
declare const ToolError: {
  new (message: string, server: string, tool: string, code?: string): ToolError;
  readonly prototype: ToolError;
};
`;
