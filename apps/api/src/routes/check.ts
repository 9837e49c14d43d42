// Type-checking a program against its servers' declarations without running it: an agent's LLM
// fixes its type errors in the same turn instead of finding them in a failed job.
import { DiagnosticSchema, ErrorResponseSchema } from "../errors.ts";
import { checkCode, describeTypeErrors, programProperties } from "../jobs/submit.ts";
import { projectOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";

export default async function checkRoutes(app: TypedInstance) {
  app.post(
    "/check",
    {
      // Nothing runs and nothing is stored: a key that may read may check.
      config: { scope: "read" },
      schema: {
        operationId: "checkProgram",
        summary: "Type-check a program against its servers' declarations (nothing runs)",
        body: {
          type: "object",
          required: ["code"],
          additionalProperties: false,
          properties: programProperties(app.config),
        },
        response: {
          200: {
            type: "object",
            required: ["ok", "diagnostics", "truncated"],
            properties: {
              ok: { type: "boolean", description: "true when the program has no type errors" },
              summary: { type: "string", description: "the first error in words, when any" },
              diagnostics: { type: "array", items: DiagnosticSchema },
              truncated: { type: "boolean", description: "true when more errors were left out" },
            },
          },
          400: ErrorResponseSchema,
          409: ErrorResponseSchema,
          502: ErrorResponseSchema,
        },
      },
    },
    async (request, reply) => {
      const { code } = request.body;
      checkCode(app, code);
      const projectId = projectOf(request);
      const names = await app.catalogs.names(projectId, request.body.servers, "body.servers");
      const hungUp = new AbortController();
      reply.raw.once("close", () => hungUp.abort());
      const checked = await app.catalogs.check(projectId, code, names, hungUp.signal);
      return {
        ...checked,
        ...(checked.ok
          ? {}
          : { summary: describeTypeErrors(checked.diagnostics, checked.truncated) }),
      };
    },
  );
}
