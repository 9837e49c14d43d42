// The glue a run needs: a snapshot of every server's tools as a catalog, the namespace → methods
// map the sandbox installs, and an invoke function that routes `namespace.method(args)` back to
// the pool. The call shape is structural so this package does not depend on the sandbox.
import type { ClientPool } from "./client-pool.ts";
import { ToolError } from "./errors.ts";
import { buildCatalog, type Catalog, resolveMethod } from "./identifiers.ts";

/** One call as a program made it, addressed by the identifiers it used. */
export interface ToolHostCall {
  namespace: string;
  method: string;
  args: unknown;
  signal?: AbortSignal;
  idempotencyKey?: string;
  /** Epoch ms: the call's job gives up then, so the call's timeout ends there too. */
  deadline?: number;
}

export interface ToolHost {
  catalog: Catalog;
  /** Namespace identifier → method identifiers. */
  namespaces: Record<string, string[]>;
  /**
   * Namespace identifier → a server of the run that could not list its tools (not started, not
   * reachable): its namespace is there for the program, and each call of it fails.
   */
  unavailable?: Readonly<Record<string, UnavailableServer>>;
  invoke(call: ToolHostCall): Promise<unknown>;
}

/** A server a run could not reach, and why: the message each call of it fails with. */
export interface UnavailableServer {
  server: string;
  message: string;
}

export interface ToolHostOptions {
  /** The servers a run may use, in namespace order. Default: every server of the pool. */
  servers?: readonly string[];
}

/** Lists the servers' tools (concurrently) and builds the host over that snapshot. */
export async function createToolHost(
  pool: ClientPool,
  options: ToolHostOptions = {},
): Promise<ToolHost> {
  const names = options.servers ?? pool.serverNames();
  const servers = await Promise.all(
    names.map(async (name) => ({ name, tools: await pool.listTools(name) })),
  );
  const catalog = buildCatalog(servers);
  const namespaces: Record<string, string[]> = Object.create(null);
  for (const ns of catalog.namespaces) {
    namespaces[ns.identifier] = ns.methods.map((method) => method.identifier);
  }
  return {
    catalog,
    namespaces,
    invoke(call) {
      const target = resolveMethod(catalog, call.namespace, call.method);
      if (!target) {
        const name = `${call.namespace}.${call.method}`;
        return Promise.reject(new ToolError(call.namespace, call.method, `unknown tool ${name}`));
      }
      const args = call.args ?? {};
      if (typeof args !== "object" || Array.isArray(args)) {
        const message = "the tool's input must be an object";
        return Promise.reject(new ToolError(target.server, target.tool, message));
      }
      return pool.callTool(target.server, target.tool, args as Record<string, unknown>, {
        ...(call.signal ? { signal: call.signal } : {}),
        ...(call.idempotencyKey === undefined ? {} : { idempotencyKey: call.idempotencyKey }),
        ...(call.deadline === undefined ? {} : { deadline: call.deadline }),
      });
    },
  };
}
