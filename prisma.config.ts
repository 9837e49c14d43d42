import { defineConfig } from "prisma/config";

// `prisma generate` needs only the schema; `prisma migrate deploy` (where Prisma's engine can be
// fetched) reads DATABASE_URL. Turtle's own `npm run setup` applies the same migrations here.
export default defineConfig({
  schema: "prisma/schema.prisma",
  migrations: { path: "prisma/migrations" },
  datasource: { url: process.env.DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/turtle" },
});
