// What the MCP façade says about a job, within a size budget: an agent's context is the scarce
// resource, so a long result or log is cut with a marker that says how much was left out and how
// to page through the rest (the REST API always has the whole stored value).
import type { Job } from "@turtle/db";
import { jobErrorView } from "../jobs/views.ts";

export type JobPart = "result" | "logs";

export interface ShapeLimits {
  resultChars: number;
  logsChars: number;
}

const count = (n: number) => n.toLocaleString("en-US");

/** The result as an agent reads it: compact JSON (undefined when there is none). */
export function resultText(job: Job): string | undefined {
  if (job.status !== "succeeded") return undefined;
  return JSON.stringify(job.result ?? null);
}

export function logsText(job: Job): string {
  const entries = Array.isArray(job.logs)
    ? (job.logs as Array<{ level?: unknown; message?: unknown }>)
    : [];
  return entries
    .map((entry) => {
      const message = String(entry.message ?? "");
      return entry.level === "log" || entry.level === "info"
        ? message
        : `${String(entry.level)}: ${message}`;
    })
    .join("\n");
}

/**
 * `text` from `offset`, at most `max` characters, and a marker when any of it is left out. A cut
 * never splits a surrogate pair.
 */
export function page(
  text: string,
  offset: number,
  max: number,
  next: { jobId: string; part: JobPart },
): string {
  const start = Math.min(Math.max(0, offset), text.length);
  let end = Math.min(text.length, start + max);
  if (end < text.length && /[\ud800-\udbff]/.test(text[end - 1] ?? "")) end--;
  const shown = text.slice(start, end);
  if (start === 0 && end === text.length) return shown;
  const call = JSON.stringify({ id: next.jobId, part: next.part, offset: end });
  const rest =
    end < text.length
      ? ` The next part: get_job ${call}; all of it: GET /v1/jobs/${next.jobId} (field ${next.part}).`
      : "";
  return `${shown}\n[cut: characters ${count(start)}–${count(end)} of ${count(text.length)} shown.${rest}]`;
}

/** The whole answer about a job: its status line, then its result or error, then its logs. */
export function describeJob(job: Job, limits: ShapeLimits): { text: string; isError: boolean } {
  const lines = [statusLine(job)];
  const result = resultText(job);
  if (result !== undefined) {
    lines.push("result:", page(result, 0, limits.resultChars, { jobId: job.id, part: "result" }));
    if (job.resultTruncated) {
      lines.push("[the stored result itself was cut at its size limit when the job ended]");
    }
  }
  const error = jobErrorView(job.error);
  if (error !== null && (job.status === "failed" || job.status === "cancelled")) {
    const where = error.line === null ? "" : ` (line ${error.line}, column ${error.column ?? 1})`;
    const tool = error.server === undefined ? "" : ` [tool ${error.server}.${error.tool}]`;
    lines.push(`error: ${error.name}: ${error.message}${where}${tool}`);
  }
  const logs = logsText(job);
  if (logs !== "") {
    lines.push("logs:", page(logs, 0, limits.logsChars, { jobId: job.id, part: "logs" }));
  }
  return { text: lines.join("\n"), isError: job.status === "failed" || job.status === "cancelled" };
}

function statusLine(job: Job): string {
  const steps = `${job.executedSteps} steps executed, ${job.replayedSteps} replayed`;
  switch (job.status) {
    case "queued":
    case "running":
      return `job ${job.id} is ${job.status} (${steps} so far)`;
    default: {
      const took = job.wallMs === null ? "" : `, ${count(job.wallMs)} ms`;
      return `job ${job.id} ${job.status} (${steps}${took})`;
    }
  }
}
