// Jobs as server-sent events, from any API instance. A job's life: its state when the stream
// opens, then each status change, each step starting and ending, each line it logs — whichever
// worker, on whichever machine, runs it; the stream ends after the job does. And every job's
// status changes, for live lists.
import { isAfter, isUuid, type JobActivity, readJobActivity } from "@turtle/core";
import { ErrorResponseSchema, notFound } from "../errors.ts";
import { jobView, TERMINAL_STATUSES } from "../jobs/views.ts";
import { projectOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";

/** How often a quiet stream gets a comment line, and the job's status is checked. */
const HEARTBEAT_MS = 15_000;

/**
 * Bytes a stream may have waiting for a client that reads slower than events come. Past them the
 * stream closes without `end`, and the client connects again (EventSource does so by itself):
 * with Last-Event-ID, a job's stream goes on where it stopped.
 */
const MAX_UNREAD_BYTES = 4 * 1024 * 1024;

const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  connection: "keep-alive",
  "x-accel-buffering": "no",
};

export default async function eventRoutes(app: TypedInstance) {
  app.get(
    "/events",
    {
      schema: {
        operationId: "streamProjectEvents",
        summary: "Stream the status changes of every job of the project (server-sent events)",
        description:
          "One `job` event { id, status } each time any of the project's jobs is queued, starts, ends or is cancelled, from any worker. Meant for live lists: read the jobs again on an event. The stream never ends by itself.",
        response: { 200: { type: "string", description: "text/event-stream" } },
      },
    },
    async (request, reply) => {
      const projectId = projectOf(request);
      reply.hijack();
      reply.raw.writeHead(200, SSE_HEADERS);
      reply.raw.write(": streaming job status events\n\n");
      const stopListening = app.jobEvents.listenAll((event) => {
        if (event.projectId !== projectId) return;
        if (reply.raw.writableEnded || reply.raw.destroyed) return;
        const data = JSON.stringify({ id: event.jobId, status: event.status });
        reply.raw.write(`event: job\ndata: ${data}\n\n`);
        if (reply.raw.writableLength > MAX_UNREAD_BYTES) stop();
      });
      const heartbeat = setInterval(() => reply.raw.write(": keep-alive\n\n"), HEARTBEAT_MS);
      heartbeat.unref();
      const stop = () => {
        stopListening();
        clearInterval(heartbeat);
        app.closing.removeEventListener("abort", stop);
        if (!reply.raw.writableEnded) reply.raw.end();
      };
      reply.raw.once("close", stop);
      app.closing.addEventListener("abort", stop, { once: true });
      if (app.closing.aborted) stop();
    },
  );

  app.get(
    "/jobs/:id/events",
    {
      schema: {
        operationId: "streamJobEvents",
        summary: "Stream a job's events (server-sent events)",
        description:
          "Events: `job` (the job as GET /v1/jobs/:id shows it, first), `status` { status }, `step` { key, server, tool, status: running|succeeded|failed, attempt, startedAt, finishedAt?, durationMs?, error? }, `log` { level, message, at }, `replayed` { count } (steps of this run replayed from checkpoints so far, as the run goes), and `end` once the job has ended. A stream that closes without `end` (the API restarting) should be opened again with the Last-Event-ID header: steps and lines already sent are not sent again.",
        params: { type: "object", required: ["id"], properties: { id: { type: "string" } } },
        response: {
          200: { type: "string", description: "text/event-stream" },
          404: ErrorResponseSchema,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const projectId = projectOf(request);
      const missing = () => notFound(`no job ${JSON.stringify(id)}`);
      if (!isUuid(id)) throw missing();

      // Subscribed before the job is read, so nothing falls between the read and the stream;
      // what arrives before the stream begins waits here, in order.
      const early: Array<{ status: string } | JobActivity> = [];
      let write: ((event: string, data: unknown, eventId?: string) => void) | undefined;
      /** True once the state, the backlog and what arrived meanwhile are sent. */
      let streaming = false;
      /** The run being streamed, and the last of its activity sent. */
      let run: number | undefined;
      let last = { delivery: -1, seq: 0 };
      let ended = false;
      let stopActivity: (() => void) | undefined;
      let heartbeat: NodeJS.Timeout | undefined;
      const socket = () => !reply.raw.writableEnded && !reply.raw.destroyed;

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
        if (entry.run !== run || !isAfter(entry, last)) return;
        last = { delivery: entry.delivery, seq: entry.seq };
        const { type, run: _run, delivery: _delivery, seq: _seq, ...data } = entry;
        write(type, data, `${entry.run}.${entry.delivery}.${entry.seq}`);
      };

      /**
       * Stops listening (once). With `finished` (the job ended), the stream then says `end` and
       * closes; otherwise (the client left, the API is closing) it just closes, and a client
       * knows to connect again.
       */
      function stop(finished: boolean): void {
        if (!ended) {
          ended = true;
          stopStatus();
          stopActivity?.();
          clearInterval(heartbeat);
          app.closing.removeEventListener("abort", onClosing);
          reply.raw.off("close", onHangUp);
        }
        if (write === undefined || !streaming || !socket()) return;
        if (finished) write("end", {});
        reply.raw.end();
      }
      const onClosing = () => stop(false);
      const onHangUp = () => stop(false);
      // The response (not the request, whose "close" only means its body was read) closes when
      // the client goes away.
      reply.raw.once("close", onHangUp);
      app.closing.addEventListener("abort", onClosing, { once: true });

      const stopStatus = app.jobEvents.listen(id, (event) => {
        send({ status: event.status });
        if (TERMINAL_STATUSES.has(event.status)) stop(true);
      });
      let job: Awaited<ReturnType<typeof app.db.job.findFirst>>;
      try {
        const stopWatching = await app.jobEvents.watch(id, (activity: JobActivity[]) => {
          for (const item of activity) send(item);
        });
        if (ended) stopWatching();
        else stopActivity = stopWatching;
        job = await app.db.job.findFirst({ where: { id, projectId } });
      } catch (error) {
        stop(false);
        throw error;
      }
      if (job === null) {
        stop(false);
        throw missing();
      }
      reply.hijack();
      if (ended && !TERMINAL_STATUSES.has(job.status)) {
        // The client left, or the API is closing, before the stream began.
        reply.raw.end();
        return;
      }
      reply.raw.writeHead(200, SSE_HEADERS);
      write = (event, data, eventId) => {
        if (!socket()) return;
        const idLine = eventId === undefined ? "" : `id: ${eventId}\n`;
        reply.raw.write(`${idLine}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
        if (reply.raw.writableLength > MAX_UNREAD_BYTES) stop(false);
      };
      write("job", jobView(job));
      if (TERMINAL_STATUSES.has(job.status)) {
        streaming = true;
        return stop(true);
      }
      // What the run did before this stream began (steps, lines), then what arrived meanwhile —
      // after the Last-Event-ID of a client reconnecting to the same run.
      run = job.run;
      const resumeFrom = /^(\d+)\.(\d+)\.(\d+)$/.exec(
        String(request.headers["last-event-id"] ?? ""),
      );
      if (resumeFrom !== null && Number(resumeFrom[1]) === run) {
        last = { delivery: Number(resumeFrom[2]), seq: Number(resumeFrom[3]) };
      }
      const backlog = await readJobActivity(app.redis, app.config.TURTLE_QUEUE, id, job.run).catch(
        () => [],
      );
      streaming = true;
      for (const item of backlog) send(item);
      for (const entry of early.splice(0)) send(entry);
      if (ended) {
        // The job ended, or the client left, while the backlog was read.
        const finished = TERMINAL_STATUSES.has(
          (await app.db.job.findUnique({ where: { id }, select: { status: true } }))?.status ??
            "failed",
        );
        return stop(finished);
      }
      // A comment line keeps proxies from closing a quiet stream; each beat also reads the job,
      // so a stream whose end event was lost (Redis reconnecting) still ends.
      heartbeat = setInterval(async () => {
        if (!socket()) return stop(false);
        reply.raw.write(": keep-alive\n\n");
        const now = await app.db.job
          .findUnique({ where: { id }, select: { status: true } })
          .catch(() => null);
        if (now !== null && TERMINAL_STATUSES.has(now.status) && !ended) {
          write?.("status", { status: now.status });
          stop(true);
        }
      }, HEARTBEAT_MS);
      heartbeat.unref();
    },
  );
}
