// The API as one fastify instance: resources as named plugins (each closes its own connections),
// then authentication, then one route plugin per resource. server.ts only adds the process.
import type { Duplex } from "node:stream";
import swagger from "@fastify/swagger";
import { setProcessSecrets } from "@turtle/bindings";
import {
  type Config,
  createSecretBox,
  type SecretBox,
  sandboxWarnings,
  turtleSecrets,
  UUID_PATTERN,
} from "@turtle/core";
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyServerOptions,
} from "fastify";
import secureJson from "secure-json-parse";
import { ApiError } from "./errors.ts";
import auth from "./plugins/auth.ts";
import catalogs from "./plugins/catalog.ts";
import db from "./plugins/db.ts";
import errors from "./plugins/errors.ts";
import jobEvents from "./plugins/job-events.ts";
import mcpPool from "./plugins/mcp-pool.ts";
import queue from "./plugins/queue.ts";
import rateLimit from "./plugins/rate-limit.ts";
import redis from "./plugins/redis.ts";
import requeue from "./plugins/requeue.ts";
import serversFile from "./plugins/servers-file.ts";
import approvals from "./routes/approvals.ts";
import audit from "./routes/audit.ts";
import check from "./routes/check.ts";
import dashboard from "./routes/dashboard.ts";
import events from "./routes/events.ts";
import health from "./routes/health.ts";
import jobControl from "./routes/job-control.ts";
import jobs from "./routes/jobs.ts";
import keys from "./routes/keys.ts";
import mcp from "./routes/mcp.ts";
import metrics from "./routes/metrics.ts";
import openapi from "./routes/openapi.ts";
import policies from "./routes/policies.ts";
import projects from "./routes/projects.ts";
import servers from "./routes/servers.ts";
import session from "./routes/session.ts";
import steps from "./routes/steps.ts";
import types from "./routes/types.ts";
import workers from "./routes/workers.ts";
import { formatValidationError, validatorCompiler } from "./validation.ts";

declare module "fastify" {
  interface FastifyInstance {
    config: Config;
    /** Seals and opens MCP servers' secrets (SECRETS_KEY). */
    secrets: SecretBox;
  }
}

export interface BuildAppOptions {
  config: Config;
  /** Fastify's logger option; by default pino at LOG_LEVEL with secrets redacted. */
  logger?: FastifyServerOptions["logger"];
  /** How long a read of the queue depth serves later requests (default 250 ms). */
  queueDepthCacheMs?: number;
  /** Deadline to reach an MCP server and list its tools (default 15 s). */
  mcpTimeoutMs?: number;
}

/**
 * Log paths never written: API keys, and `env`/`headers` wherever they appear — they hold MCP
 * servers' secrets.
 */
export const REDACTED_LOG_PATHS = [
  "req.headers.authorization",
  "authorization",
  "env",
  "headers",
  "secrets",
  "*.authorization",
  "*.env",
  "*.headers",
  "*.secrets",
  "*.*.env",
  "*.*.headers",
  "*.*.secrets",
];

const JOB_PATH = new RegExp(`^/v1/jobs/(${UUID_PATTERN})(?:[/?]|$)`, "i");

export function loggerOptions(config: Config) {
  return { level: config.LOG_LEVEL, redact: { paths: REDACTED_LOG_PATHS, censor: "[redacted]" } };
}

/**
 * JSON bodies, parsed as fastify does (keys `__proto__` and `constructor.prototype` refused, so
 * no body can reach an object's prototype), with a message that says what is wrong with one.
 */
function parseJsonBody(
  _request: unknown,
  body: string | Buffer,
  done: (error: Error | null, value?: unknown) => void,
): void {
  const text = body.toString();
  let value: unknown;
  let problem: string | undefined;
  if (text.trim() === "") {
    problem = "the body is empty but Content-Type is application/json: send a JSON object";
  } else {
    try {
      value = secureJson.parse(text, undefined, {
        protoAction: "error",
        constructorAction: "error",
      });
    } catch (error) {
      const why = (error as Error).message;
      problem = /prototype property/.test(why)
        ? 'the body has a key named "__proto__" or "constructor" holding "prototype", which the API refuses: rename it'
        : `the body is not valid JSON (${why}): send a JSON object`;
    }
  }
  if (problem === undefined) done(null, value);
  else done(new ApiError(400, "invalid_json", problem), undefined);
}

/**
 * A request Node's HTTP parser refuses (a header with a line break or a NUL, a bad request
 * line, headers over the limit) never reaches fastify: answered here, in the API's error shape,
 * and the connection closed.
 */
function answerMalformedHttp(error: Error & { code?: string }, socket: Duplex): void {
  if (error.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, message] =
    error.code === "HPE_HEADER_OVERFLOW"
      ? [
          431,
          "Request Header Fields Too Large",
          "the request's headers are too large: send fewer or shorter headers",
        ]
      : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [408, "Request Timeout", "the request was not sent in time: send it whole, promptly"]
        : [
            400,
            "Bad Request",
            `the HTTP request is malformed (${error.code ?? "unreadable"}): check its request line and headers — a header value may not hold a line break or a NUL (a key copied with its line ending, say)`,
          ];
  const body = JSON.stringify({ error: { code: "malformed_request", message } });
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config } = options;
  // Before anything starts: without its key the API could not register a server.
  const secrets = createSecretBox(config);
  // Whatever a server says is quoted without these (see @turtle/bindings' redact.ts).
  setProcessSecrets(turtleSecrets(config));
  const app = Fastify({
    logger: options.logger ?? loggerOptions(config),
    bodyLimit: config.MAX_BODY_BYTES,
    // A hop count, never `true`: with `true` the client's own X-Forwarded-For entry would be its
    // address, and it could dodge the per-address limit on failed authentication.
    trustProxy:
      config.TRUST_PROXY === 0
        ? false
        : (_address: string, hop: number) => hop < config.TRUST_PROXY,
    schemaErrorFormatter: formatValidationError,
    // Long `?wait=` requests end at close (see plugins/job-events.ts); idle keep-alives now.
    forceCloseConnections: "idle",
    clientErrorHandler: answerMalformedHttp,
    // A URL the router cannot take (a parameter over maxParamLength, bad percent-encoding)
    // answers in the API's own error shape.
    frameworkErrors(error, _request, raw) {
      const reply = raw as FastifyReply;
      const tooLong = error.code === "FST_ERR_MAX_PARAM_LENGTH";
      return reply.code(400).send({
        error: {
          code: "invalid_request",
          message: tooLong
            ? "a part of the path is too long: ids and names are at most 100 characters"
            : `the URL is malformed (${error.message}): percent-encode it`,
        },
      });
    },
  });
  app.setValidatorCompiler(validatorCompiler);
  // Every request log line about a job (GET /v1/jobs/:id, …/steps, …/events, cancel, resume)
  // carries its id; POST /v1/jobs adds it once the job exists (routes/jobs.ts).
  app.setChildLoggerFactory((logger, bindings, options, raw) => {
    const jobId = JOB_PATH.exec(raw.url ?? "")?.[1];
    return logger.child(jobId === undefined ? bindings : { ...bindings, jobId }, options);
  });
  // JSON only: a text body would otherwise reach validation and read as a type error, not a 415.
  app.removeContentTypeParser("text/plain");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, parseJsonBody);
  app.decorate("config", config);
  app.decorate("secrets", secrets);
  for (const warning of sandboxWarnings(config)) app.log.warn(warning);
  // Postgres text cannot hold U+0000, so no filter can contain one: a query string carrying one
  // is refused here, once for every route, before it reaches a query. (Path ids and names are
  // checked by their routes' own rules.)
  app.addHook("onRequest", async (request) => {
    const query = request.url.indexOf("?");
    if (query !== -1 && /%00/i.test(request.url.slice(query))) {
      throw new ApiError(
        400,
        "invalid_request",
        "the query string holds a NUL character (%00), which no filter can contain: remove it",
      );
    }
  });

  try {
    await app.register(errors, { bodyLimit: config.MAX_BODY_BYTES });
    await app.register(db, { url: config.DATABASE_URL });
    await app.register(redis, { url: config.REDIS_URL });
    await app.register(queue, {
      name: config.TURTLE_QUEUE,
      depthCacheMs: options.queueDepthCacheMs ?? 250,
    });
    await app.register(requeue);
    await app.register(jobEvents, { redisUrl: config.REDIS_URL, queue: config.TURTLE_QUEUE });
    await app.register(mcpPool, {
      redisUrl: config.REDIS_URL,
      queue: config.TURTLE_QUEUE,
      timeoutMs: options.mcpTimeoutMs ?? 15_000,
      maxMessageBytes: config.TOOL_RESULT_MAX_BYTES,
    });
    await app.register(catalogs);
    if (config.MCP_SERVERS_FILE) await app.register(serversFile, { path: config.MCP_SERVERS_FILE });
    await app.register(auth);
    await app.register(rateLimit);

    // Collects every route registered after it: their schemas are the OpenAPI document.
    await app.register(swagger, {
      openapi: {
        info: { title: "Turtle", version: "0.1.0", description: "Code Mode jobs over MCP servers" },
        components: { securitySchemes: { apiKey: { type: "http", scheme: "bearer" } } },
        security: [{ apiKey: [] }],
      },
    });
    await app.register(health);
    await app.register(openapi);
    await app.register(mcp);
    await app.register(metrics);
    await app.register(dashboard);
    await app.register(
      async (v1) => {
        await v1.register(servers);
        await v1.register(types);
        await v1.register(check);
        await v1.register(jobs);
        await v1.register(jobControl);
        await v1.register(steps);
        await v1.register(events);
        await v1.register(approvals);
        await v1.register(policies);
        await v1.register(workers);
        await v1.register(session);
        await v1.register(projects);
        await v1.register(keys);
        await v1.register(audit);
      },
      { prefix: "/v1" },
    );
  } catch (error) {
    // A plugin that failed to start (bad MCP_SERVERS_FILE, unreachable Postgres): release what
    // the others opened, so the caller can report and exit.
    await app.close().catch(() => {});
    throw error;
  }
  return app;
}
