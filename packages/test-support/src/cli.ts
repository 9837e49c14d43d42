/**
 * The real `turtle` binary, run the way `npx turtle` runs it, for the CLI's tests. Each call is
 * one process that has exited by the time its outcome resolves.
 */
import { execFile } from "node:child_process";
import { REPO_ROOT, TURTLE_BIN } from "./paths.ts";

export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** `turtle ...args` in `cwd` (default the repository root), with `env` if given. */
export function runTurtle(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<Outcome> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [TURTLE_BIN, ...args],
      { cwd: options.cwd ?? REPO_ROOT, ...(options.env ? { env: options.env } : {}) },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
