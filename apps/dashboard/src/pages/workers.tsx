import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { ApiError, api, jobPath, type Throughput, type WorkerInfo } from "../api.ts";
import { Empty, Notice, Panel } from "../components.tsx";
import { ago, duration, shortId } from "../format.ts";
import { useEvery, useNow } from "../hooks.ts";

const WINDOWS = [
  { minutes: 15, bucketSeconds: 10, label: "15 minutes" },
  { minutes: 60, bucketSeconds: 30, label: "hour" },
  { minutes: 1440, bucketSeconds: 600, label: "24 hours" },
];

function ThroughputChart({ data }: { data: Throughput }) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<uPlot | null>(null);

  const columns = (): uPlot.AlignedData => {
    // The last interval is still going: its count is over the seconds it has had so far.
    const now = Date.now() / 1000;
    const seconds = data.buckets.map((b) =>
      Math.max(1, Math.min(data.bucketSeconds, now - Date.parse(b.at) / 1000)),
    );
    const rate = (key: "succeeded" | "failed" | "cancelled") =>
      data.buckets.map((b, i) => b[key] / (seconds[i] ?? data.bucketSeconds));
    return [
      data.buckets.map((b) => Date.parse(b.at) / 1000),
      rate("succeeded"),
      rate("failed"),
      rate("cancelled"),
    ];
  };

  useEffect(() => {
    if (box.current === null) return;
    const make = () =>
      new uPlot(
        {
          width: box.current?.clientWidth ?? 800,
          height: 240,
          scales: { y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
          axes: [{}, { label: "jobs / s", size: 60 }],
          series: [
            {},
            { label: "succeeded", stroke: "#2f9e44", fill: "rgba(47,158,68,0.12)", width: 2 },
            { label: "failed", stroke: "#e03131", width: 2 },
            { label: "cancelled", stroke: "#868e96", width: 1 },
          ],
        },
        columns(),
        box.current as HTMLElement,
      );
    chart.current?.destroy();
    chart.current = make();
    const resize = () =>
      chart.current?.setSize({ width: box.current?.clientWidth ?? 800, height: 240 });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.current?.destroy();
      chart.current = null;
    };
    // Made again only when the window changes; new data goes in below.
  }, [data.bucketSeconds]);

  useEffect(() => {
    chart.current?.setData(columns());
  }, [data]);

  return <div ref={box} class="chart" data-testid="throughput-chart" />;
}

export function WorkersPage(_props: { path?: string }) {
  const [workers, setWorkers] = useState<WorkerInfo[] | null>(null);
  const [throughput, setThroughput] = useState<Throughput | null>(null);
  const [window, setWindow] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const now = useNow();
  const chosen = WINDOWS[window] ?? WINDOWS[0];

  useEvery(2000, () => {
    api<{ workers: WorkerInfo[] }>("/v1/workers")
      .then((answer) => {
        setWorkers(answer.workers);
        setError(null);
      })
      .catch((caught) => setError(caught instanceof ApiError ? caught.message : String(caught)));
  });
  useEvery(5000, () => {
    if (chosen === undefined) return;
    api<Throughput>(
      `/v1/stats/throughput?minutes=${chosen.minutes}&bucketSeconds=${chosen.bucketSeconds}`,
    )
      .then(setThroughput)
      .catch(() => {});
  }, [window]);

  const capacity = (workers ?? []).reduce((sum, w) => sum + w.concurrency, 0);
  const busy = (workers ?? []).reduce((sum, w) => sum + w.busy, 0);
  const recent = throughput?.buckets.slice(-6) ?? [];
  const recentRate =
    recent.length === 0
      ? 0
      : recent.reduce((sum, b) => sum + b.succeeded + b.failed + b.cancelled, 0) /
        (recent.length * (throughput?.bucketSeconds ?? 1));

  return (
    <main class="page">
      <div class="page-head">
        <h1>Workers</h1>
      </div>
      {error !== null && <Notice>{error}</Notice>}
      <dl class="stats">
        <div>
          <dt>Live workers</dt>
          <dd data-testid="worker-count">{workers?.length ?? "—"}</dd>
        </div>
        <div>
          <dt>Jobs running</dt>
          <dd>
            {busy} of {capacity} slots
          </dd>
        </div>
        <div>
          <dt>Recent throughput</dt>
          <dd>{recentRate.toFixed(recentRate < 10 ? 2 : 0)} jobs/s</dd>
        </div>
      </dl>
      <Panel
        title="Throughput"
        actions={
          <select
            value={String(window)}
            onChange={(e) => setWindow(Number((e.target as HTMLSelectElement).value))}
          >
            {WINDOWS.map((w, i) => (
              <option value={String(i)}>last {w.label}</option>
            ))}
          </select>
        }
      >
        {throughput === null ? (
          <p class="muted">Loading…</p>
        ) : (
          <ThroughputChart data={throughput} />
        )}
        <p class="muted small">Jobs that ended per second, from Postgres, all workers together.</p>
      </Panel>
      <Panel title="Live workers">
        {workers !== null && workers.length === 0 ? (
          <Empty>
            No worker is running. Start one with <code>npm run worker</code> — as many as you like,
            on any machine that reaches the same Postgres and Redis.
          </Empty>
        ) : (
          <table class="workers">
            <thead>
              <tr>
                <th>Worker</th>
                <th>Up for</th>
                <th>In flight</th>
                <th>Jobs running now</th>
                <th class="num">Finished</th>
              </tr>
            </thead>
            <tbody>
              {(workers ?? []).map((worker) => (
                <tr data-worker={worker.id}>
                  <td>
                    <strong class="mono">{worker.host}</strong>
                    <span class="muted small"> pid {worker.pid}</span>
                  </td>
                  <td title={worker.startedAt}>{duration(now - Date.parse(worker.startedAt))}</td>
                  <td>
                    <div class="meter" title={`${worker.busy} of ${worker.concurrency}`}>
                      <span
                        style={{
                          width: `${(worker.busy / Math.max(1, worker.concurrency)) * 100}%`,
                        }}
                      />
                    </div>
                    <span class="small">
                      {worker.busy} / {worker.concurrency}
                    </span>
                  </td>
                  <td class="running-jobs">
                    {worker.running.length === 0 ? (
                      <span class="muted">idle</span>
                    ) : (
                      worker.running.slice(0, 8).map((run) => (
                        <a
                          href={jobPath(run.jobId)}
                          class="mono chip"
                          title={`since ${ago(run.since, now)}`}
                        >
                          {shortId(run.jobId)}
                        </a>
                      ))
                    )}
                    {worker.running.length > 8 && (
                      <span class="muted small"> +{worker.running.length - 8}</span>
                    )}
                  </td>
                  <td class="num">
                    {worker.finished.succeeded ?? 0} ok
                    {(worker.finished.failed ?? 0) > 0 && (
                      <span class="bad"> · {worker.finished.failed} failed</span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Panel>
    </main>
  );
}
