export { type CompiledProgram, type CompileOutcome, compileProgram } from "./compile.ts";
export { DEFAULT_LIMITS, type Limits, resolveLimits } from "./limits.ts";
export {
  isolateGlobalNames,
  type LogEntry,
  type LogLevel,
  type RunError,
  type RunErrorCode,
  type RunOptions,
  type RunResult,
  type RunStats,
  runProgram,
  type ToolCall,
  type ToolInvoker,
} from "./run.ts";
