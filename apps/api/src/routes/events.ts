// A job's life as server-sent events, from any API instance: its state when the stream opens,
// then each status change, each step starting and ending, each line it logs — whichever worker,
// on whichever machine, runs it. The stream ends after the job does.
import { type JobActivity, readJobActivity } from "@turtle/core";
import type { FastifyInstance } from "fastify";
import { ErrorResponseSchema, notFound } from "../errors.ts";
import { isUuid } from "../jobs/lifecycle.ts";
import { jobView, TERMINAL_STATUSES } from "../jobs/views.ts";

/** A comment line this often keeps proxies from closing a quiet stream. */
const HEARTBEAT_MS = 15_000;

export default async function eventRoutes(app: FastifyInstance) {
  app.get<{ Params: { id: string } }>(
    "/jobs/:id/events",
    {
      schema: {
        summary: "Stream a job's events (server-sent events)",
        description:
          "Events: `job` (the job as GET /v1/jobs/:id shows it, first), `status` { status }, `step` { key, server, tool, status: running|succeeded|failed, attempt, startedAt, finishedAt?, error? }, `log` { level, message, at }, and `end` once the job has ended.",
        params: { type: "object", properties: { id: { type: "string" } } },
        response: {
          200: { type: "string", description: "text/event-stream" },
          404: ErrorResponseSchema,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const missing = () => notFound(`no job ${JSON.stringify(id)}`);
      if (!isUuid(id)) throw missing();

      // Subscribed before the job is read, so nothing falls between the read and the stream;
      // what arrives before the stream begins waits here, in order.
      const early: Array<{ status: string } | JobActivity> = [];
      let write: ((event: string, data: unknown) => void) | undefined;
      /** True once the state, the backlog and what arrived meanwhile are sent. */
      let streaming = false;
      /** The run being streamed, and the last of its activity sent (`seq`). */
      let run: number | undefined;
      let sentSeq = 0;
      const send = (entry: { status: string } | JobActivity) => {
        if (write === undefined || !streaming) {
          early.push(entry);
          return;
        }
        if (!("seq" in entry)) {
          write("status", entry);
          return;
        }
        // The backlog and the live channel overlap: each item once, in order, of this run only.
        if (entry.run !== run || entry.seq <= sentSeq) return;
        sentSeq = entry.seq;
        const { type, run: _run, seq: _seq, ...data } = entry;
        write(type, data);
      };
      let ended = false;
      const stopStatus = app.jobEvents.listen(id, (event) => {
        send({ status: event.status });
        if (TERMINAL_STATUSES.has(event.status)) end();
      });
      // The status listener may end the stream while this subscription is still being made.
      let stopActivity: (() => void) | undefined;
      const stopWatching = await app.jobEvents.watch(id, (activity: JobActivity[]) => {
        for (const item of activity) send(item);
      });
      if (ended) stopWatching();
      else stopActivity = stopWatching;
      let heartbeat: NodeJS.Timeout | undefined;
      const onClosing = () => end();
      /** Stops listening (once), then ends the response once it has begun. */
      function end(): void {
        if (!ended) {
          ended = true;
          stopStatus();
          stopActivity?.();
          clearInterval(heartbeat);
          app.closing.removeEventListener("abort", onClosing);
        }
        if (write !== undefined && streaming && !reply.raw.writableEnded) {
          write("end", {});
          reply.raw.end();
        }
        // (A client that hung up gets nothing more: `write` checks the socket.)
      }

      const job = await app.db.job.findUnique({ where: { id } });
      if (job === null) {
        end();
        throw missing();
      }
      reply.hijack();
      reply.raw.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      const open = () => !reply.raw.writableEnded && !reply.raw.destroyed;
      write = (event, data) => {
        if (open()) reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      reply.raw.once("close", () => end());
      app.closing.addEventListener("abort", onClosing, { once: true });
      heartbeat = setInterval(() => open() && reply.raw.write(": keep-alive\n\n"), HEARTBEAT_MS);
      heartbeat.unref();

      write("job", jobView(job));
      if (TERMINAL_STATUSES.has(job.status) || app.closing.aborted) {
        streaming = true;
        return end();
      }
      // What the run did before this stream began (steps, lines), then what arrived meanwhile.
      run = job.run;
      const backlog = await readJobActivity(app.redis, app.config.TURTLE_QUEUE, id, job.run).catch(
        () => [],
      );
      streaming = true;
      for (const item of backlog) send(item);
      for (const entry of early.splice(0)) send(entry);
      // The job ended, or the client left, while the backlog was read.
      if (ended) end();
    },
  );
}
