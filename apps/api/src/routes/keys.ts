// A project's API keys: its admin keys create, list and revoke them. A key is shown once, when it
// is made; only its hash is kept. Another project's keys answer 404. (A project's first key is
// made with the project: projects.ts.)
import { isUuid, SCOPES } from "@turtle/core";
import type { ApiKey } from "@turtle/db";
import { createApiKey } from "../api-keys.ts";
import { conflict, ErrorResponseSchema, notFound } from "../errors.ts";
import { authOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";

const errors = {
  400: ErrorResponseSchema,
  403: ErrorResponseSchema,
  404: ErrorResponseSchema,
  409: ErrorResponseSchema,
} as const;

const ScopesSchema = {
  type: "array",
  items: { type: "string", enum: SCOPES },
  minItems: 1,
  uniqueItems: true,
  description:
    "what the key may do: submit (submit and control jobs), read (read everything in the project), admin (servers, policies, keys, approvals, the audit log)",
} as const;

const KeySchema = {
  type: "object",
  required: ["id", "name", "prefix", "scopes", "createdAt", "lastUsedAt", "revokedAt"],
  properties: {
    id: { type: "string" },
    name: { type: "string" },
    prefix: { type: "string", description: "the key's first characters, to tell keys apart" },
    scopes: { type: "array", items: { type: "string" } },
    createdAt: { type: "string" },
    lastUsedAt: {
      type: ["string", "null"],
      description: "about when it was last used (written at most once a minute)",
    },
    revokedAt: { type: ["string", "null"] },
  },
} as const;

/** A key just made: the only time the key itself is shown. */
export const NewKeySchema = {
  ...KeySchema,
  required: [...KeySchema.required, "key"],
  properties: {
    ...KeySchema.properties,
    key: { type: "string", description: "the key: shown this once, only its hash is kept" },
  },
} as const;

export function keyView(row: ApiKey) {
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes,
    createdAt: row.createdAt.toISOString(),
    lastUsedAt: row.lastUsedAt?.toISOString() ?? null,
    revokedAt: row.revokedAt?.toISOString() ?? null,
  };
}

export default async function keyRoutes(app: TypedInstance) {
  app.get(
    "/keys",
    {
      config: { scope: "admin" },
      schema: {
        operationId: "listKeys",
        summary: "The project's API keys (never the keys themselves)",
        querystring: {
          type: "object",
          additionalProperties: false,
          properties: {
            revoked: { type: "boolean", description: "include revoked keys (default false)" },
          },
        },
        response: {
          200: {
            type: "object",
            required: ["keys"],
            properties: { keys: { type: "array", items: KeySchema } },
          },
          ...errors,
        },
      },
    },
    async (request) => {
      const rows = await app.db.apiKey.findMany({
        where: {
          projectId: authOf(request).projectId,
          ...(request.query.revoked === true ? {} : { revokedAt: null }),
        },
        orderBy: { createdAt: "asc" },
      });
      return { keys: rows.map(keyView) };
    },
  );

  app.post(
    "/keys",
    {
      config: { scope: "admin" },
      schema: {
        operationId: "createKey",
        summary: "Create an API key in the project (the key is shown once)",
        body: {
          type: "object",
          required: ["name", "scopes"],
          additionalProperties: false,
          properties: {
            name: { type: "string", minLength: 1, maxLength: 100 },
            scopes: ScopesSchema,
          },
        },
        response: { 201: NewKeySchema, ...errors },
      },
    },
    async (request, reply) => {
      const { name, scopes } = request.body;
      const { key, row } = await createApiKey(app.db, name, {
        projectId: authOf(request).projectId,
        scopes,
      });
      request.log.info({ keyId: row.id, scopes }, "API key created");
      return reply.code(201).send({ ...keyView(row), key });
    },
  );

  app.delete(
    "/keys/:id",
    {
      config: { scope: "admin" },
      schema: {
        operationId: "revokeKey",
        summary: "Revoke one of the project's API keys (within 10 s on every API instance)",
        params: { type: "object", required: ["id"], properties: { id: { type: "string" } } },
        response: { 200: KeySchema, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params;
      const { projectId } = authOf(request);
      const missing = notFound(`no API key ${JSON.stringify(id)} in this project`);
      if (!isUuid(id)) throw missing;
      const key = await app.db.apiKey.findFirst({ where: { id, projectId } });
      if (key === null) throw missing;
      if (key.revokedAt !== null) return keyView(key);
      if (key.scopes.includes("admin")) {
        const admins = await app.db.apiKey.count({
          where: { projectId, revokedAt: null, scopes: { has: "admin" } },
        });
        if (admins <= 1) {
          throw conflict(
            "last_admin_key",
            "this is the project's last admin key: create another admin key first (POST /v1/keys), or the project could never be managed again",
          );
        }
      }
      const revoked = await app.db.apiKey.update({
        where: { id },
        data: { revokedAt: new Date() },
      });
      app.forgetKeys((auth) => auth.keyId === id);
      request.log.info({ keyId: id }, "API key revoked");
      return keyView(revoked);
    },
  );
}
