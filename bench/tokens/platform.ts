// Turtle as the Code Mode agent meets it: a fresh database and API key, the API and one worker
// as child processes, and the workflows' servers registered (the tests' process platform).
import { type ProcessPlatform, startProcessPlatform } from "@turtle/test-support/process-platform";
import type { ServerEntry } from "./servers.ts";

export type Platform = ProcessPlatform;

/** An API and a worker process on a fresh database; `extraEnv` adds to (or overrides) theirs. */
export function startPlatform(
  servers: Record<string, ServerEntry>,
  extraEnv: Record<string, string> = {},
): Promise<Platform> {
  return startProcessPlatform(servers, extraEnv, "bench_tokens");
}
