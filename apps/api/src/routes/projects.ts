// Projects (tenants). The operator (an admin key of the project `npm run setup` made) creates
// projects, each with a first admin key, and sets their limits; a project's admin keys manage its
// other keys (keys.ts). Another project's ids answer 404.
import { isUuid, PROJECT_NAME, SCOPES } from "@turtle/core";
import type { Project } from "@turtle/db";
import { createApiKey } from "../api-keys.ts";
import { conflict, ErrorResponseSchema, isUniqueViolation, notFound } from "../errors.ts";
import { authOf } from "../plugins/auth.ts";
import type { TypedInstance } from "../typed-instance.ts";
import { keyView, NewKeySchema } from "./keys.ts";

const errors = {
  400: ErrorResponseSchema,
  403: ErrorResponseSchema,
  404: ErrorResponseSchema,
  409: ErrorResponseSchema,
} as const;

const limitProperty = (what: string, max: number) =>
  ({
    type: ["integer", "null"],
    minimum: 1,
    maximum: max,
    description: `${what}: an integer from 1 to ${max}, or null for the configured default`,
  }) as const;

const limitProperties = {
  maxConcurrentJobs: limitProperty("jobs queued or running at once", 1_000_000),
  requestsPerMinute: limitProperty("API requests per minute over all the project's keys", 1e7),
  allowStdioServers: {
    type: "boolean",
    description:
      "may register stdio MCP servers (a command run, confined, on Turtle's hosts); without it, HTTP servers only. Default false (true for the operator's project)",
  },
} as const;

const ProjectSchema = {
  type: "object",
  required: [
    "id",
    "name",
    "operator",
    "maxConcurrentJobs",
    "requestsPerMinute",
    "allowStdioServers",
    "customLimits",
    "createdAt",
  ],
  properties: {
    id: { type: "string" },
    name: { type: "string" },
    operator: { type: "boolean", description: "the operator's project: it manages projects" },
    maxConcurrentJobs: { type: "integer", description: "in force" },
    requestsPerMinute: { type: "integer", description: "in force" },
    allowStdioServers: { type: "boolean", description: "may register stdio MCP servers" },
    customLimits: {
      type: "object",
      description: "the project's own limits; null where the configured default applies",
      properties: {
        maxConcurrentJobs: { type: ["integer", "null"] },
        requestsPerMinute: { type: ["integer", "null"] },
      },
    },
    activeJobs: { type: "integer", description: "jobs queued or running now" },
    createdAt: { type: "string" },
  },
} as const;

export default async function projectRoutes(app: TypedInstance) {
  const { PROJECT_MAX_CONCURRENT_JOBS, PROJECT_REQUESTS_PER_MINUTE } = app.config;

  async function projectView(row: Project) {
    return {
      id: row.id,
      name: row.name,
      operator: row.operator,
      maxConcurrentJobs: row.maxConcurrentJobs ?? PROJECT_MAX_CONCURRENT_JOBS,
      requestsPerMinute: row.requestsPerMinute ?? PROJECT_REQUESTS_PER_MINUTE,
      allowStdioServers: row.allowStdioServers,
      customLimits: {
        maxConcurrentJobs: row.maxConcurrentJobs,
        requestsPerMinute: row.requestsPerMinute,
      },
      activeJobs: await app.activeJobs.count(row.id).catch(() => 0),
      createdAt: row.createdAt.toISOString(),
    };
  }

  const missingProject = (id: string) => notFound(`no project ${JSON.stringify(id)}`);

  app.get(
    "/project",
    {
      config: { scope: "any" },
      schema: {
        operationId: "getProject",
        summary: "The project of the calling key: its limits and how many jobs it runs",
        response: { 200: ProjectSchema },
      },
    },
    async (request) => {
      const row = await app.db.project.findUniqueOrThrow({
        where: { id: authOf(request).projectId },
      });
      return projectView(row);
    },
  );

  app.get(
    "/projects",
    {
      config: { scope: "operator" },
      schema: {
        operationId: "listProjects",
        summary: "Every project (operator only)",
        response: {
          200: {
            type: "object",
            required: ["projects"],
            properties: { projects: { type: "array", items: ProjectSchema } },
          },
          403: ErrorResponseSchema,
        },
      },
    },
    async () => {
      const rows = await app.db.project.findMany({ orderBy: { name: "asc" } });
      return { projects: await Promise.all(rows.map(projectView)) };
    },
  );

  app.post(
    "/projects",
    {
      config: { scope: "operator" },
      schema: {
        operationId: "createProject",
        summary: "Create a project and its first admin key (operator only)",
        body: {
          type: "object",
          required: ["name"],
          additionalProperties: false,
          properties: {
            name: {
              type: "string",
              pattern: PROJECT_NAME.source,
              description:
                "1 to 63 lowercase letters, digits and dashes, starting with a letter or digit",
            },
            keyName: {
              type: "string",
              minLength: 1,
              maxLength: 100,
              description: "a name for its first key (default: admin)",
            },
            ...limitProperties,
          },
        },
        response: {
          201: {
            type: "object",
            required: ["project", "key"],
            properties: { project: ProjectSchema, key: NewKeySchema },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const { name, keyName, maxConcurrentJobs, requestsPerMinute, allowStdioServers } =
        request.body;
      try {
        const { project, key } = await app.db.$transaction(async (tx) => {
          const created = await tx.project.create({
            data: {
              name,
              maxConcurrentJobs: maxConcurrentJobs ?? null,
              requestsPerMinute: requestsPerMinute ?? null,
              allowStdioServers: allowStdioServers ?? false,
            },
          });
          const made = await createApiKey(tx, keyName ?? "admin", {
            projectId: created.id,
            scopes: SCOPES,
          });
          return { project: created, key: made };
        });
        request.log.info({ projectId: project.id, name }, "project created");
        return reply.code(201).send({
          project: await projectView(project),
          key: { ...keyView(key.row), key: key.key },
        });
      } catch (error) {
        if (!isUniqueViolation(error)) throw error;
        throw conflict("project_exists", `a project named "${name}" exists already`);
      }
    },
  );

  app.patch(
    "/projects/:id",
    {
      config: { scope: "operator" },
      schema: {
        operationId: "updateProject",
        summary:
          "Set a project's limits and whether it may run stdio servers (operator only); they apply within 10 s everywhere",
        params: { type: "object", required: ["id"], properties: { id: { type: "string" } } },
        body: {
          type: "object",
          additionalProperties: false,
          minProperties: 1,
          properties: limitProperties,
        },
        response: { 200: ProjectSchema, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!isUuid(id)) throw missingProject(id);
      const updated = await app.db.project.updateMany({ where: { id }, data: request.body });
      if (updated.count === 0) throw missingProject(id);
      app.forgetKeys((auth) => auth.projectId === id);
      // Its servers' sessions here and on every worker start again under the new rule (a stdio
      // server of a project no longer allowed is stopped, and never starts again).
      if (request.body.allowStdioServers !== undefined) await app.mcp.changed(id, "*");
      request.log.info({ projectId: id, limits: request.body }, "project limits set");
      return projectView(await app.db.project.findUniqueOrThrow({ where: { id } }));
    },
  );
}
