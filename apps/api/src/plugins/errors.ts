// The one place errors become responses. Expected failures keep their message (it says what to
// fix); anything else is a 500 whose text stays in the log, with the request id to find it.
import { CatalogError, ServerUnavailableError } from "@turtle/bindings";
import type { FastifyError, FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { ApiError } from "../errors.ts";

/** Fastify's own client errors, by code: what we call them and how to fix them. */
const FASTIFY_ERRORS: Record<string, { code: string; message?: (limit: number) => string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: {
    code: "invalid_json",
    message: () => "the body is not valid JSON: send a JSON object",
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    code: "invalid_json",
    message: () => "the body is empty but Content-Type is application/json: send a JSON object",
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    code: "unsupported_media_type",
    message: () => "unsupported Content-Type: send the body as application/json",
  },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    code: "payload_too_large",
    message: (limit) => `the body is over ${limit} bytes (MAX_BODY_BYTES): send a smaller one`,
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: { code: "invalid_request" },
  FST_ERR_VALIDATION: { code: "invalid_request" },
};

export default fp(
  async function errors(app: FastifyInstance, options: { bodyLimit: number }) {
    app.setErrorHandler(async (error: FastifyError | ApiError | Error, request, reply) => {
      if (error instanceof ApiError) {
        if (error.statusCode >= 500) request.log.warn({ code: error.code }, error.message);
        return reply
          .code(error.statusCode)
          .headers(error.headers)
          .send({ error: { code: error.code, message: error.message, ...error.details } });
      }
      if (error instanceof ServerUnavailableError) {
        // Our own message, written for users: which server, and why it cannot be reached.
        return reply.code(502).send({ error: { code: error.code, message: error.message } });
      }
      if (error instanceof CatalogError) {
        return reply.code(409).send({ error: { code: error.code, message: error.message } });
      }
      const status = (error as FastifyError).statusCode;
      if (status !== undefined && status >= 400 && status < 500) {
        const known = FASTIFY_ERRORS[(error as FastifyError).code];
        const message = known?.message?.(options.bodyLimit) ?? error.message;
        const code = known?.code ?? "invalid_request";
        return reply.code(status).send({ error: { code, message } });
      }
      request.log.error({ err: error }, "request failed");
      return reply.code(500).send({
        error: { code: "internal_error", message: `internal error (request ${request.id})` },
      });
    });

    app.setNotFoundHandler(async (request, reply) =>
      reply.code(404).send({
        error: { code: "not_found", message: `no route ${request.method} ${request.url}` },
      }),
    );
  },
  { name: "errors" },
);
