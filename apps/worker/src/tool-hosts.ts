import {
  type ClientPool,
  type ClientPoolOptions,
  createClientPool,
  createToolHost,
  type McpServerConfig,
  type StdioSandbox,
  serversUsedBy,
  type ToolHost,
  toIdentifier,
  type UnavailableServer,
} from "@turtle/bindings";
import {
  loadServerConfigs,
  type SecretBox,
  type SecretsError,
  SecretsKeyMissingError,
  stdioRefusal,
} from "@turtle/core";
import type { Db } from "@turtle/db";
import pLimit, { type LimitFunction } from "p-limit";

/**
 * A job's deadline passed while its servers were still starting (or listing their tools): the
 * job fails as a timeout. The servers' start goes on for the project's other jobs.
 */
export class ServerStartTimeoutError extends Error {
  override name = "TimeoutError";
  readonly code = "timeout";
  readonly servers: readonly string[];

  constructor(message: string, servers: readonly string[]) {
    super(message);
    this.servers = servers;
  }
}

/** How long a job may wait for its servers: its deadline, and what to call it in errors. */
export interface AcquireOptions {
  /** Epoch ms when the job's time is up. */
  deadline?: number;
  /** The job's timeoutMs, quoted in the error. */
  timeoutMs?: number;
  /** Stops the wait (the job was cancelled); rejects with the signal's reason. */
  signal?: AbortSignal;
  /**
   * The job's compiled program (JavaScript): only the servers it names are connected (see
   * serversUsedBy). Without it, every server asked for is.
   */
  program?: string;
}

/** Why a server the program does not name has no connection in its run. */
function notNamedMessage(server: string): string {
  const namespace = toIdentifier(server);
  return `MCP server "${server}" was not connected for this job: its program does not name it. Write its namespace out (${namespace}.tool(...) or globalThis.${namespace}) instead of reaching it through eval, the Function constructor or a computed property of another name for globalThis`;
}

/** A job asked for a server that is not registered (any more). */
export class UnknownServerError extends Error {
  override name = "UnknownServerError";
  readonly code = "unknown_server";
}

interface Generation {
  configs: Record<string, McpServerConfig>;
  /**
   * The project's servers whose secrets this worker cannot open (sealed with a key it lacks, or
   * altered), with why: they fail only the jobs whose program names them.
   */
  unreadable: Map<string, SecretsError>;
  /** Every server the project registered, by name. */
  names: string[];
  pool: ClientPool;
  /** Tool hosts by server set; dropped when a server's tool list changes. */
  hosts: Map<string, Promise<ToolHost>>;
  /** The hosts of `hosts` that are built: a job finds its host here without waiting. */
  ready: Map<string, ToolHost>;
  users: number;
  stale: boolean;
  /** Closes the generation when no job has used it for a while. */
  idle?: NodeJS.Timeout;
}

/** A project's call limiters, and how many of its jobs hold a lease. */
interface ProjectLimits {
  limiters: Map<string, LimitFunction>;
  leases: number;
}

export interface Lease {
  host: ToolHost;
  /**
   * The servers asked for that the program does not name, by namespace: not connected, so their
   * namespaces in the run only say why (a program can reach a global without naming it).
   */
  notConnected: Readonly<Record<string, UnavailableServer>>;
  /** Runs `task` when the project's server has a free slot (SERVER_CONCURRENCY). */
  limit<T>(server: string, task: () => Promise<T>): Promise<T>;
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
  /**
   * Each project's call limiters, one per server name (SERVER_CONCURRENCY). Kept by the project,
   * not by its generation of clients: after a registration change the old generation's calls
   * still in flight count against the new one's, so registering again gives no fresh allowance.
   */
  private readonly limits = new Map<string, ProjectLimits>();
  private readonly db: Db;
  private readonly box: SecretBox;
  private readonly idleMs: number;
  private readonly pool: Pick<
    ClientPoolOptions,
    "maxMessageBytes" | "onProtocolError" | "connectTimeoutMs"
  >;
  private readonly sandbox: StdioSandbox;
  private readonly connectTimeoutMs: number;
  private readonly serverConcurrency: number;

  constructor(
    db: Db,
    box: SecretBox,
    options: {
      idleMs?: number;
      /** How stdio servers are confined (see STDIO_SANDBOX). */
      sandbox: StdioSandbox;
      /** Longest message read from a server (TOOL_RESULT_MAX_BYTES). */
      maxMessageBytes?: number;
      /** Told of a message a server wrote that was dropped, failing no call. */
      onProtocolError?: (server: string, error: Error) => void;
      /**
       * How long a server may take to start and list its tools before a job's calls of it fail
       * (server_unavailable). Default 30 s.
       */
      connectTimeoutMs?: number;
      /** Calls in flight to one server of a project from this worker (SERVER_CONCURRENCY). */
      serverConcurrency?: number;
    },
  ) {
    this.db = db;
    this.box = box;
    this.idleMs = options.idleMs ?? 300_000;
    this.sandbox = options.sandbox;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
    this.serverConcurrency = options.serverConcurrency ?? Number.POSITIVE_INFINITY;
    this.pool = {
      connectTimeoutMs: this.connectTimeoutMs,
      ...(options.maxMessageBytes === undefined
        ? {}
        : { maxMessageBytes: options.maxMessageBytes }),
      ...(options.onProtocolError === undefined
        ? {}
        : { onProtocolError: options.onProtocolError }),
    };
  }

  /**
   * A tool host over the project's given servers (every one it registered when the list is
   * empty), less those the program does not name. Each server gets the connect timeout to start
   * and list its tools; one that fails, or takes longer, is in the host as unavailable (its calls
   * fail, the program goes on). Waits no longer than `options.deadline`: the servers are shared
   * by the project's jobs, so one job's deadline ends its own wait, never a server's start.
   */
  async acquire(
    projectId: string,
    servers: readonly string[],
    options: AcquireOptions = {},
  ): Promise<Lease> {
    const loading = this.generationOf(projectId);
    const generation = await loading;
    const missing = servers.filter((name) => !generation.names.includes(name));
    if (missing.length > 0) {
      throw new UnknownServerError(
        `server ${missing.map((name) => `"${name}"`).join(", ")} is not registered`,
      );
    }
    generation.users++;
    clearTimeout(generation.idle);
    const limits = this.limitsOf(projectId);
    limits.leases++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      limits.leases--;
      this.dropLimitsWhenIdle(projectId, limits);
      generation.users--;
      if (generation.users > 0) return;
      if (generation.stale) void generation.pool.close();
      else this.closeWhenIdle(projectId, loading, generation);
    };
    const limit = <T>(server: string, task: () => Promise<T>): Promise<T> => {
      let limiter = limits.limiters.get(server);
      if (limiter === undefined) {
        limiter = pLimit(this.serverConcurrency);
        limits.limiters.set(server, limiter);
      }
      return limiter(task);
    };
    try {
      const asked = servers.length > 0 ? [...servers].sort() : generation.names;
      const names =
        options.program === undefined || asked.length === 0
          ? asked
          : serversUsedBy(options.program, asked);
      // A key this worker lacks first: the job is then handed back, not failed.
      const unreadable = names.flatMap((name) => generation.unreadable.get(name) ?? []);
      const unopened =
        unreadable.find((error) => error instanceof SecretsKeyMissingError) ?? unreadable[0];
      if (unopened !== undefined) throw unopened;
      // A server the program reaches without naming it (eval, the Function constructor) is not
      // connected; its namespace says so at its first call, rather than being undefined.
      const notConnected: Record<string, UnavailableServer> = Object.create(null);
      for (const server of asked) {
        if (!names.includes(server)) {
          notConnected[toIdentifier(server)] = { server, message: notNamedMessage(server) };
        }
      }
      const key = names.join("\0");
      const ready = generation.ready.get(key);
      if (ready !== undefined) return { host: ready, notConnected, limit, release };
      const { up, down } = await this.listAll(generation, names, options);
      const upKey = up.join("\0");
      let host = generation.hosts.get(upKey);
      if (host === undefined) {
        host = createToolHost(generation.pool, { servers: up });
        generation.hosts.set(upKey, host);
        const created = host;
        host.then(
          (built) => {
            if (generation.hosts.get(upKey) === created) generation.ready.set(upKey, built);
          },
          () => generation.hosts.delete(upKey),
        );
      }
      const built = await host;
      if (down.length === 0) return { host: built, notConnected, limit, release };
      const unavailable: Record<string, UnavailableServer> = Object.create(null);
      for (const server of down) unavailable[toIdentifier(server.server)] = server;
      return { host: { ...built, unavailable }, notConnected, limit, release };
    } catch (error) {
      release();
      throw error;
    }
  }

  /**
   * Lists the servers' tools, concurrently (each start and listing is shared with the project's
   * other jobs): those that answered within the connect timeout are up, the others down, with
   * the reason. Throws when the job's deadline passes first, or its signal aborts.
   */
  private async listAll(
    generation: Generation,
    names: readonly string[],
    options: AcquireOptions,
  ): Promise<{ up: string[]; down: UnavailableServer[] }> {
    const { deadline, signal } = options;
    const timer =
      deadline === undefined ? undefined : AbortSignal.timeout(Math.max(0, deadline - Date.now()));
    const connect = AbortSignal.timeout(this.connectTimeoutMs);
    const waiting = AbortSignal.any([
      connect,
      ...(timer ? [timer] : []),
      ...(signal ? [signal] : []),
    ]);
    const listed = await Promise.allSettled(
      names.map((name) => generation.pool.listTools(name, { signal: waiting })),
    );
    if (signal?.aborted) throw signal.reason;
    const up: string[] = [];
    const down: UnavailableServer[] = [];
    const late: string[] = [];
    listed.forEach((outcome, i) => {
      const server = names[i] as string;
      if (outcome.status === "fulfilled") up.push(server);
      // Whichever came first: the job's deadline (the job times out) or the connect timeout.
      else if (timer !== undefined && outcome.reason === timer.reason) late.push(server);
      else
        down.push({
          server,
          message: this.unavailableMessage(generation, server, outcome.reason, connect),
        });
    });
    if (late.length > 0) {
      throw this.timedOut(
        late.map((name) => ({ name, started: generation.pool.isConnected(name) })),
        options,
      );
    }
    return { up, down };
  }

  /** Why a server's calls fail in this run: its own error, or the connect timeout. */
  private unavailableMessage(
    generation: Generation,
    server: string,
    reason: unknown,
    connect: AbortSignal,
  ): string {
    if (connect.aborted && reason === connect.reason) {
      const what = generation.pool.isConnected(server) ? "did not list its tools" : "did not start";
      return `MCP server "${server}" is unavailable: it ${what} within ${this.connectTimeoutMs} ms`;
    }
    const message = reason instanceof Error ? reason.message : String(reason);
    return message.includes(`"${server}"`)
      ? message
      : `MCP server "${server}" is unavailable: ${message}`;
  }

  private timedOut(
    servers: Array<{ name: string; started: boolean }>,
    { timeoutMs }: AcquireOptions,
  ): ServerStartTimeoutError {
    const limit = timeoutMs === undefined ? "deadline" : `${timeoutMs} ms deadline (timeoutMs)`;
    const what = servers
      .map(({ name, started }) =>
        started
          ? `MCP server "${name}" had not listed its tools`
          : `MCP server "${name}" had not finished starting`,
      )
      .join("; ");
    return new ServerStartTimeoutError(
      `The job's ${limit} passed before its program could run: ${what}. Check that the server starts and answers (run its command by hand), or give the job a longer timeoutMs.`,
      servers.map((server) => server.name),
    );
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

  /** The project's call limiters, made on its first lease. */
  private limitsOf(projectId: string): ProjectLimits {
    let limits = this.limits.get(projectId);
    if (limits === undefined) {
      limits = { limiters: new Map(), leases: 0 };
      this.limits.set(projectId, limits);
    }
    return limits;
  }

  /**
   * Forgets the project's limiters once none of its jobs holds a lease and no call waits or runs
   * in them: a worker serving many projects keeps limiters only for those at work.
   */
  private dropLimitsWhenIdle(projectId: string, limits: ProjectLimits): void {
    if (limits.leases > 0 || this.limits.get(projectId) !== limits) return;
    for (const limiter of limits.limiters.values()) {
      if (limiter.activeCount > 0 || limiter.pendingCount > 0) return;
    }
    this.limits.delete(projectId);
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
      // Each server's secrets opened on their own: one that does not open is held against the
      // jobs that name it, not against every job of the project.
      const [{ configs, unopened }, project] = await Promise.all([
        loadServerConfigs(this.db, this.box, projectId),
        this.db.project.findUnique({
          where: { id: projectId },
          select: { allowStdioServers: true },
        }),
      ]);
      const unreadable = new Map(Object.entries(unopened));
      const hosts = new Map<string, Promise<ToolHost>>();
      const ready = new Map<string, ToolHost>();
      // Checked here too, not only at registration: a server registered before the operator
      // took stdio servers away from its project must not start.
      const refused = stdioRefusal(project);
      const pool = createClientPool(configs, {
        ...this.pool,
        onToolListChanged: () => {
          hosts.clear();
          ready.clear();
        },
        sandbox: this.sandbox,
        ...(refused === undefined ? {} : { stdioRefused: refused }),
      });
      return {
        configs,
        unreadable,
        names: [...Object.keys(configs), ...unreadable.keys()].sort(),
        pool,
        hosts,
        ready,
        users: 0,
        stale: false,
      };
    } catch (error) {
      this.current.delete(projectId);
      throw error;
    }
  }
}
