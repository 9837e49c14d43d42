// `Authorization: Bearer <key>` on every route that is not marked `config: { public: true }`.
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { hashApiKey } from "../api-keys.ts";
import { ApiError } from "../errors.ts";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Served without an API key. */
    public?: boolean;
  }
  interface FastifyRequest {
    /** The id of the ApiKey row that authenticated the request. */
    apiKeyId: string | null;
  }
}

/** A valid key is trusted this long before it is looked up again (so revoking takes this long). */
const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;
/** `lastUsedAt` is a hint, not an audit log: written at most this often per key. */
const LAST_USED_EVERY_MS = 60_000;

const unauthorized = (message: string) => new ApiError(401, "unauthorized", message);

export default fp(
  async function auth(app: FastifyInstance) {
    const valid = new Map<string, { id: string; until: number }>();
    const lastUsedWrites = new Map<string, number>();

    async function keyId(hash: string): Promise<string | null> {
      const now = Date.now();
      const cached = valid.get(hash);
      if (cached !== undefined && cached.until > now) return cached.id;
      const row = await app.db.apiKey.findFirst({
        where: { hash, revokedAt: null },
        select: { id: true },
      });
      if (row === null) {
        valid.delete(hash);
        return null;
      }
      if (valid.size >= CACHE_MAX) valid.clear();
      valid.set(hash, { id: row.id, until: now + CACHE_MS });
      return row.id;
    }

    function touch(id: string): void {
      const now = Date.now();
      if (now - (lastUsedWrites.get(id) ?? 0) < LAST_USED_EVERY_MS) return;
      if (lastUsedWrites.size >= CACHE_MAX) lastUsedWrites.clear();
      lastUsedWrites.set(id, now);
      app.db.apiKey
        .update({ where: { id }, data: { lastUsedAt: new Date(now) } })
        .catch((error: unknown) => app.log.warn({ err: error }, "could not record key use"));
    }

    app.decorateRequest("apiKeyId", null);
    app.addHook("onRequest", async (request) => {
      if (request.routeOptions.config.public) return;
      const header = request.headers.authorization;
      if (header === undefined) {
        throw unauthorized("missing Authorization header: send `Authorization: Bearer <API key>`");
      }
      const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!match?.[1]) {
        throw unauthorized(
          "malformed Authorization header: send `Authorization: Bearer <API key>`",
        );
      }
      const id = await keyId(hashApiKey(match[1]));
      if (id === null) {
        throw unauthorized(
          "invalid or revoked API key: check TURTLE_API_KEY, or create one with `npm run setup -- --new-key`",
        );
      }
      request.apiKeyId = id;
      touch(id);
    });
  },
  { name: "auth", dependencies: ["db"] },
);
