// The fastify instance route plugins receive. With the json-schema-to-ts type provider, a route's
// JSON Schemas — params, querystring, body, each response — are also its TypeScript types: the
// handler's `request` is typed from the schemas that validate it, and what it returns or sends is
// checked against the schema that serializes it. Schemas kept in a variable need `as const`
// (inline ones are inferred as written).
import type { FastifyPluginAsyncJsonSchemaToTs } from "@fastify/type-provider-json-schema-to-ts";

export type TypedInstance = Parameters<FastifyPluginAsyncJsonSchemaToTs>[0];
