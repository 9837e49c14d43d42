/**
 * The paths and constants every test shares: where the repository and its real MCP servers
 * are, the key tests seal servers' secrets with, and how the suite's servers run unconfined.
 * Nothing here starts or stops anything.
 */

import { fileURLToPath } from "node:url";
import { generateSecretsKey } from "@turtle/core";

export const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const EVERYTHING_SERVER = `${REPO_ROOT}node_modules/@modelcontextprotocol/server-everything/dist/index.js`;
export const MEMORY_SERVER = `${REPO_ROOT}node_modules/@modelcontextprotocol/server-memory/dist/index.js`;
/** The suite's own MCP server: echo, sleep, and a file of the calls it executed. */
export const CONTROL_SERVER = `${REPO_ROOT}packages/bindings/test/servers/control-server.ts`;
export const WORKER_MAIN = `${REPO_ROOT}apps/worker/src/main.ts`;
export const API_MAIN = `${REPO_ROOT}apps/api/src/server.ts`;
export const TURTLE_BIN = `${REPO_ROOT}apps/cli/bin/turtle.js`;

/** The key the tests' APIs and workers seal and open servers' secrets with. */
export const TEST_SECRETS_KEY = generateSecretsKey();

/**
 * The suite's servers (the control server in the repository, files in temporary directories,
 * pids read back and killed) run unconfined: the sandbox's PID namespace would hide their pids.
 * Confinement has tests of its own (apps/api/test/confine.test.ts and
 * packages/bindings/test/sandbox.test.ts), which set STDIO_SANDBOX=bwrap. This is the setting
 * as a process's environment; UNCONFINED_POOL is the same for a client pool of the bindings.
 */
export const UNCONFINED = { STDIO_SANDBOX: "none" } as const;
export const UNCONFINED_POOL = { sandbox: { kind: "none" } } as const;

/** Generous: the CI machine has two busy cores and many tests spawn Node processes. */
export const SLOW = 60_000;
