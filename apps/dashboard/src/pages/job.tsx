import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import {
  ApiError,
  type Approval,
  allSteps,
  api,
  ENDED,
  type Job,
  jobPath,
  type LogEntry,
  type Program,
  type Step,
} from "../api.ts";
import { LiveDot, Notice, Panel, StatusBadge } from "../components.tsx";
import { between, clock, duration, json, shortId } from "../format.ts";
import { useEventStream, useNow } from "../hooks.ts";
import { Timeline } from "./timeline.tsx";

function CodeView({
  code,
  line,
  column,
}: {
  code: string;
  line: number | null;
  column: number | null;
}) {
  const marked = useRef<HTMLDivElement>(null);
  useEffect(() => {
    marked.current?.scrollIntoView({ block: "center", behavior: "smooth" });
  }, [line]);
  return (
    <pre class="code">
      {code.split("\n").map((text, i) => {
        const number = i + 1;
        const here = number === line;
        return (
          <div
            class={here ? "code-line error-line" : "code-line"}
            id={`L${number}`}
            ref={here ? marked : undefined}
          >
            <span class="line-no">{number}</span>
            <span class="line-text">{text === "" ? " " : text}</span>
            {here && column !== null && <span class="line-col">column {column}</span>}
          </div>
        );
      })}
    </pre>
  );
}

function Logs({ logs, running }: { logs: LogEntry[]; running: boolean }) {
  const end = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (running) end.current?.scrollIntoView({ block: "nearest" });
  }, [logs.length, running]);
  if (logs.length === 0) {
    return <p class="empty">{running ? "Nothing logged yet." : "Nothing was logged."}</p>;
  }
  return (
    <div class="logs" role="log" aria-live="polite">
      {logs.map((entry) => (
        <div class={`log log-${entry.level}`}>
          <span class="log-at">+{duration(entry.at)}</span>
          <span class="log-level">{entry.level}</span>
          <span class="log-message">{entry.message}</span>
        </div>
      ))}
      <div ref={end} />
    </div>
  );
}

type Action = "cancel" | "resume" | "retry";

/** The calls a waiting job asks a person about, each with Approve and Reject. */
function Approvals({
  jobId,
  status,
  onDecided,
}: {
  jobId: string;
  status: string;
  onDecided: () => void;
}) {
  const [approvals, setApprovals] = useState<Approval[]>([]);
  const [reasons, setReasons] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const load = () =>
    api<{ approvals: Approval[] }>(`/v1/jobs/${encodeURIComponent(jobId)}/approvals`)
      .then((answer) => setApprovals(answer.approvals))
      .catch((caught) => setError(caught instanceof ApiError ? caught.message : String(caught)));
  useEffect(() => {
    void load();
  }, [jobId, status]);
  if (approvals.length === 0) return null;
  const decide = async (approval: Approval, decision: "approve" | "reject") => {
    try {
      const reason = reasons[approval.stepKey]?.trim();
      await api(
        `/v1/jobs/${encodeURIComponent(jobId)}/approvals/${encodeURIComponent(approval.stepKey)}`,
        { method: "POST", body: { decision, ...(reason ? { reason } : {}) } },
      );
      await load();
      onDecided();
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : String(caught));
    }
  };
  return (
    <Panel title="Approvals" id="approvals">
      {error !== null && <Notice>{error}</Notice>}
      <ul class="approvals">
        {approvals.map((approval) => (
          <li data-approval={approval.stepKey} data-status={approval.status}>
            <div class="approval-head">
              <span class="mono tool-name">
                {approval.server}.{approval.tool}
              </span>
              <StatusBadge status={approval.status} />
            </div>
            <pre class="json">{json(approval.args)}</pre>
            {approval.status === "pending" ? (
              <div class="actions">
                <input
                  type="text"
                  placeholder="Reason (optional)"
                  value={reasons[approval.stepKey] ?? ""}
                  onInput={(e) =>
                    setReasons({
                      ...reasons,
                      [approval.stepKey]: (e.target as HTMLInputElement).value,
                    })
                  }
                />
                <button type="button" class="primary" onClick={() => decide(approval, "approve")}>
                  Approve
                </button>
                <button type="button" class="danger" onClick={() => decide(approval, "reject")}>
                  Reject
                </button>
              </div>
            ) : (
              approval.reason && <p class="muted small">{approval.reason}</p>
            )}
          </li>
        ))}
      </ul>
    </Panel>
  );
}

export function JobPage({ id }: { id?: string; path?: string }) {
  const jobId = id ?? "";
  const location = useLocation();
  const [job, setJob] = useState<Job | null>(null);
  const [program, setProgram] = useState<Program | null>(null);
  const [steps, setSteps] = useState<Map<string, Step>>(new Map());
  const [moreSteps, setMoreSteps] = useState(false);
  const [logs, setLogs] = useState<LogEntry[]>([]);
  /** Steps the current run has replayed so far, as it reports them. */
  const [liveReplayed, setLiveReplayed] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<Action | null>(null);
  const [streamKey, setStreamKey] = useState(0);
  const now = useNow(500);

  const loadSteps = async () => {
    const { steps: rows, more } = await allSteps(jobId);
    setSteps(new Map(rows.map((step) => [step.key, step])));
    setMoreSteps(more);
  };

  const load = async () => {
    try {
      const [fresh, code] = await Promise.all([
        api<Job>(`/v1/jobs/${encodeURIComponent(jobId)}`),
        api<Program>(`/v1/jobs/${encodeURIComponent(jobId)}/program`),
      ]);
      setJob(fresh);
      // While a job runs, its stored logs are the last run's: this run's lines come live.
      setLogs(ENDED.has(fresh.status) ? fresh.logs : []);
      setProgram(code);
      await loadSteps();
      setError(null);
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : String(caught));
    }
  };

  useEffect(() => {
    setJob(null);
    setLiveReplayed(0);
    setSteps(new Map());
    setLogs([]);
    void load();
  }, [jobId]);

  const ended = job !== null && ENDED.has(job.status);
  const state = useEventStream(
    job === null || ended ? null : `/v1/jobs/${encodeURIComponent(jobId)}/events?s=${streamKey}`,
    {
      job: (data) => setJob(data as Job),
      status: (data) => {
        const { status } = data as { status: Job["status"] };
        setJob((before) => (before === null ? before : { ...before, status }));
        // The stream closes once the job has ended, perhaps before its `end`: read it whole.
        if (ENDED.has(status)) void load();
      },
      step: (data) => {
        const step = data as Step;
        setSteps((before) => new Map(before).set(step.key, { ...before.get(step.key), ...step }));
      },
      log: (data) => setLogs((before) => [...before, data as LogEntry]),
      replayed: (data) => setLiveReplayed((data as { count: number }).count),
      end: () => void load(),
    },
    "end",
  );

  const act = async (action: Action) => {
    setBusy(action);
    try {
      if (action === "retry" && program !== null) {
        const created = await api<{ id: string }>("/v1/jobs", {
          method: "POST",
          body: {
            code: program.code,
            ...(program.input === null ? {} : { input: program.input }),
            servers: program.servers,
            timeoutMs: program.timeoutMs,
            memoryMb: program.memoryMb,
          },
        });
        location.route(jobPath(created.id));
        return;
      }
      setLiveReplayed(0);
      await api(`/v1/jobs/${encodeURIComponent(jobId)}/${action}`, {
        method: "POST",
        ...(action === "resume" ? { body: {} } : {}),
      });
      await load();
      setStreamKey((n) => n + 1);
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : String(caught));
    } finally {
      setBusy(null);
    }
  };

  const ordered = useMemo(
    () => [...steps.values()].sort((a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt)),
    [steps],
  );

  if (job === null) {
    return (
      <main class="page">
        <h1>Job {shortId(jobId)}</h1>
        {error === null ? <p class="muted">Loading…</p> : <Notice>{error}</Notice>}
      </main>
    );
  }
  const running = !ended;
  const stepCounts = {
    done: ordered.filter((s) => s.status !== "running").length,
    running: ordered.filter((s) => s.status === "running").length,
    replayed: ordered.filter((s) => (s.replays ?? 0) > 0).length,
    failed: ordered.filter((s) => s.status === "failed").length,
  };

  return (
    <main class="page">
      <div class="page-head">
        <h1>
          Job <span class="mono">{shortId(job.id)}</span>
        </h1>
        <StatusBadge status={job.status} />
        {running && <LiveDot state={state} />}
        <span class="spacer" />
        <div class="actions">
          {(job.status === "queued" || job.status === "running" || job.status === "waiting") && (
            <button
              type="button"
              class="danger"
              disabled={busy !== null}
              onClick={() => act("cancel")}
            >
              {busy === "cancel" ? "Cancelling…" : "Cancel"}
            </button>
          )}
          {(job.status === "failed" || job.status === "cancelled") && (
            <button
              type="button"
              class="primary"
              disabled={busy !== null}
              onClick={() => act("resume")}
              title="Run again; steps that succeeded are replayed from their checkpoints, not called again"
            >
              {busy === "resume" ? "Resuming…" : "Resume"}
            </button>
          )}
          {ended && (
            <button
              type="button"
              disabled={busy !== null || program === null}
              onClick={() => act("retry")}
              title="Submit the same program and input as a new job, from scratch"
            >
              {busy === "retry" ? "Submitting…" : "Retry as new job"}
            </button>
          )}
        </div>
      </div>
      <p class="muted mono small">{job.id}</p>
      {error !== null && <Notice>{error}</Notice>}

      <dl class="stats">
        <div>
          <dt>Created</dt>
          <dd>{clock(job.createdAt)}</dd>
        </div>
        <div>
          <dt>Queued for</dt>
          <dd>{duration(between(job.createdAt, job.startedAt, now))}</dd>
        </div>
        <div>
          <dt>Ran for</dt>
          <dd>
            {job.startedAt === null
              ? "—"
              : duration(job.stats.wallMs ?? between(job.startedAt, job.finishedAt, now))}
          </dd>
        </div>
        <div>
          <dt>Steps</dt>
          <dd data-testid="step-count">
            {stepCounts.done} done
            {running && liveReplayed > 0 ? `, ${liveReplayed} replayed` : ""}
            {stepCounts.running > 0 ? `, ${stepCounts.running} running` : ""}
          </dd>
        </div>
        <div>
          <dt>Executed / replayed</dt>
          <dd>
            {job.stats.executedSteps} / {job.stats.replayedSteps}
          </dd>
        </div>
        <div>
          <dt>Attempts</dt>
          <dd>{job.stats.attempts}</dd>
        </div>
        <div>
          <dt>CPU</dt>
          <dd>{duration(job.stats.cpuMs)}</dd>
        </div>
        <div>
          <dt>Servers</dt>
          <dd>{job.servers.length === 0 ? "all" : job.servers.join(", ")}</dd>
        </div>
      </dl>

      {job.error !== null && (
        <div class="job-error" role="alert">
          <strong>
            {job.error.name}
            {job.error.code !== job.error.name ? ` (${job.error.code})` : ""}:
          </strong>{" "}
          {job.error.message}
          {job.error.line !== null && (
            <>
              {" "}
              —{" "}
              <a href={`#L${job.error.line}`}>
                line {job.error.line}
                {job.error.column !== null ? `, column ${job.error.column}` : ""}
              </a>
            </>
          )}
          {job.error.server !== undefined && (
            <span class="muted">
              {" "}
              in {job.error.server}.{job.error.tool}
            </span>
          )}
        </div>
      )}

      <Approvals jobId={job.id} status={job.status} onDecided={() => void load()} />

      {job.status === "succeeded" && (
        <Panel
          title="Result"
          actions={
            job.resultTruncated ? <span class="muted small">cut to the size limit</span> : undefined
          }
        >
          <pre class="json" data-testid="result">
            {json(job.result)}
          </pre>
        </Panel>
      )}

      <div class="columns">
        <Panel title="Program">
          {program === null ? (
            <p class="muted">Loading…</p>
          ) : (
            <CodeView
              code={program.code}
              line={job.error?.line ?? null}
              column={job.error?.column ?? null}
            />
          )}
          {program !== null && program.input !== null && (
            <details class="input">
              <summary>Input</summary>
              <pre class="json">{json(program.input)}</pre>
            </details>
          )}
        </Panel>
        <Panel title={`Logs (${logs.length})`}>
          <Logs logs={logs} running={running} />
        </Panel>
      </div>

      <Panel
        title="Timeline"
        id="timeline"
        actions={
          <span class="muted small">
            {ordered.length} step{ordered.length === 1 ? "" : "s"} · {stepCounts.replayed} replayed
            · {stepCounts.failed} failed
            {moreSteps ? " · first 5,000 shown" : ""}
          </span>
        }
      >
        <Timeline job={job} steps={ordered} now={now} />
      </Panel>
    </main>
  );
}
