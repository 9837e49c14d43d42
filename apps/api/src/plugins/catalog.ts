// The program API of registered servers, as agents use it: one catalog of their tools (listed
// live through the MCP pool), its TypeScript declarations, a search index over its tools, and a
// type checker for programs written against it. Derived values are cached for as long as the
// servers' tool listings are (the pool keeps a listing until the server says it changed).
import {
  buildCatalog,
  type Catalog,
  renderDeclarations,
  type Tool,
  toIdentifier,
} from "@turtle/bindings";
import type { CheckResult, ThreadedTypeChecker } from "@turtle/typecheck";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { ToolIndex } from "../catalog/search.ts";
import { checkServers } from "../jobs/lifecycle.ts";

export interface LoadedCatalog {
  names: string[];
  catalog: Catalog;
  /** The whole catalog as declarations (rendered on first use). */
  readonly declarations: string;
  /** The search index over its tools (built on first use). */
  readonly index: ToolIndex;
}

export interface AvailableCatalog {
  loaded: LoadedCatalog;
  unavailable: Array<{ server: string; message: string }>;
}

export interface Catalogs {
  /** Every registered server's name, or the `asked` ones once checked (400 naming `field`). */
  names(asked: readonly string[] | undefined, field: string): Promise<string[]>;
  /** Those servers' tools as one program API; fails when one of them cannot be listed. */
  load(names: readonly string[], signal?: AbortSignal): Promise<LoadedCatalog>;
  /** The same, of the servers that can be listed now; the others are named with the reason. */
  loadAvailable(names: readonly string[], signal?: AbortSignal): Promise<AvailableCatalog>;
  /** Type-checks a program against those servers' declarations. */
  check(code: string, names: readonly string[], signal?: AbortSignal): Promise<CheckResult>;
}

declare module "fastify" {
  interface FastifyInstance {
    catalogs: Catalogs;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Catalogs kept: one per set of servers that jobs and searches name. */
const CACHE_MAX = 32;

interface Cached {
  listings: Tool[][];
  loaded: LoadedCatalog;
}

function loaded(names: string[], catalog: Catalog): LoadedCatalog {
  let declarations: string | undefined;
  let index: ToolIndex | undefined;
  return {
    names,
    catalog,
    get declarations() {
      declarations ??= renderDeclarations(catalog);
      return declarations;
    },
    get index() {
      index ??= new ToolIndex(catalog);
      return index;
    },
  };
}

export default fp(
  async function catalogs(app: FastifyInstance) {
    const cache = new Map<string, Cached>();
    let checker: Promise<ThreadedTypeChecker> | undefined;

    const service: Catalogs = {
      async names(asked, field) {
        if (asked !== undefined && asked.length > 0) {
          const names = [...new Set(asked)];
          await checkServers(app, names, field);
          return names;
        }
        const rows = await app.db.server.findMany({
          select: { name: true },
          orderBy: { name: "asc" },
        });
        return rows.map((row) => row.name);
      },

      async load(names, signal) {
        const listings = await Promise.all(names.map((name) => app.mcp.listTools(name, signal)));
        const key = names.join("\u0000");
        const hit = cache.get(key);
        if (hit?.listings.every((tools, i) => tools === listings[i])) {
          // Most recently used last, so the oldest is the first to go.
          cache.delete(key);
          cache.set(key, hit);
          return hit.loaded;
        }
        const servers = names.map((name, i) => ({ name, tools: listings[i] ?? [] }));
        const entry = { listings, loaded: loaded([...names], buildCatalog(servers)) };
        cache.set(key, entry);
        if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value as string);
        return entry.loaded;
      },

      async loadAvailable(names, signal) {
        const listed = await Promise.allSettled(
          names.map((name) => app.mcp.listTools(name, signal)),
        );
        signal?.throwIfAborted();
        const unavailable: AvailableCatalog["unavailable"] = [];
        const up: string[] = [];
        listed.forEach((outcome, i) => {
          const server = names[i] as string;
          if (outcome.status === "fulfilled") up.push(server);
          else unavailable.push({ server, message: errorMessage(outcome.reason) });
        });
        return { loaded: await service.load(up, signal), unavailable };
      },

      async check(code, names, signal) {
        // A server that is down must not fail the check of a program that may not even use it:
        // its namespace is checked as \`any\`, and the run finds out whether it is back.
        const { loaded: available, unavailable } = await service.loadAvailable(names, signal);
        const declarations = [
          available.declarations,
          ...unavailable.map(
            ({ server }) =>
              `/** MCP server ${JSON.stringify(server)}: unavailable, so unchecked. */\ndeclare const ${toIdentifier(server)}: any;\n`,
          ),
        ].join("");
        // The compiler is loaded on the first check, not at start: most API processes never
        // check, and loading it costs time and memory. It runs in a thread of its own, so a
        // check never holds this event loop, and one over TYPECHECK_TIMEOUT_MS is stopped.
        checker ??= import("@turtle/typecheck").then(
          (module) =>
            module.createThreadedTypeChecker({ timeoutMs: app.config.TYPECHECK_TIMEOUT_MS }),
          (error: unknown) => {
            checker = undefined;
            throw error;
          },
        );
        return (await checker).check(code, declarations);
      },
    };
    app.decorate("catalogs", service);
    app.addHook("onClose", async () => {
      const running = checker;
      checker = undefined;
      await running?.then((threaded) => threaded.close()).catch(() => {});
    });
  },
  { name: "catalogs", dependencies: ["db", "mcp-pool"] },
);
