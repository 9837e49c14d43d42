// MCP sessions the API holds to list servers' tools. One ClientPool per server (of a project),
// built from its registration on first use and dropped when the registration changes — here or on
// any other API instance, which announces the change by publishing the server's ref
// (`projectId/name`) on the queue's `servers` channel (workers listen there too). A change to a
// whole project (the operator allowing or refusing its stdio servers) is announced as
// `projectId/*`: no server name holds a `*`.
import { type ClientPool, createClientPool, type Tool } from "@turtle/bindings";
import {
  channels,
  createRedis,
  joinSecrets,
  serverRef,
  stdioRefusal,
  stdioSandbox,
} from "@turtle/core";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { notFound } from "../errors.ts";

export interface McpPool {
  /**
   * A project's registered server's tools, listed live (cached by the session until the list
   * changes).
   */
  listTools(projectId: string, server: string, signal?: AbortSignal): Promise<Tool[]>;
  /**
   * Call after changing a registration: drops the server's session here and everywhere. `*` for
   * every server of the project.
   */
  changed(projectId: string, server: string): Promise<void>;
  /**
   * Calls `listener` with the server's ref (serverRef) whenever a registration changed, here or
   * on another instance.
   */
  onChange(listener: (ref: string) => void): void;
}

declare module "fastify" {
  interface FastifyInstance {
    mcp: McpPool;
  }
}

export interface McpPoolOptions {
  redisUrl: string;
  queue: string;
  /** Deadline to start or reach a server and list its tools. */
  timeoutMs: number;
  /** Longest message read from a server (TOOL_RESULT_MAX_BYTES). */
  maxMessageBytes?: number;
}

interface Entry {
  pool: Promise<ClientPool | null>;
  /** Listings in progress: a dropped pool is closed once they are done, not under them. */
  users: number;
  dropped: boolean;
}

export default fp(
  async function mcpPool(app: FastifyInstance, options: McpPoolOptions) {
    const entries = new Map<string, Entry>();
    /** Our own announcements not yet heard back, per server: hearing them changes nothing. */
    const echoes = new Map<string, number>();
    const channel = channels(options.queue).servers;
    const sandbox = stdioSandbox(app.config);

    function entryFor(projectId: string, name: string): Entry {
      const ref = serverRef(projectId, name);
      const existing = entries.get(ref);
      if (existing !== undefined) return existing;
      const pool = Promise.all([
        app.db.server.findUnique({ where: { projectId_name: { projectId, name } } }),
        app.db.project.findUnique({
          where: { id: projectId },
          select: { allowStdioServers: true },
        }),
      ]).then(([row, project]) => {
        if (row === null) return null;
        const refused = stdioRefusal(project);
        return createClientPool(
          { [name]: joinSecrets(row, app.secrets) },
          {
            clientInfo: { name: "turtle-api", version: "0.1.0" },
            connectTimeoutMs: options.timeoutMs,
            callTimeoutMs: options.timeoutMs,
            sandbox,
            ...(options.maxMessageBytes === undefined
              ? {}
              : { maxMessageBytes: options.maxMessageBytes }),
            ...(refused === undefined ? {} : { stdioRefused: refused }),
          },
        );
      });
      const entry: Entry = { pool, users: 0, dropped: false };
      const forget = () => {
        if (entries.get(ref) === entry) entries.delete(ref);
      };
      pool.then((result) => result ?? forget(), forget);
      entries.set(ref, entry);
      return entry;
    }

    function release(entry: Entry): void {
      if (entry.dropped && entry.users === 0) {
        entry.pool.then((pool) => pool?.close()).catch(() => {});
      }
    }

    const listeners: Array<(ref: string) => void> = [];

    function drop(ref: string): void {
      for (const listener of listeners) listener(ref);
      const whole = ref.endsWith("/*") ? ref.slice(0, -1) : undefined;
      const refs =
        whole === undefined ? [ref] : [...entries.keys()].filter((key) => key.startsWith(whole));
      for (const key of refs) {
        const entry = entries.get(key);
        if (entry === undefined) continue;
        entries.delete(key);
        entry.dropped = true;
        release(entry);
      }
    }

    const subscriber = createRedis(options.redisUrl, "turtle-api-servers");
    subscriber.on("error", (error) => app.log.debug({ err: error }, "redis subscriber error"));
    subscriber.on("message", (from: string, ref: string) => {
      if (from !== channel) return;
      const pending = echoes.get(ref) ?? 0;
      if (pending > 0) {
        // Ours (or one as good: any announcement arriving now follows its change).
        if (pending === 1) echoes.delete(ref);
        else echoes.set(ref, pending - 1);
        return;
      }
      drop(ref);
    });
    await subscriber.subscribe(channel);

    app.decorate("mcp", {
      async listTools(projectId, server, signal) {
        const entry = entryFor(projectId, server);
        entry.users++;
        try {
          const pool = await entry.pool;
          if (pool === null) throw notFound(`no MCP server is registered as "${server}"`);
          return await pool.listTools(server, signal ? { signal } : undefined);
        } finally {
          entry.users--;
          release(entry);
        }
      },
      onChange(listener) {
        listeners.push(listener);
      },
      async changed(projectId, server) {
        const ref = serverRef(projectId, server);
        drop(ref);
        echoes.set(ref, (echoes.get(ref) ?? 0) + 1);
        await app.redis.publish(channel, ref).catch((error: unknown) => {
          echoes.set(ref, (echoes.get(ref) ?? 1) - 1);
          // Other instances keep their session to the old registration until they restart.
          app.log.warn({ err: error, server }, "could not announce a server change");
        });
      },
    } satisfies McpPool);

    app.addHook("onClose", async () => {
      await subscriber.quit().catch(() => subscriber.disconnect());
      const all = [...entries.values()];
      entries.clear();
      await Promise.all(
        all.map((entry) => entry.pool.then((pool) => pool?.close()).catch(() => {})),
      );
    });
  },
  { name: "mcp-pool", dependencies: ["db", "redis"] },
);
