// Logging a browser in to the dashboards: the API key is sent once and traded for a session
// cookie (HttpOnly, SameSite=Strict), so the key itself is never kept by the page.
import type { FastifyRequest } from "fastify";
import { hashApiKey } from "../api-keys.ts";
import { ApiError, ErrorResponseSchema } from "../errors.ts";
import { type Auth, authOf } from "../plugins/auth.ts";
import { createSession, deleteSession, SESSION_COOKIE, SESSION_TTL_S } from "../sessions.ts";
import type { TypedInstance } from "../typed-instance.ts";

const SessionSchema = {
  type: "object",
  required: ["key", "project", "authenticatedBy"],
  properties: {
    key: {
      type: "object",
      required: ["id", "name", "prefix", "scopes"],
      properties: {
        id: { type: "string" },
        name: { type: "string" },
        prefix: { type: "string", description: "the key's first characters" },
        scopes: { type: "array", items: { type: "string", enum: ["submit", "read", "admin"] } },
      },
    },
    project: {
      type: "object",
      required: ["id", "name", "operator"],
      properties: {
        id: { type: "string" },
        name: { type: "string" },
        operator: {
          type: "boolean",
          description: "the key is an admin key of the operator's project (it manages projects)",
        },
      },
    },
    authenticatedBy: { type: "string", enum: ["bearer", "session"] },
    expiresAt: { type: ["string", "null"], description: "when a session ends (null for a key)" },
  },
} as const;

export default async function sessionRoutes(app: TypedInstance) {
  const queue = app.config.TURTLE_QUEUE;

  async function describe(auth: Auth) {
    const key = await app.db.apiKey.findUnique({
      where: { id: auth.keyId },
      select: { id: true, name: true, prefix: true, scopes: true },
    });
    if (key === null) throw new ApiError(401, "unauthorized", "the API key was removed");
    return {
      key,
      project: { id: auth.projectId, name: auth.projectName, operator: auth.operator },
    };
  }

  const cookieOptions = (request: FastifyRequest) => ({
    path: "/",
    httpOnly: true,
    sameSite: "strict" as const,
    secure: request.protocol === "https",
  });

  app.post(
    "/session",
    {
      config: { public: true },
      schema: {
        operationId: "logIn",
        summary: "Log a browser in with an API key (sets the session cookie)",
        body: {
          type: "object",
          required: ["key"],
          additionalProperties: false,
          properties: { key: { type: "string", minLength: 1, maxLength: 500 } },
        },
        response: { 200: SessionSchema, 400: ErrorResponseSchema, 401: ErrorResponseSchema },
      },
    },
    async (request, reply) => {
      const auth = await app.authOf(hashApiKey(request.body.key.trim()), request);
      if (auth === null) {
        throw new ApiError(
          401,
          "unauthorized",
          "that API key is not valid (or was revoked): use the key `npm run setup` wrote to .env, or make one with `npm run setup -- --new-key`",
        );
      }
      const token = await createSession(app.redis, queue, auth.keyId);
      reply.setCookie(SESSION_COOKIE, token, { ...cookieOptions(request), maxAge: SESSION_TTL_S });
      return {
        ...(await describe(auth)),
        authenticatedBy: "session" as const,
        expiresAt: new Date(Date.now() + SESSION_TTL_S * 1000).toISOString(),
      };
    },
  );

  app.get(
    "/session",
    {
      config: { scope: "any" },
      schema: {
        operationId: "getSession",
        summary: "Who is calling: the API key behind this request, its scopes and its project",
        response: { 200: SessionSchema, 401: ErrorResponseSchema },
      },
    },
    async (request) => ({
      ...(await describe(authOf(request))),
      authenticatedBy: request.authenticatedBy ?? "bearer",
      expiresAt: null,
    }),
  );

  app.delete(
    "/session",
    {
      config: { public: true },
      schema: {
        operationId: "logOut",
        summary: "Log a browser out (ends its session)",
        response: { 204: { type: "null" } },
      },
    },
    async (request, reply) => {
      const token = request.cookies[SESSION_COOKIE];
      if (token !== undefined) {
        await deleteSession(app.redis, queue, token);
        app.forgetSession(token);
      }
      reply.clearCookie(SESSION_COOKIE, cookieOptions(request));
      return reply.code(204).send(null);
    },
  );
}
