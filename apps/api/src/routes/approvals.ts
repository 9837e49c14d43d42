// Tool calls that wait for a person, and the decisions: a job whose program called a tool whose
// policy is `approve` is `waiting` — no worker holds it — until each of its requests is approved
// or rejected; then it runs again, replaying what it had done, and the call runs (approved) or
// throws a ToolError with code `rejected` that the program can catch.
import type { FastifyInstance } from "fastify";
import { conflict, ErrorResponseSchema, notFound } from "../errors.ts";
import { findJob } from "../jobs/find.ts";
import { jobStates, transition } from "../jobs/states.ts";
import { projectOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";

const ApprovalSchema = {
  type: "object",
  required: ["stepKey", "server", "tool", "args", "status", "reason", "requestedAt", "decidedAt"],
  properties: {
    stepKey: { type: "string", description: "the call's step key (URL-encode it in paths)" },
    server: { type: "string" },
    tool: { type: "string" },
    args: { description: "the call's arguments" },
    status: { type: "string", enum: ["pending", "approved", "rejected"] },
    reason: { type: ["string", "null"] },
    requestedAt: { type: "string" },
    decidedAt: { type: ["string", "null"] },
  },
} as const;

const idParams = {
  type: "object",
  required: ["id"],
  properties: { id: { type: "string" } },
} as const;

type ApprovalRow = Awaited<ReturnType<FastifyInstance["db"]["approval"]["findFirstOrThrow"]>>;

function approvalView(row: ApprovalRow) {
  return {
    stepKey: row.stepKey,
    server: row.server,
    tool: row.tool,
    args: row.args,
    status: row.status,
    reason: row.reason,
    requestedAt: row.requestedAt.toISOString(),
    decidedAt: row.decidedAt?.toISOString() ?? null,
  };
}

export default async function approvalRoutes(app: TypedInstance) {
  app.get(
    "/jobs/:id/approvals",
    {
      schema: {
        operationId: "listApprovals",
        summary: "A job's tool calls that asked for a person's approval, and the decisions",
        params: idParams,
        response: {
          200: {
            type: "object",
            required: ["approvals"],
            properties: { approvals: { type: "array", items: ApprovalSchema } },
          },
          404: ErrorResponseSchema,
        },
      },
    },
    async (request) => {
      const job = await findJob(app, projectOf(request), request.params.id);
      const rows = await app.db.approval.findMany({
        where: { jobId: job.id },
        orderBy: { requestedAt: "asc" },
      });
      return { approvals: rows.map(approvalView) };
    },
  );

  app.post(
    "/jobs/:id/approvals/:stepKey",
    {
      // A key that may only submit must not approve its own job's dangerous calls.
      config: { scope: "admin" },
      schema: {
        operationId: "decideApproval",
        summary: "Approve or reject a tool call a job waits on; the job goes on once none waits",
        params: {
          type: "object",
          required: ["id", "stepKey"],
          properties: { id: { type: "string" }, stepKey: { type: "string" } },
        },
        body: {
          type: "object",
          required: ["decision"],
          additionalProperties: false,
          properties: {
            decision: {
              type: "string",
              enum: ["approve", "reject"],
              description:
                "approve: the call runs; reject: the program gets a ToolError (code rejected)",
            },
            reason: {
              type: "string",
              maxLength: 500,
              description: "why, at most 500 characters; a rejection's ToolError carries it",
            },
          },
        },
        response: {
          200: ApprovalSchema,
          400: ErrorResponseSchema,
          403: ErrorResponseSchema,
          404: ErrorResponseSchema,
          409: ErrorResponseSchema,
          429: ErrorResponseSchema,
        },
      },
    },
    async (request) => {
      const job = await findJob(app, projectOf(request), request.params.id);
      const { stepKey } = request.params;
      const { decision, reason } = request.body;
      const where = { jobId_stepKey: { jobId: job.id, stepKey } };
      const decided = await app.db.approval.updateMany({
        where: { jobId: job.id, stepKey, status: "pending" },
        data: {
          status: decision === "approve" ? "approved" : "rejected",
          reason: reason ?? null,
          decidedAt: new Date(),
        },
      });
      if (decided.count === 0) {
        const existing = await app.db.approval.findUnique({ where });
        if (existing === null) {
          throw notFound(
            `job ${job.id} has no approval request for step ${JSON.stringify(stepKey)}`,
          );
        }
        throw conflict("already_decided", `step ${stepKey} was ${existing.status} already`);
      }
      const row = await app.db.approval.findUniqueOrThrow({ where });
      const pending = await app.db.approval.count({ where: { jobId: job.id, status: "pending" } });
      // The last decision: the job runs again (unless a cancel or another decision won).
      if (pending === 0) await transition(app, null, () => jobStates(app).wake(job), job.id);
      request.log.info({ jobId: job.id, stepKey, decision }, "approval decided");
      return approvalView(row);
    },
  );
}
