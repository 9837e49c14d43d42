/**
 * Real MCP servers for the pool's tests: how to run one over stdio, and server-everything over
 * HTTP on a free port (`stop()` kills it and waits for its exit), plus small checks on
 * processes and promises. `tempDir()` is removed by its `remove()`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StdioServerConfig } from "@turtle/bindings";
import { freePort } from "@turtle/core";
import { CONTROL_SERVER, EVERYTHING_SERVER } from "./paths.ts";

export function nodeServer(script: string, args: string[] = [], env?: Record<string, string>) {
  return {
    command: process.execPath,
    args: [script, ...args],
    ...(env ? { env } : {}),
  } satisfies StdioServerConfig;
}

export function controlServer(env?: Record<string, string>): StdioServerConfig {
  return nodeServer(CONTROL_SERVER, [], env);
}

export function tempDir(): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), "turtle-test-"));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export interface HttpServer {
  url: (path: string) => string;
  process: ChildProcess;
  stop: () => Promise<void>;
}

/**
 * Starts server-everything in `streamableHttp` (serves /mcp) or `sse` (serves /sse) mode on a
 * free port and resolves once it logs that it listens. It reads the port from $PORT only, so a
 * free port is picked first; on the rare race for it the start is retried.
 */
export async function startEverythingHttp(mode: "streamableHttp" | "sse"): Promise<HttpServer> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await startOnPort(mode, port);
    } catch (error) {
      lastError = error;
    }
  }
  throw lastError;
}

function startOnPort(mode: "streamableHttp" | "sse", port: number): Promise<HttpServer> {
  const child = spawn(process.execPath, [EVERYTHING_SERVER, mode], {
    env: { PATH: process.env.PATH ?? "", PORT: String(port) },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const server: HttpServer = {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    process: child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
  return new Promise((resolve, reject) => {
    let stderr = "";
    const timer = setTimeout(() => {
      void server.stop();
      reject(new Error(`server-everything ${mode} did not start: ${stderr}`));
    }, 30_000);
    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (chunk: string) => {
      stderr += chunk;
      if (/listening on port|running on port/i.test(stderr)) {
        clearTimeout(timer);
        resolve(server);
      }
    });
    child.once("exit", () => {
      clearTimeout(timer);
      reject(new Error(`server-everything ${mode} exited: ${stderr}`));
    });
  });
}

/** Whether a process with this pid is alive (signal 0 only checks). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Awaits a rejection and returns the error, failing the test if the promise resolves. */
export async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected the promise to reject");
}
