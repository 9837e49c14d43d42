// The program API of registered servers, as agents use it: one catalog of their tools (listed
// live through the MCP pool), its TypeScript declarations, a search index over its tools, and a
// type checker for programs written against it. Derived values are cached for as long as the
// servers' tool listings are (the pool keeps a listing until the server says it changed).
import {
  buildCatalog,
  type Catalog,
  renderDeclarations,
  serversUsedBy,
  type Tool,
  toIdentifier,
} from "@turtle/bindings";
import { serverRef } from "@turtle/core";
import { compileProgram } from "@turtle/sandbox/compile";
import type { CheckResult } from "@turtle/typecheck";
import {
  createThreadedTypeChecker,
  type ThreadedTypeChecker,
  TypeCheckUnavailableError,
} from "@turtle/typecheck/threaded";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { ToolIndex } from "../catalog/search.ts";
import { ApiError } from "../errors.ts";
import { checkServers } from "../jobs/submit.ts";

export interface LoadedCatalog {
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

/** Each method works on one project's servers. */
export interface Catalogs {
  /**
   * Every server the project registered, or the `asked` ones once checked (400 naming `field`).
   */
  names(projectId: string, asked: readonly string[] | undefined, field: string): Promise<string[]>;
  /**
   * Those servers' tools as one program API, of the servers that can be listed now; the others
   * are named with the reason.
   */
  loadAvailable(
    projectId: string,
    names: readonly string[],
    signal?: AbortSignal,
  ): Promise<AvailableCatalog>;
  /**
   * The declarations a program is written against: those of the servers that can be listed now,
   * headed by a comment naming each that cannot and why; its namespace is declared `any`.
   */
  declarations(projectId: string, names: readonly string[], signal?: AbortSignal): Promise<string>;
  /** Type-checks a program against those servers' declarations. */
  check(
    projectId: string,
    code: string,
    names: readonly string[],
    signal?: AbortSignal,
  ): Promise<CheckResult>;
}

declare module "fastify" {
  interface FastifyInstance {
    catalogs: Catalogs;
  }
}

/** A message as one comment line: a server's words may span several. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n\u2028\u2029]+\s*/g, " ");
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** What a checked program is called in its compile errors (as in a worker's). */
const PROGRAM_FILE = "program.ts";

/** Longest a search or check waits for one server's tools before leaving it out. */
const AVAILABLE_LIST_MS = 5_000;
/**
 * How long a server that could not be listed is left out before it is tried again (at once
 * when its registration changes).
 */
const FAILURE_MEMORY_MS = 10_000;

/** Catalogs kept: one per set of servers that jobs and searches name. */
const CACHE_MAX = 32;

interface Cached {
  listings: Tool[][];
  loaded: LoadedCatalog;
}

function loaded(catalog: Catalog): LoadedCatalog {
  let declarations: string | undefined;
  let index: ToolIndex | undefined;
  return {
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
    const failures = new Map<string, { until: number; error: unknown }>();
    // A server registered anew is tried again at once (failures are keyed by server ref).
    app.mcp.onChange((ref) => {
      if (!ref.endsWith("/*")) failures.delete(ref);
      else
        for (const key of failures.keys())
          if (key.startsWith(ref.slice(0, -1))) failures.delete(key);
    });

    /** The catalog of those servers' listings, cached while the listings stay the same. */
    function build(projectId: string, names: readonly string[], listings: Tool[][]): LoadedCatalog {
      // In order: the listings are matched to the names by position.
      const key = [projectId, ...names].join("\u0000");
      const hit = cache.get(key);
      if (hit?.listings.every((tools, i) => tools === listings[i])) {
        // Most recently used last, so the oldest is the first to go.
        cache.delete(key);
        cache.set(key, hit);
        return hit.loaded;
      }
      const servers = names.map((name, i) => ({ name, tools: listings[i] ?? [] }));
      const entry = { listings, loaded: loaded(buildCatalog(servers)) };
      cache.set(key, entry);
      if (cache.size > CACHE_MAX) cache.delete(cache.keys().next().value as string);
      return entry.loaded;
    }

    let checker: ThreadedTypeChecker | undefined;

    const service: Catalogs = {
      async names(projectId, asked, field) {
        if (asked !== undefined && asked.length > 0) {
          const names = [...new Set(asked)];
          await checkServers(app, projectId, names, field);
          return names;
        }
        const rows = await app.db.server.findMany({
          where: { projectId },
          select: { name: true },
          orderBy: { name: "asc" },
        });
        return rows.map((row) => row.name);
      },

      async loadAvailable(projectId, names, signal) {
        const now = Date.now();
        const listed = await Promise.allSettled(
          names.map((name) => {
            const ref = serverRef(projectId, name);
            const down = failures.get(ref);
            if (down !== undefined && down.until > now) return Promise.reject(down.error);
            const deadline = AbortSignal.timeout(AVAILABLE_LIST_MS);
            return app.mcp
              .listTools(projectId, name, signal ? AbortSignal.any([signal, deadline]) : deadline)
              .catch((error: unknown) => {
                if (signal?.aborted) throw error;
                const failure = deadline.aborted
                  ? new Error(
                      `MCP server "${name}" did not list its tools within ${AVAILABLE_LIST_MS / 1000} s`,
                    )
                  : error;
                // Remembered for a while, so one dead server does not cost every search a wait.
                failures.set(ref, { until: Date.now() + FAILURE_MEMORY_MS, error: failure });
                throw failure;
              });
          }),
        );
        signal?.throwIfAborted();
        const unavailable: AvailableCatalog["unavailable"] = [];
        const up: string[] = [];
        const listings: Tool[][] = [];
        listed.forEach((outcome, i) => {
          const server = names[i] as string;
          if (outcome.status === "fulfilled") {
            failures.delete(serverRef(projectId, server));
            up.push(server);
            listings.push(outcome.value);
          } else {
            unavailable.push({ server, message: errorMessage(outcome.reason) });
          }
        });
        return { loaded: build(projectId, up, listings), unavailable };
      },

      async declarations(projectId, names, signal) {
        // A server that is down must not take the others' declarations with it, nor fail the
        // check of a program that may not even use it: its namespace is declared \`any\`, and
        // the run finds out whether it is back.
        const { loaded: available, unavailable } = await service.loadAvailable(
          projectId,
          names,
          signal,
        );
        if (unavailable.length === 0) return available.declarations;
        const declared = new Set(available.catalog.namespaces.map((ns) => ns.identifier));
        const notes = unavailable.map(
          ({ server, message }) =>
            `// MCP server ${JSON.stringify(server)} is unavailable, so its tools are not declared: ${oneLine(message)}\n`,
        );
        const stubs = unavailable.flatMap(({ server }) => {
          const identifier = toIdentifier(server);
          if (declared.has(identifier)) return [];
          declared.add(identifier);
          return [
            `\n/** MCP server ${JSON.stringify(server)}: unavailable, so unchecked. */\ndeclare const ${identifier}: any;\n`,
          ];
        });
        return [...notes, available.declarations, ...stubs].join("");
      },

      async check(projectId, code, names, signal) {
        // A program that does not parse is answered before any server is contacted, in
        // TypeScript's words (against no declarations: a tree that does not parse gets its syntax
        // errors only), or esbuild's should TypeScript parse what esbuild cannot (code 0). One
        // that parses is checked against the servers it uses, the ones a worker would connect.
        const compiled = await compileProgram(code, PROGRAM_FILE);
        if (!compiled.ok) {
          const checked = await typecheck(code, "", signal);
          if (!checked.ok && checked.diagnostics.every((d) => d.code > 0 && d.code < 2000)) {
            return checked;
          }
          const { message, line, column } = compiled.error;
          const at = { line: line ?? 1, column: column ?? 1 };
          const diagnostic = { ...at, endLine: at.line, endColumn: at.column, code: 0, message };
          return { ok: false, diagnostics: [diagnostic], truncated: false };
        }
        const used = names.length === 0 ? [] : serversUsedBy(compiled.program.js, names);
        return await typecheck(code, await service.declarations(projectId, used, signal), signal);
      },
    };

    /** TypeScript's check of the program against `declarations`, in the checker's thread. */
    async function typecheck(
      code: string,
      declarations: string,
      signal?: AbortSignal,
    ): Promise<CheckResult> {
      // The checker's thread (and TypeScript in it) starts on the first check, not with the
      // API: most API processes never check. A check never holds this event loop, and one over
      // TYPECHECK_TIMEOUT_MS (or its memory limit) is stopped.
      checker ??= createThreadedTypeChecker({ timeoutMs: app.config.TYPECHECK_TIMEOUT_MS });
      try {
        return await checker.check(code, declarations, signal);
      } catch (error) {
        if (error instanceof TypeCheckUnavailableError) {
          throw new ApiError(
            503,
            "typecheck_unavailable",
            `cannot type-check now: ${error.message}`,
            {
              "retry-after": "1",
            },
          );
        }
        throw error;
      }
    }
    app.decorate("catalogs", service);
    app.addHook("onClose", async () => {
      const running = checker;
      checker = undefined;
      await running?.close().catch(() => {});
    });
  },
  { name: "catalogs", dependencies: ["db", "mcp-pool"] },
);
