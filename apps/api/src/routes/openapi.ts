import swaggerUi from "@fastify/swagger-ui";
import type { TypedInstance } from "../typed-instance.ts";

/**
 * The OpenAPI document, built from every route's schemas, and a page to browse it at /docs
 * (Swagger UI). Neither needs an API key: they describe the API, they do not use it.
 */
export default async function openapiRoutes(app: TypedInstance) {
  app.get("/openapi.json", { config: { public: true }, schema: { hide: true } }, async () =>
    app.swagger(),
  );
  await app.register(async (docs) => {
    docs.addHook("onRoute", (route) => {
      route.config = { ...route.config, public: true };
    });
    await docs.register(swaggerUi, {
      routePrefix: "/docs",
      uiConfig: { docExpansion: "list", deepLinking: true, persistAuthorization: true },
    });
  });
}
