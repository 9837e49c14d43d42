export { type CompiledProgram, type CompileOutcome, compileProgram } from "./compile.ts";
export { DEFAULT_LIMITS, type Limits, resolveLimits } from "./limits.ts";
export { isolateGlobalNames, runProgram } from "./run.ts";
export type {
  LogEntry,
  LogLevel,
  RunError,
  RunErrorCode,
  RunOptions,
  RunResult,
  RunStats,
  ToolCall,
  ToolInvoker,
} from "./types.ts";
