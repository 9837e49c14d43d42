import { createDb, type Db } from "@turtle/db";
import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";

declare module "fastify" {
  interface FastifyInstance {
    db: Db;
  }
}

/** Prisma Client on the driver adapter; every query of the API goes through it. */
export default fp(
  async function db(app: FastifyInstance, options: { url: string }) {
    const client = createDb(options.url);
    app.decorate("db", client);
    app.addHook("onClose", async () => {
      await client.$disconnect();
    });
  },
  { name: "db" },
);
