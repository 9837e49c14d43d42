import {
  type ClientPool,
  createClientPool,
  createToolHost,
  type McpServerConfig,
  type StdioSandbox,
  type ToolHost,
} from "@turtle/bindings";
import { loadServerConfigs, type SecretBox, stdioRefusal } from "@turtle/core";
import type { Db } from "@turtle/db";

/** A job asked for a server that is not registered (any more). */
export class UnknownServerError extends Error {
  override name = "UnknownServerError";
  readonly code = "unknown_server";
}

interface Generation {
  configs: Record<string, McpServerConfig>;
  pool: ClientPool;
  /** Tool hosts by server set; dropped when a server's tool list changes. */
  hosts: Map<string, Promise<ToolHost>>;
  users: number;
  stale: boolean;
  /** Closes the generation when no job has used it for a while. */
  idle?: NodeJS.Timeout;
}

export interface Lease {
  host: ToolHost;
  release(): void;
}

/**
 * The worker's MCP connections, shared by the jobs of each project (a project's servers, with its
 * secrets, serve only its own jobs). Registrations are read from Postgres; when one of a
 * project's changes (the API announces it on Redis) the project's next job gets a fresh
 * generation of clients and the old one closes once its last job is done. A generation no job
 * has used for `idleMs` closes too (its servers' processes end), so a worker serving many
 * projects holds servers only for those at work.
 */
export class ToolHosts {
  private readonly current = new Map<string, Promise<Generation>>();
  private readonly db: Db;
  private readonly box: SecretBox;
  private readonly idleMs: number;
  private readonly sandbox: StdioSandbox;

  constructor(db: Db, box: SecretBox, options: { idleMs?: number; sandbox: StdioSandbox }) {
    this.db = db;
    this.box = box;
    this.idleMs = options.idleMs ?? 300_000;
    this.sandbox = options.sandbox;
  }

  /**
   * A tool host over the project's given servers (every one it registered when the list is
   * empty).
   */
  async acquire(projectId: string, servers: readonly string[]): Promise<Lease> {
    const loading = this.generationOf(projectId);
    const generation = await loading;
    const missing = servers.filter((name) => !(name in generation.configs));
    if (missing.length > 0) {
      throw new UnknownServerError(
        `server ${missing.map((name) => `"${name}"`).join(", ")} is not registered`,
      );
    }
    generation.users++;
    clearTimeout(generation.idle);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      generation.users--;
      if (generation.users > 0) return;
      if (generation.stale) void generation.pool.close();
      else this.closeWhenIdle(projectId, loading, generation);
    };
    try {
      const names = servers.length > 0 ? [...servers].sort() : Object.keys(generation.configs);
      const key = names.join("\0");
      let host = generation.hosts.get(key);
      if (host === undefined) {
        host = createToolHost(generation.pool, { servers: names });
        generation.hosts.set(key, host);
        host.catch(() => generation.hosts.delete(key));
      }
      return { host: await host, release };
    } catch (error) {
      release();
      throw error;
    }
  }

  private closeWhenIdle(
    projectId: string,
    loading: Promise<Generation>,
    generation: Generation,
  ): void {
    clearTimeout(generation.idle);
    generation.idle = setTimeout(() => {
      if (generation.users > 0 || this.current.get(projectId) !== loading) return;
      this.current.delete(projectId);
      generation.stale = true;
      void generation.pool.close();
    }, this.idleMs);
    generation.idle.unref();
  }

  /** A registration of the project changed: its later jobs connect afresh. */
  invalidate(projectId: string): void {
    const previous = this.current.get(projectId);
    this.current.delete(projectId);
    void previous?.then((generation) => {
      generation.stale = true;
      clearTimeout(generation.idle);
      if (generation.users === 0) void generation.pool.close();
    });
  }

  async close(): Promise<void> {
    const previous = [...this.current.values()];
    this.current.clear();
    for (const loading of previous) {
      const generation = await loading.catch(() => null);
      if (generation) clearTimeout(generation.idle);
      await generation?.pool.close();
    }
  }

  /** The project's current generation, loaded on first use. */
  private generationOf(projectId: string): Promise<Generation> {
    let loading = this.current.get(projectId);
    if (loading === undefined) {
      loading = this.load(projectId);
      this.current.set(projectId, loading);
    }
    return loading;
  }

  private async load(projectId: string): Promise<Generation> {
    try {
      const [configs, project] = await Promise.all([
        loadServerConfigs(this.db, this.box, projectId),
        this.db.project.findUnique({
          where: { id: projectId },
          select: { allowStdioServers: true },
        }),
      ]);
      const hosts = new Map<string, Promise<ToolHost>>();
      // Checked here too, not only at registration: a server registered before the operator
      // took stdio servers away from its project must not start.
      const refused = stdioRefusal(project);
      const pool = createClientPool(configs, {
        onToolListChanged: () => hosts.clear(),
        sandbox: this.sandbox,
        ...(refused === undefined ? {} : { stdioRefused: refused }),
      });
      return { configs, pool, hosts, users: 0, stale: false };
    } catch (error) {
      this.current.delete(projectId);
      throw error;
    }
  }
}
