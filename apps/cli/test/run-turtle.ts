// Runs the real `turtle` binary the way `npx turtle` does, for the CLI's tests.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const BIN = `${ROOT}apps/cli/bin/turtle.js`;

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
      [BIN, ...args],
      { cwd: options.cwd ?? ROOT, ...(options.env ? { env: options.env } : {}) },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === "number" ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
