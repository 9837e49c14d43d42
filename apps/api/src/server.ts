// The API process: configuration from the environment (and `.env`, whose values never override
// the environment's), listen, and a graceful close on SIGTERM/SIGINT (a second signal exits now).
import { existsSync } from "node:fs";
import { ConfigError, loadConfig } from "@turtle/core";
import { buildApp } from "./app.ts";

if (existsSync(".env")) process.loadEnvFile(".env");

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`turtle api: ${error.message}\n`);
  process.exit(1);
}

let app: Awaited<ReturnType<typeof buildApp>>;
try {
  app = await buildApp({ config });
} catch (error) {
  // A plugin could not start: unreadable MCP_SERVERS_FILE, Postgres or Redis unreachable.
  process.stderr.write(`turtle api: cannot start: ${(error as Error).message}\n`);
  process.exit(1);
}
try {
  await app.listen({ host: config.HOST, port: config.PORT });
} catch (error) {
  app.log.fatal({ err: error }, "could not start");
  await app.close().catch(() => {});
  process.exit(1);
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.once(signal, () => {
    app.log.info(`${signal}: closing`);
    process.once(signal, () => process.exit(1));
    // Waits end at close (their answer says the job is still running); a connection that still
    // lingers after this long (a client that opened one and sent nothing) is cut.
    setTimeout(() => app.server.closeAllConnections(), 10_000).unref();
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, "close failed");
        process.exit(1);
      },
    );
  });
}
