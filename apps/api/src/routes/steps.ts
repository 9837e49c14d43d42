// A job's checkpointed tool calls, in the order they first ran.
import { ErrorResponseSchema } from "../errors.ts";
import { pageQueryProperties, parseStepCursor, stepCursor } from "../jobs/cursors.ts";
import { findJob } from "../jobs/find.ts";
import { StepSchema, stepView } from "../jobs/views.ts";
import { projectOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";

export default async function stepRoutes(app: TypedInstance) {
  app.get(
    "/jobs/:id/steps",
    {
      schema: {
        operationId: "listJobSteps",
        summary: "List a job's steps (tool calls) in execution order",
        params: { type: "object", required: ["id"], properties: { id: { type: "string" } } },
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: pageQueryProperties("steps", 1000, 100),
        },
        response: {
          200: {
            type: "object",
            required: ["steps", "nextCursor"],
            properties: {
              steps: { type: "array", items: StepSchema },
              nextCursor: { type: ["string", "null"] },
            },
          },
          400: ErrorResponseSchema,
          404: ErrorResponseSchema,
        },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query;
      const after = cursor === undefined ? undefined : parseStepCursor(cursor);
      const job = await findJob(app, projectOf(request), request.params.id);
      const rows = await app.db.step.findMany({
        where: {
          jobId: job.id,
          // (seq, key): seq alone would do if the worker never repeats one; this never depends on it.
          ...(after === undefined
            ? {}
            : { OR: [{ seq: { gt: after.seq } }, { seq: after.seq, key: { gt: after.key } }] }),
        },
        orderBy: [{ seq: "asc" }, { key: "asc" }],
        take: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        steps: page.map(stepView),
        nextCursor: rows.length > limit && last !== undefined ? stepCursor(last) : null,
      };
    },
  );
}
