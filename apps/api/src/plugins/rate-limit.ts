// Each project's request rate: at most its requestsPerMinute over all its keys, counted in Redis
// (so every API instance shares the count) in fixed one-minute windows. Past it: 429 with
// Retry-After. Public routes (health, login) are not counted: they carry no project.
import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { ApiError } from "../errors.ts";

export default fp(
  async function projectRateLimit(app: FastifyInstance) {
    await app.register(rateLimit, {
      global: true,
      hook: "onRequest",
      redis: app.redis,
      nameSpace: `${app.config.TURTLE_QUEUE}:rate:`,
      timeWindow: 60_000,
      // A Redis outage must not stop reads that only need Postgres; the queue refuses work then.
      skipOnError: true,
      allowList: (request) => request.auth === null,
      keyGenerator: (request) => request.auth?.projectId ?? "",
      max: (request) => request.auth?.requestsPerMinute ?? 0,
      errorResponseBuilder: (request, context) =>
        new ApiError(
          429,
          "rate_limited",
          `project "${request.auth?.projectName}" made more than ${context.max} requests this minute (its requestsPerMinute): retry after ${context.after} (the Retry-After header, in seconds)`,
        ),
    });
  },
  { name: "rate-limit", dependencies: ["auth", "redis"] },
);
