// A job's life as server-sent events, from any API instance: its state when the stream opens,
// then each status change, each step starting and ending, each line it logs — whichever worker,
// on whichever machine, runs it. The stream ends after the job does.
import type { JobActivity } from "@turtle/core";
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

      // Subscribed before the job is read, so nothing falls between the read and the stream.
      const early: Array<[string, unknown]> = [];
      let write: ((event: string, data: unknown) => void) | undefined;
      const emit = (event: string, data: unknown) => {
        if (write === undefined) early.push([event, data]);
        else write(event, data);
      };
      let ended = false;
      const stopStatus = app.jobEvents.listen(id, (event) => {
        emit("status", { status: event.status });
        if (TERMINAL_STATUSES.has(event.status)) end();
      });
      const stopActivity = await app.jobEvents.watch(id, (activity: JobActivity[]) => {
        for (const { type, ...item } of activity) emit(type, item);
      });
      let heartbeat: NodeJS.Timeout | undefined;
      const onClosing = () => end();
      /** Stops listening (once), then ends the response once it has begun. */
      function end(): void {
        if (!ended) {
          ended = true;
          stopStatus();
          stopActivity();
          clearInterval(heartbeat);
          app.closing.removeEventListener("abort", onClosing);
        }
        if (write !== undefined && !reply.raw.writableEnded) {
          write("end", {});
          reply.raw.end();
        }
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
      write = (event, data) => {
        if (!reply.raw.writableEnded)
          reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      reply.raw.once("close", () => end());
      app.closing.addEventListener("abort", onClosing, { once: true });
      heartbeat = setInterval(() => reply.raw.write(": keep-alive\n\n"), HEARTBEAT_MS);
      heartbeat.unref();

      write("job", jobView(job));
      if (TERMINAL_STATUSES.has(job.status) || app.closing.aborted) return end();
      for (const [event, data] of early.splice(0)) write(event, data);
      // The job ended before the head was written.
      if (ended) end();
    },
  );
}
