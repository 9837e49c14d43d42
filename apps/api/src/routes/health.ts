import type { TypedInstance } from "../typed-instance.ts";

/** How long a dependency may take to answer before the API counts it as down. */
const CHECK_MS = 2_000;

function within<T>(promise: Promise<T>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), CHECK_MS);
  });
  return Promise.race([
    promise.then(
      () => true,
      () => false,
    ),
    deadline,
  ]).finally(() => clearTimeout(timer));
}

export default async function healthRoutes(app: TypedInstance) {
  const HealthSchema = {
    type: "object",
    required: ["ok"],
    properties: {
      ok: { type: "boolean" },
      postgres: { type: "boolean" },
      redis: { type: "boolean" },
    },
  } as const;

  app.get(
    "/healthz",
    {
      config: { public: true },
      schema: {
        operationId: "getHealth",
        summary: "Whether Postgres and Redis answer (no API key needed)",
        response: { 200: HealthSchema, 503: HealthSchema },
      },
      logLevel: "warn",
    },
    async (_request, reply) => {
      const [postgres, redis] = await Promise.all([
        within(app.db.$queryRaw`SELECT 1`),
        within(app.redis.ping()),
      ]);
      if (postgres && redis) return { ok: true };
      return reply.code(503).send({ ok: false, postgres, redis });
    },
  );
}
