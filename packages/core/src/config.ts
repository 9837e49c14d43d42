import { z } from "zod";

/**
 * Every setting of the API and the workers, read from the environment once at boot. A bad value
 * stops the process with a message naming the variable (see `.env.example` for each one).
 */
const int = (fallback: number, min = 1) => z.coerce.number().int().min(min).default(fallback);

export const ConfigSchema = z.object({
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "must be a postgresql:// URL")
    .default("postgresql://postgres@127.0.0.1:5432/turtle"),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, "must be a redis:// URL")
    .default("redis://127.0.0.1:6379"),
  HOST: z.string().default("127.0.0.1"),
  /**
   * Behind a reverse proxy that sets X-Forwarded-For/-Proto/-Host: `true` (one proxy) or how many
   * stand in front. The session cookie is then Secure over https, the dashboard's origin check
   * uses the public host, and a client's address (what failed authentication is counted by) is
   * the one the nearest proxies saw, never an address the client wrote into the header itself.
   */
  TRUST_PROXY: z
    .string()
    .default("false")
    .transform((value, context) => {
      if (value === "" || value === "false") return 0;
      if (value === "true") return 1;
      const hops = Number(value);
      if (Number.isInteger(hops) && hops >= 0 && hops <= 16) return hops;
      context.addIssue({
        code: "custom",
        message: "must be true, false, or how many proxies stand in front of Turtle (0-16)",
      });
      return z.NEVER;
    }),
  PORT: int(3000, 0).pipe(z.number().max(65_535)),
  /** Queue name; also prefixes Turtle's Redis channels, so test runs never meet. */
  TURTLE_QUEUE: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "letters, digits, - and _ only")
    .default("turtle-jobs"),
  /** An `mcpServers` file whose servers are registered at start. */
  MCP_SERVERS_FILE: z
    .string()
    .optional()
    .transform((path) => (path === "" ? undefined : path)),
  /**
   * Encrypts MCP servers' secret env and header values at rest (32 bytes, base64 or hex);
   * `npm run setup` writes one to .env. Required by the API and the workers.
   */
  SECRETS_KEY: z
    .string()
    .optional()
    .transform((key) => (key === "" ? undefined : key)),
  /** Other keys that only open secrets, comma-separated: for a key rotation (see README). */
  SECRETS_READ_KEYS: z.string().optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),

  /**
   * How stdio MCP servers run. `bwrap`: each in a bubblewrap sandbox of its own (own user and PID
   * namespace, none of Turtle's files, environment or processes in view; see the README). `none`:
   * as plain child processes with the API's and workers' own access — only where every project
   * allowed stdio servers is trusted with the platform's secrets; logged loudly at start.
   */
  STDIO_SANDBOX: z.enum(["bwrap", "none"]).default("bwrap"),
  /**
   * Confined servers' network. `isolated` (default): a network namespace of each server's own,
   * reaching the outside through slirp4netns (Debian's `slirp4netns`) but never the host's
   * loopback, where Postgres, Redis and Turtle's API listen. `none`: loopback only. `host`: the
   * host's network, loopback included — only where every project allowed stdio servers is
   * trusted with what listens there; logged as a warning at start.
   */
  STDIO_SANDBOX_NETWORK: z.enum(["isolated", "none", "host"]).default("isolated"),
  /**
   * Host directories every confined stdio server sees, comma-separated absolute paths, read-only
   * unless followed by `:rw` (`/srv/mcp-data:rw`). A registration's `cwd` or directory argument
   * is only visible when it is under one of these.
   */
  /**
   * Size of each confined stdio server's private /tmp and HOME, in MiB (tmpfs: host memory, so
   * each server may hold up to twice this). Also the largest file a server may write anywhere.
   */
  STDIO_SANDBOX_TMP_MB: int(256),
  STDIO_SANDBOX_PATHS: z
    .string()
    .default("")
    .transform((text, context) => {
      const paths: Array<{ path: string; writable: boolean }> = [];
      for (const item of text.split(",").map((part) => part.trim())) {
        if (item === "") continue;
        const writable = item.endsWith(":rw");
        const path = item.replace(/:(rw|ro)$/, "");
        if (!path.startsWith("/") || path.includes("\0")) {
          context.addIssue({
            code: "custom",
            message: `"${item}" is not an absolute path: list directories as /abs/path or /abs/path:rw`,
          });
          return z.NEVER;
        }
        paths.push({ path, writable });
      }
      return paths;
    }),

  /**
   * Each project's limits, unless its own are set (PATCH /v1/projects/:id): jobs queued or
   * running at once (more answer 429), and API requests per minute over all its keys.
   */
  PROJECT_MAX_CONCURRENT_JOBS: int(5_000),
  PROJECT_REQUESTS_PER_MINUTE: int(6_000),
  /**
   * Requests from one client address that may fail to authenticate (a wrong key, an ended
   * session) per minute; past it the address gets 429 until the minute ends, keys already
   * known valid excepted.
   */
  AUTH_FAILURES_PER_MINUTE: int(30),

  MAX_CODE_BYTES: int(256 * 1024),
  MAX_BODY_BYTES: int(2 * 1024 * 1024),
  MAX_QUEUE_DEPTH: int(100_000),
  JOB_TIMEOUT_MS: int(60_000),
  JOB_MAX_TIMEOUT_MS: int(15 * 60_000),
  JOB_MEMORY_MB: int(128, 8),
  JOB_MAX_MEMORY_MB: int(1024, 8),
  /** Result and logs kept in Postgres per job; larger ones are cut, marked truncated. */
  STORED_RESULT_MAX_BYTES: int(1024 * 1024),
  STORED_LOGS_MAX_BYTES: int(256 * 1024),

  /** Longest one type check of a program may take before it is stopped. */
  TYPECHECK_TIMEOUT_MS: int(10_000),
  /** Longest the MCP façade's `execute` waits for a job before answering with its id. */
  MCP_WAIT_MS: int(30_000),
  /** Characters of a result, and of logs, that one MCP answer carries; the rest is paged. */
  MCP_RESULT_MAX_CHARS: int(8_000, 100),
  MCP_LOGS_MAX_CHARS: int(4_000, 100),

  /**
   * A job recorded in Postgres but missing from the queue (its API was killed between the two,
   * or Redis lost its data) is queued again by the API: each API checks this often, and a job
   * queued for longer than this is checked, so one is queued within about twice this.
   */
  REQUEUE_AFTER_MS: int(5_000, 100),
  /**
   * A test hook, never for production: the API kills itself with SIGKILL at this point of a
   * submission (after-insert, after-enqueue, before-answer; before-requeue: a resume's or an
   * approval's, once its run is recorded), so tests can show that no accepted job is lost.
   */
  TEST_KILL_AT: z
    .enum(["", "after-insert", "after-enqueue", "before-answer", "before-requeue"])
    .optional()
    .transform((point) => (point === "" ? undefined : point)),

  /**
   * Jobs one worker holds at once, all projects together: running, or waiting a moment for their
   * project's share. A job waiting on tool calls costs memory, not CPU (isolates run on threads
   * of their own), so this may be well above the machine's cores.
   */
  WORKER_CONCURRENCY: int(32),
  /**
   * Jobs of one project one worker runs at once. Below WORKER_CONCURRENCY, the rest of the slots
   * stay free for other projects however many of this one's jobs wait on slow tool calls; equal to
   * it, one project may take a whole worker.
   */
  WORKER_PROJECT_CONCURRENCY: int(16),
  /**
   * Longest a job fetched for a project at its share waits on the worker for one of the
   * project's runs to end before it goes back to the queue (for an idle worker elsewhere).
   */
  WORKER_SHARE_WAIT_MS: int(1_000),
  /** How often a worker stores its metrics for /metrics (they expire 3 periods later). */
  WORKER_METRICS_MS: int(5_000, 100),
  /**
   * A dead worker's jobs are redelivered within about twice this. A run whose worker cannot get
   * its lock renewed within it (Redis stalled, unreachable) stops and gives the job back.
   */
  WORKER_LOCK_MS: int(10_000, 500),
  /** Deliveries of one run before a job that keeps killing workers is failed. */
  WORKER_MAX_DELIVERIES: int(3),
  /** On SIGTERM, running jobs get this long to finish before they are handed back. */
  WORKER_SHUTDOWN_GRACE_MS: int(10_000, 0),
  /** Longest a finished step waits before its checkpoint batch is written. */
  CHECKPOINT_FLUSH_MS: int(5, 0),
  CHECKPOINT_BATCH_MAX: int(500),
  /**
   * A tool call whose server went away (died, connection lost) is made again this many times at
   * most, with the same idempotency key, after STEP_RETRY_BACKOFF_MS, doubling each time.
   */
  STEP_RETRIES: int(2, 0),
  STEP_RETRY_BACKOFF_MS: int(250, 0),
  /** Concurrent calls one worker makes to one MCP server of one project. */
  SERVER_CONCURRENCY: int(64),
  /**
   * Longest a worker waits for an MCP server a job uses to start and list its tools; past it the
   * job runs with that server unavailable (its calls fail as `server_unavailable`).
   */
  SERVER_CONNECT_TIMEOUT_MS: int(30_000, 100),
  /**
   * Longest message a worker (or the API, listing tools) reads from an MCP server, in bytes: a
   * longer tool answer fails only its own call (ToolError `result_too_large`), read no further.
   */
  TOOL_RESULT_MAX_BYTES: int(8 * 1024 * 1024, 1024),
  /** A project's MCP connections (and stdio servers) a worker closes after no job used them. */
  SERVER_IDLE_MS: int(300_000, 100),
});

export type Config = z.infer<typeof ConfigSchema>;

export class ConfigError extends Error {
  override name = "ConfigError";
  readonly code = "invalid_config";
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = ConfigSchema.safeParse(env);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map(
    (issue) =>
      `${issue.path.join(".")}=${JSON.stringify(env[String(issue.path[0])] ?? "")}: ${issue.message}`,
  );
  throw new ConfigError(`invalid configuration:\n  ${lines.join("\n  ")}`);
}
