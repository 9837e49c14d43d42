// `Authorization: Bearer <key>` on every route that is not marked `config: { public: true }`,
// or, from a browser, the session cookie that logging in to the dashboard sets (sessions.ts).
// A key belongs to one project and carries scopes; each route says the scope it needs
// (`config: { scope }`, by default `read` for GET and `submit` otherwise), and every handler
// reads and writes only `request.auth.projectId`'s rows.
import cookie from "@fastify/cookie";
import {
  type Config,
  DEFAULT_PROJECT_ID,
  DEFAULT_PROJECT_NAME,
  SCOPES,
  type Scope,
} from "@turtle/core";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import fp from "fastify-plugin";
import { RateLimiterRedis } from "rate-limiter-flexible";
import { hashApiKey } from "../api-keys.ts";
import { ApiError } from "../errors.ts";
import { SESSION_COOKIE, sessionKeyId } from "../sessions.ts";

/** What a request may do, and in which project: from its key, looked up once per 10 s. */
export interface Auth {
  keyId: string;
  projectId: string;
  projectName: string;
  scopes: readonly Scope[];
  /** The key's project is the operator's (it may manage projects) and the key is admin. */
  operator: boolean;
  /** The project's limits in force (its own, else the configured defaults). */
  maxConcurrentJobs: number;
  requestsPerMinute: number;
}

/** A route's requirement: a scope, an operator's admin key, or any valid key. */
export type RouteScope = Scope | "operator" | "any";

declare module "fastify" {
  interface FastifyContextConfig {
    /** Served without an API key. */
    public?: boolean;
    /** What the key must allow (default: `read` for GET and HEAD, `submit` otherwise). */
    scope?: RouteScope;
  }
  interface FastifyInstance {
    /**
     * The valid (not revoked) API key with this hash, or null; a request's failed attempts are
     * counted per client address, and past AUTH_FAILURES_PER_MINUTE it answers 429 instead.
     */
    authOf(hash: string, request: FastifyRequest): Promise<Auth | null>;
    /** Drops a session token from the cache of valid ones (at logout). */
    forgetSession(token: string): void;
    /**
     * Drops the cached keys `which` matches (a revoked key, a project whose limits changed):
     * they are read again here at once, on other instances within 10 s.
     */
    forgetKeys(which: (auth: Auth) => boolean): void;
  }
  interface FastifyRequest {
    /** The key that authenticated the request (null on public routes). */
    auth: Auth | null;
    /** How it was authenticated: the Authorization header, or a browser's session cookie. */
    authenticatedBy: "bearer" | "session" | null;
  }
}

const SCOPE_USES: Record<Scope, string> = {
  read: "reading jobs, servers and tools",
  submit: "submitting and controlling jobs",
  admin: "managing servers, policies, keys and approvals",
};

/**
 * The operator's own access, for a process that serves one local user with no key (`turtle mcp`
 * over stdio): every scope in the default project.
 */
export function localAuth(config: Config): Auth {
  return {
    keyId: "local",
    projectId: DEFAULT_PROJECT_ID,
    projectName: DEFAULT_PROJECT_NAME,
    scopes: SCOPES,
    operator: true,
    maxConcurrentJobs: config.PROJECT_MAX_CONCURRENT_JOBS,
    requestsPerMinute: config.PROJECT_REQUESTS_PER_MINUTE,
  };
}

/** The request's auth on a route that is not public (where the auth hook has run). */
export function authOf(request: FastifyRequest): Auth {
  if (request.auth === null) throw new ApiError(401, "unauthorized", "an API key is required");
  return request.auth;
}

/** The project whose rows the request may see. */
export const projectOf = (request: FastifyRequest): string => authOf(request).projectId;

/** 403 unless the request's key has the scope. */
function requireScope(request: FastifyRequest, scope: RouteScope): void {
  const auth = authOf(request);
  if (scope === "any") return;
  if (scope === "operator") {
    if (auth.operator) return;
    throw new ApiError(
      403,
      "forbidden",
      "only an admin key of the operator's project (the one `npm run setup` made) may do this",
    );
  }
  if (auth.scopes.includes(scope)) return;
  throw new ApiError(
    403,
    "forbidden",
    `this API key lacks the \`${scope}\` scope (needed for ${SCOPE_USES[scope]}); it has: ${auth.scopes.join(", ") || "none"}. Use a key with that scope (an admin makes one with POST /v1/keys)`,
  );
}

/** A valid key is trusted this long before it is looked up again (so revoking takes this long). */
const CACHE_MS = 10_000;
const CACHE_MAX = 10_000;
/** `lastUsedAt` is a hint, not an audit log: written at most this often per key. */
const LAST_USED_EVERY_MS = 60_000;

const unauthorized = (message: string) => new ApiError(401, "unauthorized", message);

/** How long a look-up of the failure count may take before the request goes on without it. */
const FAILURE_CHECK_MS = 250;

/**
 * Failed authentications per client address, counted in Redis so every API instance shares
 * them: past the limit, an address gets 429 for the rest of the minute without its key being
 * looked up, so guessing keys costs the guesser time and Turtle nothing. Each look-up counts
 * before it is made and is given back when the key was valid. A key already known valid (seen
 * within CACHE_MS) is let through without a count: a client sharing the address (a NAT) keeps
 * working, and a valid key costs Redis nothing once cached.
 */
function createFailureLimit(app: FastifyInstance) {
  const limiter = new RateLimiterRedis({
    storeClient: app.redis,
    keyPrefix: `${app.config.TURTLE_QUEUE}:auth-failures`,
    points: app.config.AUTH_FAILURES_PER_MINUTE,
    duration: 60,
  });
  // Redis waits through an outage (BullMQ's setting): authentication must not.
  const bounded = <T>(work: Promise<T>): Promise<T | undefined> =>
    Promise.race([
      work.catch(() => undefined),
      new Promise<undefined>((resolve) =>
        setTimeout(() => resolve(undefined), FAILURE_CHECK_MS).unref(),
      ),
    ]);
  const tooMany = (retryMs: number) => {
    const seconds = Math.max(1, Math.ceil(retryMs / 1000));
    return new ApiError(
      429,
      "too_many_auth_failures",
      `more than ${app.config.AUTH_FAILURES_PER_MINUTE} requests from this address failed to authenticate this minute (AUTH_FAILURES_PER_MINUTE): check the API key, and retry after ${seconds} s (the Retry-After header)`,
      { "retry-after": String(seconds) },
    );
  };
  const limit = app.config.AUTH_FAILURES_PER_MINUTE;
  return {
    /**
     * Counts an attempt before its credential is looked up, so a burst of guesses cannot all pass
     * a check made before any of them failed: throws 429 once the address is past its limit.
     */
    async attempt(ip: string): Promise<void> {
      const state = await bounded(limiter.penalty(ip, 1));
      if (state && state.consumedPoints > limit) throw tooMany(state.msBeforeNext);
    },
    /** The attempt's credential was valid: it does not count. */
    succeeded(ip: string): void {
      void bounded(limiter.reward(ip, 1));
    },
  };
}

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

/**
 * 403 unless the key has the route's scope: answered here, in the API's error shape, also on
 * routes whose plugin answers errors its own way (bull-board).
 */
function checkScope(request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined {
  try {
    requireScope(request, scopeOf(request));
    return undefined;
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    return reply
      .code(error.statusCode)
      .send({ error: { code: error.code, message: error.message } });
  }
}

function scopeOf(request: FastifyRequest): RouteScope {
  const { scope } = request.routeOptions.config;
  if (scope !== undefined) return scope;
  return request.method === "GET" || request.method === "HEAD" ? "read" : "submit";
}

export default fp(
  async function auth(app: FastifyInstance) {
    const valid = new Map<string, { auth: Auth; until: number }>();
    const lastUsedWrites = new Map<string, number>();
    const { PROJECT_MAX_CONCURRENT_JOBS, PROJECT_REQUESTS_PER_MINUTE } = app.config;

    /** The key's auth if it is valid: `cacheKey` names it in the cache, `where` finds it. */
    async function cachedAuth(
      cacheKey: string,
      where: () => Promise<{ hash: string } | { id: string } | null>,
    ): Promise<Auth | null> {
      const now = Date.now();
      const cached = valid.get(cacheKey);
      if (cached !== undefined && cached.until > now) return cached.auth;
      const unique = await where();
      const row =
        unique === null
          ? null
          : await app.db.apiKey.findFirst({
              where: { ...unique, revokedAt: null },
              select: { id: true, scopes: true, project: true },
            });
      if (row === null) {
        valid.delete(cacheKey);
        return null;
      }
      const { project } = row;
      const auth: Auth = {
        keyId: row.id,
        projectId: project.id,
        projectName: project.name,
        scopes: row.scopes,
        operator: project.operator && row.scopes.includes("admin"),
        maxConcurrentJobs: project.maxConcurrentJobs ?? PROJECT_MAX_CONCURRENT_JOBS,
        requestsPerMinute: project.requestsPerMinute ?? PROJECT_REQUESTS_PER_MINUTE,
      };
      if (valid.size >= CACHE_MAX) valid.clear();
      valid.set(cacheKey, { auth, until: now + CACHE_MS });
      return auth;
    }

    const failures = createFailureLimit(app);
    const lookups = new Map<string, Promise<Auth | null>>();
    /**
     * The auth a credential gives, or null, counted against the client's address when it gives
     * none: a credential seen valid lately is answered from the cache without asking Redis.
     */
    async function limited(
      request: FastifyRequest,
      cacheKey: string,
      where: () => Promise<{ hash: string } | { id: string } | null>,
    ): Promise<Auth | null> {
      const cached = valid.get(cacheKey);
      if (cached !== undefined && cached.until > Date.now()) return cached.auth;
      // Concurrent requests with one credential share its look-up and count once: a client's
      // first burst with a key not yet cached is one attempt, not fifty.
      const inFlight = lookups.get(cacheKey);
      if (inFlight !== undefined) return inFlight;
      const lookup = (async () => {
        await failures.attempt(request.ip);
        const auth = await cachedAuth(cacheKey, where);
        if (auth !== null) failures.succeeded(request.ip);
        return auth;
      })().finally(() => lookups.delete(cacheKey));
      lookups.set(cacheKey, lookup);
      return lookup;
    }
    const keyAuth = (hash: string, request: FastifyRequest) =>
      limited(request, `key:${hash}`, async () => ({ hash }));
    /** A session's key, while the session lasts and the key is not revoked. */
    const sessionAuth = (token: string, request: FastifyRequest) =>
      limited(request, `session:${token}`, async () => {
        const id = await sessionKeyId(app.redis, app.config.TURTLE_QUEUE, token);
        return id === null ? null : { id };
      });
    app.decorate("authOf", keyAuth);
    app.decorate("forgetSession", (token: string) => {
      valid.delete(`session:${token}`);
    });
    app.decorate("forgetKeys", (which: (auth: Auth) => boolean) => {
      for (const [cacheKey, entry] of valid) if (which(entry.auth)) valid.delete(cacheKey);
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
    app.decorateRequest("auth", null);
    app.decorateRequest("authenticatedBy", null);
    app.addHook("onRequest", async (request, reply) => {
      const { config } = request.routeOptions;
      if (config.public) return;
      const header = request.headers.authorization;
      if (header === undefined) {
        const token = request.cookies[SESSION_COOKIE];
        const auth = token === undefined ? null : await sessionAuth(token, request);
        if (auth !== null) {
          const safe = request.method === "GET" || request.method === "HEAD";
          if (!safe && !isSameOrigin(request)) {
            throw new ApiError(
              403,
              "cross_origin",
              "a request made with the dashboard's session cookie must come from the dashboard's own pages (its Origin header must match the host)",
            );
          }
          request.auth = auth;
          request.authenticatedBy = "session";
          return checkScope(request, reply);
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
        await failures.attempt(request.ip);
        throw unauthorized(
          "malformed Authorization header: send `Authorization: Bearer <API key>`",
        );
      }
      const auth = await keyAuth(hashApiKey(match[1]), request);
      if (auth === null) {
        throw unauthorized(
          "invalid or revoked API key: check TURTLE_API_KEY, or create one with `npm run setup -- --new-key`",
        );
      }
      request.auth = auth;
      request.authenticatedBy = "bearer";
      touch(auth.keyId);
      return checkScope(request, reply);
    });
  },
  { name: "auth", dependencies: ["db", "redis"] },
);
