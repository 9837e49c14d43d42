import type { FastifyInstance } from "fastify";
import fp from "fastify-plugin";
import { Redis } from "ioredis";

declare module "fastify" {
  interface FastifyInstance {
    /** Commands and publishes (never subscribed: subscribers have connections of their own). */
    redis: Redis;
  }
}

/**
 * The API's command connection. Unlike a worker's, it gives up on a command after two
 * reconnection attempts: a request should fail fast (503) while Redis is down, not hang.
 */
export default fp(
  async function redis(app: FastifyInstance, options: { url: string }) {
    const connection = new Redis(options.url, {
      connectionName: "turtle-api",
      maxRetriesPerRequest: 2,
    });
    // Errors also reach the commands that fail; without a listener ioredis prints each one.
    connection.on("error", (error) => app.log.debug({ err: error }, "redis connection error"));
    app.decorate("redis", connection);
    app.addHook("onClose", async () => {
      await connection.quit().catch(() => connection.disconnect());
    });
  },
  { name: "redis" },
);
