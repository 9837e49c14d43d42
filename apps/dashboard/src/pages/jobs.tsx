import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import {
  ApiError,
  api,
  JOB_STATUSES,
  type JobStatus,
  type JobSummary,
  jobPath,
  type Server,
} from "../api.ts";
import { Empty, LiveDot, Notice, StatusBadge } from "../components.tsx";
import { ago, between, duration, shortId } from "../format.ts";
import { useEventStream, useNow } from "../hooks.ts";

const PERIODS: Array<{ value: string; label: string; ms: number | null }> = [
  { value: "", label: "Any time", ms: null },
  { value: "15m", label: "Last 15 minutes", ms: 15 * 60_000 },
  { value: "1h", label: "Last hour", ms: 3_600_000 },
  { value: "24h", label: "Last 24 hours", ms: 86_400_000 },
  { value: "7d", label: "Last 7 days", ms: 7 * 86_400_000 },
];
const PAGE = 50;

interface Filters {
  status: string;
  server: string;
  period: string;
}

function listUrl(filters: Filters, cursor: string | null): string {
  const query = new URLSearchParams({ limit: String(PAGE) });
  if (filters.status !== "") query.set("status", filters.status);
  if (filters.server !== "") query.set("server", filters.server);
  const period = PERIODS.find((p) => p.value === filters.period)?.ms ?? null;
  if (period !== null) query.set("since", new Date(Date.now() - period).toISOString());
  if (cursor !== null) query.set("cursor", cursor);
  return `/v1/jobs?${query}`;
}

export function JobsPage(_props: { path?: string }) {
  const location = useLocation();
  const filters: Filters = {
    status: location.query.status ?? "",
    server: location.query.server ?? "",
    period: location.query.period ?? "",
  };
  const key = `${filters.status}|${filters.server}|${filters.period}`;
  const [jobs, setJobs] = useState<JobSummary[] | null>(null);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [servers, setServers] = useState<Server[]>([]);
  const [changed, setChanged] = useState<Set<string>>(new Set());
  /** How many rows are shown: the first page, plus those "more" added. */
  const shown = useRef(PAGE);
  const now = useNow();

  useEffect(() => {
    api<{ servers: Server[] }>("/v1/servers")
      .then((answer) => setServers(answer.servers))
      .catch(() => {});
  }, []);

  const reload = useCallback(async () => {
    try {
      // Reloads as many rows as are shown, so "more" pages are kept while the list updates.
      const rows: JobSummary[] = [];
      let next: string | null = null;
      do {
        const page: { jobs: JobSummary[]; nextCursor: string | null } = await api(
          listUrl(filters, next),
        );
        rows.push(...page.jobs);
        next = page.nextCursor;
      } while (next !== null && rows.length < shown.current);
      setJobs((before) => {
        if (before !== null) {
          const old = new Map(before.map((job) => [job.id, job.status]));
          const fresh = rows.filter((job) => old.get(job.id) !== job.status).map((job) => job.id);
          if (fresh.length > 0) setChanged(new Set(fresh));
        }
        return rows;
      });
      setCursor(next);
      setError(null);
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : String(caught));
    }
  }, [key]);

  useEffect(() => {
    shown.current = PAGE;
    setJobs(null);
    void reload();
  }, [reload]);

  // Any job's status change reloads the list, at most every 300 ms.
  const pending = useRef<number | null>(null);
  const state = useEventStream("/v1/events", {
    job: () => {
      if (pending.current !== null) return;
      pending.current = window.setTimeout(() => {
        pending.current = null;
        void reload();
      }, 300);
    },
  });

  // A stream that (re)opens may have missed changes meanwhile: read the list again.
  useEffect(() => {
    if (state === "live") void reload();
  }, [state, reload]);
  useEffect(
    () => () => {
      if (pending.current !== null) clearTimeout(pending.current);
    },
    [],
  );

  const more = async () => {
    if (cursor === null || jobs === null) return;
    const page: { jobs: JobSummary[]; nextCursor: string | null } = await api(
      listUrl(filters, cursor),
    );
    shown.current = jobs.length + page.jobs.length;
    setJobs([...jobs, ...page.jobs]);
    setCursor(page.nextCursor);
  };

  const setFilter = (name: keyof Filters, value: string) => {
    const next = { ...filters, [name]: value };
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(next)) if (v !== "") query.set(k, v);
    const search = query.toString();
    location.route(`/dashboard${search === "" ? "" : `?${search}`}`, true);
  };

  return (
    <main class="page">
      <div class="page-head">
        <h1>Jobs</h1>
        <LiveDot state={state} />
      </div>
      <div class="filters">
        {(
          [
            ["status", "Status", [["", "All"], ...JOB_STATUSES.map((s) => [s, s])]],
            ["server", "Server", [["", "All"], ...servers.map((s) => [s.name, s.name])]],
            ["period", "Created", PERIODS.map((p) => [p.value, p.label])],
          ] as Array<[keyof Filters, string, string[][]]>
        ).map(([name, label, options]) => (
          <label>
            {label}
            <select
              name={name}
              value={filters[name]}
              onChange={(e) => setFilter(name, (e.target as HTMLSelectElement).value)}
            >
              {options.map(([value, text]) => (
                <option value={value}>{text}</option>
              ))}
            </select>
          </label>
        ))}
      </div>
      {error !== null && <Notice>{error}</Notice>}
      {jobs === null ? (
        <p class="muted">Loading…</p>
      ) : jobs.length === 0 ? (
        <Empty>
          No jobs
          {filters.status || filters.server || filters.period ? " match these filters" : " yet"}.
          Submit one with <code>POST /v1/jobs</code>, <code>npx turtle submit</code> or an MCP
          client.
        </Empty>
      ) : (
        <table class="jobs">
          <thead>
            <tr>
              <th>Status</th>
              <th>Job</th>
              <th>Servers</th>
              <th>Created</th>
              <th class="num">Queued for</th>
              <th class="num">Ran for</th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((job) => (
              <tr
                key={job.id}
                class={changed.has(job.id) ? "flash" : ""}
                data-job={job.id}
                data-status={job.status}
              >
                <td>
                  <StatusBadge status={job.status as JobStatus} />
                </td>
                <td>
                  <a href={jobPath(job.id)} class="mono">
                    {shortId(job.id)}
                  </a>
                </td>
                <td class="muted">{job.servers.length === 0 ? "all" : job.servers.join(", ")}</td>
                <td title={new Date(job.createdAt).toLocaleString()}>{ago(job.createdAt, now)}</td>
                <td class="num">
                  {duration(
                    between(
                      job.createdAt,
                      job.startedAt ?? (job.finishedAt ? job.finishedAt : null),
                      now,
                    ),
                  )}
                </td>
                <td class="num">
                  {job.startedAt === null
                    ? "—"
                    : duration(between(job.startedAt, job.finishedAt, now))}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {cursor !== null && (
        <button type="button" class="ghost more" onClick={more}>
          Show more
        </button>
      )}
    </main>
  );
}
