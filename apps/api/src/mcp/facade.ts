// Turtle as an MCP server: the few tools an agent needs for Code Mode. `search_tools` discovers
// the program API a piece at a time, `execute` runs one program as a durable job (type-checked
// first), `get_job` fetches a job that outlived the wait. Their descriptions state the program
// contract and name the server namespaces, never every tool, so the fixed cost an agent pays on
// every turn stays the same however many tools are registered. The same server is served over
// Streamable HTTP (routes/mcp.ts) and over stdio (`turtle mcp`).

import { Server } from "@modelcontextprotocol/sdk/server/index.js";
import {
  CallToolRequestSchema,
  type CallToolResult,
  ListToolsRequestSchema,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import { CatalogError, ServerUnavailableError, toIdentifier } from "@turtle/bindings";
import type { TypeDiagnostic } from "@turtle/typecheck";
import { Ajv } from "ajv";
import type { FastifyInstance } from "fastify";
import type { SearchDetail } from "../catalog/search.ts";
import { ApiError } from "../errors.ts";
import { findJob } from "../jobs/find.ts";
import { submit } from "../jobs/submit.ts";
import { TERMINAL_STATUSES } from "../jobs/views.ts";
import { waitForJob } from "../jobs/wait.ts";
import type { Auth } from "../plugins/auth.ts";
import { describeJob, type JobPart, logsText, page, resultText } from "./shaping.ts";

/** Namespaces named in the tool list; the rest are counted, and search_tools finds them. */
const NAMESPACES_LISTED = 40;
const SEARCH_LIMIT_DEFAULT = 8;
const SEARCH_LIMIT_MAX = 50;
const QUERY_MAX_LENGTH = 500;

interface SearchArgs {
  query: string;
  detail?: SearchDetail;
  servers?: string[];
  limit?: number;
}
interface ExecuteArgs {
  code: string;
  input?: unknown;
  timeoutMs?: number;
  typecheck?: boolean;
}
interface GetJobArgs {
  id: string;
  wait?: number;
  part?: JobPart;
  offset?: number;
}

const SEARCH_SCHEMA = {
  type: "object",
  properties: {
    query: {
      type: "string",
      maxLength: QUERY_MAX_LENGTH,
      description: "what you need, in words; empty lists tools in order",
    },
    detail: {
      type: "string",
      enum: ["name", "summary", "full"],
      description: "name, summary (default), or full: TypeScript declarations",
    },
    servers: { type: "array", items: { type: "string" }, description: "only these servers" },
    limit: { type: "integer", minimum: 1, maximum: SEARCH_LIMIT_MAX, description: "default 8" },
  },
  required: ["query"],
  additionalProperties: false,
} as const;

const EXECUTE_SCHEMA = {
  type: "object",
  properties: {
    code: { type: "string", minLength: 1, description: "the program (TypeScript)" },
    input: { description: "JSON value the program reads as `input`" },
    timeoutMs: { type: "integer", minimum: 1, description: "the job's time limit" },
    typecheck: { type: "boolean", description: "type-check first (default true)" },
  },
  required: ["code"],
  additionalProperties: false,
} as const;

const GET_JOB_SCHEMA = {
  type: "object",
  properties: {
    id: { type: "string", description: "the job id from execute" },
    wait: { type: "number", minimum: 0, maximum: 60, description: "seconds to wait for its end" },
    part: { type: "string", enum: ["result", "logs"], description: "page through a cut part" },
    offset: { type: "integer", minimum: 0, description: "where the page starts" },
  },
  required: ["id"],
  additionalProperties: false,
} as const;

const ajv = new Ajv({ allErrors: false, strict: false });
const validators = {
  search_tools: ajv.compile<SearchArgs>(SEARCH_SCHEMA),
  execute: ajv.compile<ExecuteArgs>(EXECUTE_SCHEMA),
  get_job: ajv.compile<GetJobArgs>(GET_JOB_SCHEMA),
};
type FacadeTool = keyof typeof validators;

/** The façade's tool list: what every agent turn pays for. */
export function facadeTools(servers: readonly string[], waitSeconds: number): Tool[] {
  const listed = servers.slice(0, NAMESPACES_LISTED).map((name) => {
    const identifier = toIdentifier(name);
    return identifier === name ? name : `${identifier} ("${name}")`;
  });
  const more = servers.length - listed.length;
  const namespaces =
    servers.length === 0
      ? "none yet (register MCP servers with POST /v1/servers)"
      : `${listed.join(", ")}${more > 0 ? `, and ${more} more` : ""}`;
  return [
    {
      name: "search_tools",
      description:
        "Find the functions a program can call: ranked search over every MCP server's tools by name, description and parameter names. Read the hits' TypeScript declarations (detail: \"full\") before writing code against them.",
      inputSchema: SEARCH_SCHEMA as unknown as Tool["inputSchema"],
    },
    {
      name: "execute",
      description: [
        "Run a TypeScript program as a durable job; returns its result and logs.",
        "The code is the body of an async function: use top-level await and `return` a JSON value (the result).",
        "Each MCP server is a global namespace; each tool an async function taking one object: `await ns.tool({ ... })`. It returns the tool's structured content, else its text parsed as JSON, else the text. A failing tool throws a ToolError { server, tool, message }; catch it to retry or skip.",
        "`input` holds the input; console.log goes to the logs. No fetch, require, timers or files.",
        "Loop, filter, join and aggregate in the program and return only what is needed. Calls are checkpointed: a re-run never repeats a finished one.",
        `Type errors come back with line and column, and nothing runs. A job still running after ${waitSeconds} s returns its id for get_job.`,
        `Namespaces: ${namespaces}.`,
      ].join("\n"),
      inputSchema: EXECUTE_SCHEMA as unknown as Tool["inputSchema"],
    },
    {
      name: "get_job",
      description:
        "A job's status, result and logs. A cut result or log says which part and offset to ask for next.",
      inputSchema: GET_JOB_SCHEMA as unknown as Tool["inputSchema"],
    },
  ];
}

const text = (value: string, isError = false): CallToolResult => ({
  content: [{ type: "text", text: value }],
  ...(isError ? { isError: true } : {}),
});

/** A new façade server, for one MCP session (or one stateless HTTP request). */
export function createFacade(app: FastifyInstance, auth: Auth): Server {
  const { projectId } = auth;
  const { config } = app;
  const limits = { resultChars: config.MCP_RESULT_MAX_CHARS, logsChars: config.MCP_LOGS_MAX_CHARS };
  const waitSeconds = config.MCP_WAIT_MS / 1000;
  const server = new Server(
    { name: "turtle", version: "0.1.0" },
    { capabilities: { tools: { listChanged: false } } },
  );

  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: facadeTools(await app.catalogs.names(projectId, undefined, ""), waitSeconds),
  }));

  async function searchTools(args: SearchArgs, signal: AbortSignal): Promise<CallToolResult> {
    const names = await app.catalogs.names(projectId, args.servers, "servers");
    const { loaded, unavailable } = await app.catalogs.loadAvailable(projectId, names, signal);
    const { index } = loaded;
    const down = unavailable.map(
      ({ server, message }) =>
        `\n(server ${JSON.stringify(server)} is unavailable, so its tools were not searched: ${message})`,
    );
    const limit = args.limit ?? SEARCH_LIMIT_DEFAULT;
    const quoted = JSON.stringify(
      args.query.length > 80 ? `${args.query.slice(0, 77)}…` : args.query,
    );
    const hits = index.find(args.query, { limit });
    if (hits.length === 0) {
      return text(
        `No tool matches ${quoted} among ${index.size} tools; try other words, or an empty query to list them.${down.join("")}`,
      );
    }
    const detail = args.detail ?? "summary";
    const head = `${hits.length} of ${index.size} tools${args.query.trim() === "" ? "" : ` for ${quoted}`}, best first:`;
    return text(`${head}\n${index.render(hits, detail)}${down.join("")}`);
  }

  async function execute(args: ExecuteArgs, signal: AbortSignal): Promise<CallToolResult> {
    let submitted: Awaited<ReturnType<typeof submit>>;
    try {
      if (!auth.scopes.includes("submit")) {
        return text(
          `execute: this API key lacks the \`submit\` scope (it has: ${auth.scopes.join(", ") || "none"}); connect with a key that may submit jobs`,
          true,
        );
      }
      submitted = await submit(app, auth, {
        code: args.code,
        ...(args.input === undefined ? {} : { input: args.input }),
        ...(args.timeoutMs === undefined ? {} : { timeoutMs: args.timeoutMs }),
        typecheck: args.typecheck ?? true,
      });
    } catch (error) {
      if (error instanceof ApiError && error.code === "type_errors") {
        return text(typeErrorText(error.details.diagnostics as TypeDiagnostic[]), true);
      }
      throw error;
    }
    const job = await waitForJob(app, submitted.id, waitSeconds, signal);
    if (job === null) return text(`job ${submitted.id} disappeared`, true);
    return jobAnswer(job, waitSeconds);
  }

  async function getJob(args: GetJobArgs, signal: AbortSignal): Promise<CallToolResult> {
    const found = await findJob(app, projectId, args.id);
    const job =
      args.wait !== undefined && args.wait > 0
        ? ((await waitForJob(app, found.id, args.wait, signal)) ?? found)
        : found;
    if (args.part === undefined) return jobAnswer(job, args.wait ?? 0);
    const whole = args.part === "result" ? (resultText(job) ?? "") : logsText(job);
    const shown = page(whole, args.offset ?? 0, limits[`${args.part}Chars`], {
      jobId: job.id,
      part: args.part,
    });
    return text(`job ${job.id} ${job.status}, ${args.part}:\n${shown}`);
  }

  function jobAnswer(
    job: Parameters<typeof describeJob>[0],
    waitedSeconds: number,
  ): CallToolResult {
    const { text: answer, isError } = describeJob(job, limits);
    if (TERMINAL_STATUSES.has(job.status)) return text(answer, isError);
    const waited = waitedSeconds > 0 ? ` after ${waitedSeconds} s` : "";
    const call = JSON.stringify({ id: job.id, wait: 30 });
    if (job.status === "waiting") {
      return text(
        `${answer}\nWaiting for a person to approve a tool call (its policy asks for approval; GET /v1/jobs/${job.id}/approvals lists them). It goes on once decided: get_job ${call} waits for its end.`,
      );
    }
    return text(`${answer}\nStill ${job.status}${waited}: get_job ${call} waits for its end.`);
  }

  server.setRequestHandler(CallToolRequestSchema, async (request, extra) => {
    const name = request.params.name as FacadeTool;
    if (!Object.hasOwn(validators, name)) {
      return text(
        `no tool ${JSON.stringify(request.params.name)}: the tools are ${Object.keys(validators).join(", ")}`,
        true,
      );
    }
    const validate = validators[name];
    const args = request.params.arguments ?? {};
    if (!validate(args)) {
      const issue = validate.errors?.[0];
      const where = issue?.instancePath
        ? `arguments${issue.instancePath.replaceAll("/", ".")}`
        : "arguments";
      return text(`${name}: ${where} ${issue?.message ?? "are invalid"}`, true);
    }
    try {
      switch (name) {
        case "search_tools":
          return await searchTools(args as SearchArgs, extra.signal);
        case "execute":
          return await execute(args as ExecuteArgs, extra.signal);
        case "get_job":
          return await getJob(args as GetJobArgs, extra.signal);
      }
    } catch (error) {
      // Our own answers (unknown server, queue full, no such job…) say what to fix; anything
      // else is logged and answered without its text.
      if (error instanceof ApiError || isUserFacing(error))
        return text(`${name}: ${(error as Error).message}`, true);
      app.log.error({ err: error, tool: name }, "MCP tool call failed");
      return text(`${name} failed with an internal error; try again`, true);
    }
  });
  return server;
}

function isUserFacing(error: unknown): boolean {
  return error instanceof ServerUnavailableError || error instanceof CatalogError;
}

function typeErrorText(diagnostics: TypeDiagnostic[]): string {
  const lines = diagnostics.map(
    (d) => `line ${d.line}, column ${d.column}: TS${d.code} ${d.message}`,
  );
  const errors = `${diagnostics.length} type error${diagnostics.length === 1 ? "" : "s"}`;
  return [
    `Not run: the program has ${errors}.`,
    ...lines,
    'Fix them and call execute again (search_tools with detail "full" shows the declarations).',
  ].join("\n");
}
