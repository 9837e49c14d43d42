export { SANDBOX_GLOBALS } from "./sandbox-globals.ts";
export {
  createThreadedTypeChecker,
  type ThreadedTypeChecker,
  type ThreadedTypeCheckerOptions,
  TypeCheckUnavailableError,
} from "./threaded.ts";
export {
  type CheckResult,
  createTypeChecker,
  MAX_DIAGNOSTICS,
  type TypeChecker,
  type TypeCheckerOptions,
  type TypeDiagnostic,
} from "./type-checker.ts";
