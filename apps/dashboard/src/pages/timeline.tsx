import { useState } from "preact/hooks";
import type { Job, Step } from "../api.ts";
import { duration } from "../format.ts";

const FIRST_ROWS = 300;

/**
 * The job on one time axis, from its creation to its end (or now): the wait in the queue, then
 * each step from its start to its end, with its attempt and whether later runs replayed it.
 */
export function Timeline({ job, steps, now }: { job: Job; steps: Step[]; now: number }) {
  const [all, setAll] = useState(false);
  const from = Date.parse(job.createdAt);
  const starts = steps.map((step) => Date.parse(step.startedAt));
  // A resumed job's first steps may predate its latest start, never its creation.
  const until = Math.max(
    job.finishedAt === null ? now : Date.parse(job.finishedAt),
    ...steps.map((step) => (step.finishedAt ? Date.parse(step.finishedAt) : now)),
    from + 1,
  );
  const span = until - from;
  const at = (time: number) => `${(((time - from) / span) * 100).toFixed(3)}%`;
  const width = (start: number, end: number) =>
    `max(2px, ${(((end - start) / span) * 100).toFixed(3)}%)`;
  const queuedUntil =
    job.startedAt === null
      ? job.finishedAt === null
        ? now
        : Date.parse(job.finishedAt)
      : Date.parse(job.startedAt);
  const runUntil = job.finishedAt === null ? now : Date.parse(job.finishedAt);
  const shown = all ? steps : steps.slice(0, FIRST_ROWS);

  return (
    <div class="timeline" data-testid="timeline">
      <div class="tl-axis">
        {[0, 0.25, 0.5, 0.75, 1].map((f) => (
          <span style={{ left: `${f * 100}%` }}>{duration(span * f)}</span>
        ))}
      </div>
      <div class="tl-row tl-queue">
        <span class="tl-label">
          {job.stats.attempts > 1
            ? `before run ${job.stats.attempts} started`
            : "waiting in the queue"}
        </span>
        <span class="tl-track">
          <span
            class="tl-bar bar-queued"
            style={{ left: at(from), width: width(from, queuedUntil) }}
          />
        </span>
        <span class="tl-meta">{duration(queuedUntil - from)}</span>
      </div>
      {job.startedAt !== null && (
        <div class="tl-row tl-queue">
          <span class="tl-label">
            running{job.stats.attempts > 1 ? ` (run ${job.stats.attempts})` : ""}
          </span>
          <span class="tl-track">
            <span
              class="tl-bar bar-run"
              style={{ left: at(queuedUntil), width: width(queuedUntil, runUntil) }}
            />
          </span>
          <span class="tl-meta">
            {job.finishedAt !== null
              ? duration(runUntil - queuedUntil)
              : job.status === "waiting"
                ? "waiting for approval…"
                : "running…"}
          </span>
        </div>
      )}
      {shown.map((step, i) => {
        const start = starts[i] ?? from;
        const end = step.finishedAt ? Date.parse(step.finishedAt) : now;
        const replays = step.replays ?? 0;
        return (
          <div
            class={`tl-row${replays > 0 ? " replayed" : ""}`}
            data-step={step.key}
            data-status={step.status}
            title={`${step.key}\n${step.status}, attempt ${step.attempt}${replays > 0 ? `, replayed ${replays}×` : ""}${step.error ? `\n${JSON.stringify(step.error)}` : ""}`}
          >
            <span class="tl-label">
              <span class="mono">
                {step.server}.{step.tool}
              </span>
            </span>
            <span class="tl-track">
              <span
                class={`tl-bar bar-${step.status}`}
                style={{ left: at(start), width: width(start, end) }}
              />
            </span>
            <span class="tl-meta">
              {step.status === "running" ? "running…" : duration(end - start)}
              {step.attempt > 1 && <span class="chip">attempt {step.attempt}</span>}
              {replays > 0 && (
                <span class="chip chip-replayed">replayed{replays > 1 ? ` ×${replays}` : ""}</span>
              )}
              {step.status === "failed" && <span class="chip chip-failed">failed</span>}
            </span>
          </div>
        );
      })}
      {steps.length === 0 && (
        <p class="empty">{job.status === "running" ? "No tool calls yet." : "No tool calls."}</p>
      )}
      {!all && steps.length > FIRST_ROWS && (
        <button type="button" class="ghost more" onClick={() => setAll(true)}>
          Show all {steps.length} steps
        </button>
      )}
    </div>
  );
}
