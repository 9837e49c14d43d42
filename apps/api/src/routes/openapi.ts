import type { FastifyInstance } from "fastify";

/** The OpenAPI document, built from every route's schemas (no API key needed). */
export default async function openapiRoutes(app: FastifyInstance) {
  app.get("/openapi.json", { config: { public: true }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
}
