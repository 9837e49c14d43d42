import {
  type ClientPool,
  createClientPool,
  createToolHost,
  type McpServerConfig,
  type ToolHost,
} from "@turtle/bindings";
import { loadServerConfigs, type SecretBox } from "@turtle/core";
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
}

export interface Lease {
  host: ToolHost;
  release(): void;
}

/**
 * The worker's MCP connections, shared by all its jobs. Registrations are read from Postgres;
 * when one changes (the API announces it on Redis) the next job gets a fresh generation of
 * clients and the old one closes once its last job is done.
 */
export class ToolHosts {
  private current: Promise<Generation> | null = null;
  private readonly db: Db;
  private readonly box: SecretBox;

  constructor(db: Db, box: SecretBox) {
    this.db = db;
    this.box = box;
  }

  /** A tool host over the given servers (every registered one when the list is empty). */
  async acquire(servers: readonly string[]): Promise<Lease> {
    this.current ??= this.load();
    const generation = await this.current;
    const missing = servers.filter((name) => !(name in generation.configs));
    if (missing.length > 0) {
      throw new UnknownServerError(
        `server ${missing.map((name) => `"${name}"`).join(", ")} is not registered`,
      );
    }
    generation.users++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      generation.users--;
      if (generation.stale && generation.users === 0) void generation.pool.close();
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

  /** A registration changed: later jobs connect afresh. */
  invalidate(): void {
    const previous = this.current;
    this.current = null;
    void previous?.then((generation) => {
      generation.stale = true;
      if (generation.users === 0) void generation.pool.close();
    });
  }

  async close(): Promise<void> {
    const previous = this.current;
    this.current = null;
    const generation = await previous?.catch(() => null);
    await generation?.pool.close();
  }

  private async load(): Promise<Generation> {
    try {
      const configs = await loadServerConfigs(this.db, this.box);
      const hosts = new Map<string, Promise<ToolHost>>();
      const pool = createClientPool(configs, { onToolListChanged: () => hosts.clear() });
      return { configs, pool, hosts, users: 0, stale: false };
    } catch (error) {
      this.current = null;
      throw error;
    }
  }
}
