// `Authorization: Bearer <key>` on every route that is not marked `config: { public: true }`,
// or, from a browser, the session cookie that logging in to the dashboard sets (sessions.ts).
import cookie from "@fastify/cookie";
import type { FastifyInstance, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { hashApiKey } from "../api-keys.ts";
import { ApiError } from "../errors.ts";
import { SESSION_COOKIE, sessionKeyId } from "../sessions.ts";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Served without an API key. */
    public?: boolean;
  }
  interface FastifyInstance {
    /** The id of the valid (not revoked) API key with this hash, or null. */
    apiKeyIdOf(hash: string): Promise<string | null>;
    /** Drops a session token from the cache of valid ones (at logout). */
    forgetSession(token: string): void;
  }
  interface FastifyRequest {
    /** The id of the ApiKey row that authenticated the request. */
    apiKeyId: string | null;
    /** How it was authenticated: the Authorization header, or a browser's session cookie. */
    authenticatedBy: "bearer" | "session" | null;
  }
}

/** A valid key is trusted this long before it is looked up again (so revoking takes this long). */
const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;
/** `lastUsedAt` is a hint, not an audit log: written at most this often per key. */
const LAST_USED_EVERY_MS = 60_000;

const unauthorized = (message: string) => new ApiError(401, "unauthorized", message);

/** Pages a browser opens (not the API's JSON): sent to the login page instead of a 401. */
function isPageNavigation(request: FastifyRequest): boolean {
  const path = request.url;
  return (
    request.method === "GET" &&
    (request.headers.accept ?? "").includes("text/html") &&
    !path.startsWith("/v1/") &&
    !path.startsWith("/mcp") &&
    !path.startsWith("/metrics")
  );
}

/**
 * A request that changes something on the strength of a cookie must come from a page of this
 * origin (SameSite=Strict already keeps other sites' requests from carrying it; this also covers
 * browsers and proxies that do not honour it).
 */
function isSameOrigin(request: FastifyRequest): boolean {
  const origin = request.headers.origin;
  if (origin === undefined) return false;
  try {
    // request.host is the forwarded host when TRUST_PROXY is on.
    return new URL(origin).host === request.host;
  } catch {
    return false;
  }
}

export default fp(
  async function auth(app: FastifyInstance) {
    const valid = new Map<string, { id: string; until: number }>();
    const lastUsedWrites = new Map<string, number>();

    /** The key's id if it is valid: `cacheKey` names it in the cache, `find` looks it up. */
    async function cachedKeyId(
      cacheKey: string,
      find: () => Promise<{ id: string } | null>,
    ): Promise<string | null> {
      const now = Date.now();
      const cached = valid.get(cacheKey);
      if (cached !== undefined && cached.until > now) return cached.id;
      const row = await find();
      if (row === null) {
        valid.delete(cacheKey);
        return null;
      }
      if (valid.size >= CACHE_MAX) valid.clear();
      valid.set(cacheKey, { id: row.id, until: now + CACHE_MS });
      return row.id;
    }

    const keyId = (hash: string) =>
      cachedKeyId(`key:${hash}`, () =>
        app.db.apiKey.findFirst({ where: { hash, revokedAt: null }, select: { id: true } }),
      );
    /** A session's key, while the session lasts and the key is not revoked. */
    const sessionId = (token: string) =>
      cachedKeyId(`session:${token}`, async () => {
        const id = await sessionKeyId(app.redis, app.config.TURTLE_QUEUE, token);
        if (id === null) return null;
        return app.db.apiKey.findFirst({ where: { id, revokedAt: null }, select: { id: true } });
      });
    app.decorate("apiKeyIdOf", keyId);
    app.decorate("forgetSession", (token: string) => {
      valid.delete(`session:${token}`);
    });

    function touch(id: string): void {
      const now = Date.now();
      if (now - (lastUsedWrites.get(id) ?? 0) < LAST_USED_EVERY_MS) return;
      if (lastUsedWrites.size >= CACHE_MAX) lastUsedWrites.clear();
      lastUsedWrites.set(id, now);
      app.db.apiKey
        .update({ where: { id }, data: { lastUsedAt: new Date(now) } })
        .catch((error: unknown) => app.log.warn({ err: error }, "could not record key use"));
    }

    await app.register(cookie);
    app.decorateRequest("apiKeyId", null);
    app.decorateRequest("authenticatedBy", null);
    app.addHook("onRequest", async (request, reply) => {
      if (request.routeOptions.config.public) return;
      const header = request.headers.authorization;
      if (header === undefined) {
        const token = request.cookies[SESSION_COOKIE];
        const id = token === undefined ? null : await sessionId(token);
        if (id !== null) {
          const safe = request.method === "GET" || request.method === "HEAD";
          if (!safe && !isSameOrigin(request)) {
            throw new ApiError(
              403,
              "cross_origin",
              "a request made with the dashboard's session cookie must come from the dashboard's own pages (its Origin header must match the host)",
            );
          }
          request.apiKeyId = id;
          request.authenticatedBy = "session";
          return;
        }
        if (isPageNavigation(request)) {
          return reply.redirect(`/dashboard/login?next=${encodeURIComponent(request.url)}`);
        }
        throw unauthorized(
          token === undefined
            ? "missing Authorization header: send `Authorization: Bearer <API key>`"
            : "the dashboard session has ended: log in again, or send `Authorization: Bearer <API key>`",
        );
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
      request.authenticatedBy = "bearer";
      touch(id);
    });
  },
  { name: "auth", dependencies: ["db", "redis"] },
);
