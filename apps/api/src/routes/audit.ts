// The audit log: every tool call a project's jobs made, or that a policy or a person refused —
// which job and step, which server and tool, a hash of the arguments, the outcome and its timing.
// Workers write each entry in the same transaction as the call's checkpoint; nothing edits them.
import { isUuid } from "@turtle/core";
import type { Prisma } from "@turtle/db";
import { badRequest, ErrorResponseSchema } from "../errors.ts";
import { pageQueryProperties } from "../jobs/cursors.ts";
import { projectOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";
import { parseTime } from "../validation.ts";

const OUTCOMES = ["succeeded", "failed", "denied", "rejected"] as const;

const EntrySchema = {
  type: "object",
  required: [
    "id",
    "jobId",
    "stepKey",
    "server",
    "tool",
    "argsHash",
    "outcome",
    "errorCode",
    "attempt",
    "startedAt",
    "finishedAt",
    "durationMs",
  ],
  properties: {
    id: { type: "string", description: "increases with each entry written" },
    jobId: { type: "string" },
    stepKey: { type: "string" },
    server: { type: "string" },
    tool: { type: "string" },
    argsHash: {
      type: "string",
      description: "SHA-256 (hex) of the arguments as canonical JSON, keys sorted",
    },
    outcome: { type: "string", enum: OUTCOMES },
    errorCode: { type: ["string", "null"] },
    attempt: { type: "integer", description: "the job's run attempt that made the call" },
    startedAt: { type: "string" },
    finishedAt: { type: "string" },
    durationMs: { type: "integer" },
  },
} as const;

export default async function auditRoutes(app: TypedInstance) {
  app.get(
    "/audit",
    {
      config: { scope: "admin" },
      schema: {
        operationId: "listAuditEntries",
        summary: "The project's audit log of tool calls, newest first",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            jobId: { type: "string", maxLength: 100, description: "only this job's calls" },
            server: { type: "string", minLength: 1, maxLength: 200 },
            tool: { type: "string", minLength: 1, maxLength: 200 },
            outcome: { type: "string", enum: OUTCOMES },
            since: {
              type: "string",
              maxLength: 40,
              description: "only calls started at or after this time (ISO 8601)",
            },
            until: {
              type: "string",
              maxLength: 40,
              description: "only calls started before this time (ISO 8601)",
            },
            ...pageQueryProperties("entries", 1000, 100),
          },
        },
        response: {
          200: {
            type: "object",
            required: ["entries", "nextCursor"],
            properties: {
              entries: { type: "array", items: EntrySchema },
              nextCursor: { type: ["string", "null"] },
            },
          },
          400: ErrorResponseSchema,
          403: ErrorResponseSchema,
        },
      },
    },
    async (request) => {
      const { jobId, server, tool, outcome, since, until, limit, cursor } = request.query;
      const where: Prisma.AuditEntryWhereInput = { projectId: projectOf(request) };
      if (jobId !== undefined) {
        // Another project's job, or no job: simply no entries.
        if (!isUuid(jobId)) return { entries: [], nextCursor: null };
        where.jobId = jobId;
      }
      if (server !== undefined) where.server = server;
      if (tool !== undefined) where.tool = tool;
      if (outcome !== undefined) where.outcome = outcome;
      if (since !== undefined || until !== undefined) {
        where.startedAt = {
          ...(since === undefined ? {} : { gte: parseTime(since, "since") }),
          ...(until === undefined ? {} : { lt: parseTime(until, "until") }),
        };
      }
      if (cursor !== undefined) {
        if (!/^\d{1,19}$/.test(cursor)) {
          throw badRequest(
            "invalid_cursor",
            "query.cursor is not a cursor this API returned: pass nextCursor from the previous page",
          );
        }
        where.id = { lt: BigInt(cursor) };
      }
      const rows = await app.db.auditEntry.findMany({
        where,
        orderBy: { id: "desc" },
        take: limit + 1,
      });
      const page = rows.slice(0, limit);
      const last = page.at(-1);
      return {
        entries: page.map((row) => ({
          ...row,
          id: row.id.toString(),
          startedAt: row.startedAt.toISOString(),
          finishedAt: row.finishedAt.toISOString(),
        })),
        nextCursor: rows.length > limit && last !== undefined ? last.id.toString() : null,
      };
    },
  );
}
