// turtle submit | jobs | logs | cancel | resume: jobs on a running Turtle, over its REST API.
import { jobEvents, type Remote, request } from "./remote.ts";

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stderr is a terminal: the progress line then redraws itself in place. */
  tty?: boolean;
}

interface JobView {
  id: string;
  status: string;
  result?: unknown;
  error?: { name: string; message: string; line: number | null; column: number | null } | null;
  logs?: Array<{ level: string; message: string }>;
  stats?: { executedSteps: number; replayedSteps: number; wallMs: number | null };
  createdAt?: string;
  finishedAt?: string | null;
}

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

export function formatLogLine(entry: { level?: unknown; message?: unknown }): string {
  const message = String(entry.message ?? "");
  return entry.level === "log" || entry.level === "info"
    ? `${message}\n`
    : `${String(entry.level)}: ${message}\n`;
}

/**
 * Follows a job to its end: a progress line (steps done, running, replayed) and its log lines
 * on stderr as they happen, then its result on stdout. Exit code 0 when it succeeded.
 */
export async function follow(remote: Remote, id: string, io: Io): Promise<number> {
  const short = id.slice(0, 8);
  let status = "queued";
  let done = 0;
  let failed = 0;
  let replayed = 0;
  const running = new Set<string>();
  const started = Date.now();
  let shown = "";
  const progress = () => {
    const line = `job ${short} ${status} · ${done} steps done${failed > 0 ? ` (${failed} failed)` : ""}, ${replayed} replayed, ${running.size} running · ${((Date.now() - started) / 1000).toFixed(1)} s`;
    if (io.tty) {
      io.stderr(`\r\u001b[K${line}`);
      shown = line;
    } else if (line.split(" · ")[0] !== shown.split(" · ")[0]) {
      // Without a terminal, one line per status change.
      io.stderr(`${line}\n`);
      shown = line;
    }
  };
  const clear = () => {
    if (io.tty && shown !== "") io.stderr("\r\u001b[K");
  };
  // Ctrl-C stops the following, not the job: the line is cleared and the way back named.
  const interrupted = () => {
    clear();
    io.stderr(
      `stopped following job ${id}; it goes on: \`turtle logs -f ${id}\` follows it again, \`turtle cancel ${id}\` stops it\n`,
    );
    process.exit(130);
  };
  process.once("SIGINT", interrupted);
  try {
    return await followEvents();
  } finally {
    process.off("SIGINT", interrupted);
  }

  async function followEvents(): Promise<number> {
    for await (const { event, data } of jobEvents(remote, id)) {
      if (event === "job" || event === "status") status = String(data.status);
      if (event === "step") {
        const key = String(data.key);
        if (data.status === "running") running.add(key);
        else {
          running.delete(key);
          done++;
          if (data.status === "failed") failed++;
        }
      }
      if (event === "replayed") replayed = Number(data.count) || replayed;
      if (event === "log") {
        clear();
        io.stderr(formatLogLine(data));
      }
      if (event === "end") break;
      progress();
    }
    clear();
    const job = await request<JobView>(remote, "GET", `/v1/jobs/${id}`);
    const stats = job.stats;
    const summary = `job ${job.id} ${job.status}${stats ? ` · ${stats.executedSteps} steps executed, ${stats.replayedSteps} replayed${stats.wallMs === null ? "" : ` · ${stats.wallMs} ms`}` : ""}`;
    io.stderr(`${summary}\n`);
    if (job.status === "succeeded") {
      io.stdout(`${JSON.stringify(job.result ?? null, null, 2)}\n`);
      return 0;
    }
    const error = job.error;
    if (error) {
      const where = error.line === null ? "" : ` (line ${error.line}, column ${error.column ?? 1})`;
      io.stderr(`${error.name}: ${error.message}${where}\n`);
    }
    return 1;
  }
}

export async function submit(
  remote: Remote,
  body: Record<string, unknown>,
  wait: boolean,
  io: Io,
): Promise<number> {
  const job = await request<JobView>(remote, "POST", "/v1/jobs", body);
  if (!wait) {
    io.stdout(`${job.id}\n`);
    return 0;
  }
  return follow(remote, job.id, io);
}

export async function listJobs(
  remote: Remote,
  query: { status?: string; limit?: string },
  io: Io,
): Promise<number> {
  const params = new URLSearchParams();
  if (query.status !== undefined) params.set("status", query.status);
  if (query.limit !== undefined) params.set("limit", query.limit);
  const suffix = params.size > 0 ? `?${params}` : "";
  const { jobs } = await request<{ jobs: JobView[] }>(remote, "GET", `/v1/jobs${suffix}`);
  if (jobs.length === 0) {
    io.stderr("no jobs\n");
    return 0;
  }
  const rows = jobs.map((job) => [job.id, job.status, job.createdAt ?? "", job.finishedAt ?? ""]);
  printTable(["ID", "STATUS", "CREATED", "FINISHED"], rows, io);
  return 0;
}

/** Rows under a header, each column as wide as its widest cell. */
export function printTable(header: string[], rows: string[][], io: Io): void {
  const widths = header.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => row[i]?.length ?? 0)),
  );
  for (const row of [header, ...rows]) {
    io.stdout(
      `${row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd()}\n`,
    );
  }
}

/** A job's logs; with `followLive`, its lines as they are logged until it ends. */
export async function logs(
  remote: Remote,
  id: string,
  followLive: boolean,
  io: Io,
): Promise<number> {
  if (!followLive) {
    const job = await request<JobView>(remote, "GET", `/v1/jobs/${encodeURIComponent(id)}`);
    for (const entry of job.logs ?? []) io.stdout(formatLogLine(entry));
    return 0;
  }
  let live = false;
  for await (const { event, data } of jobEvents(remote, id)) {
    // A job that has ended already: its stored lines. One still running: its lines live (its
    // stored lines are those of an earlier run), also across a reconnection.
    if (event === "job" && TERMINAL.has(String(data.status)) && !live) {
      for (const entry of (data.logs as JobView["logs"]) ?? []) io.stdout(formatLogLine(entry));
    }
    if (event === "job" && !TERMINAL.has(String(data.status))) live = true;
    if (event === "log") io.stdout(formatLogLine(data));
    if (event === "end") break;
  }
  return 0;
}

export async function control(
  remote: Remote,
  action: "cancel" | "resume",
  id: string,
  body: Record<string, unknown>,
  follows: boolean,
  io: Io,
): Promise<number> {
  // A running job stops within moments: wait for it, to report how it ended.
  const wait = action === "cancel" ? "?wait=10" : "";
  const job = await request<JobView>(
    remote,
    "POST",
    `/v1/jobs/${encodeURIComponent(id)}/${action}${wait}`,
    body,
  );
  if (action === "resume" && follows) return follow(remote, job.id, io);
  io.stdout(`${job.id} ${job.status}\n`);
  return 0;
}
