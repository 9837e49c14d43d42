// `npm run secrets:rotate`: seals every registered server's secrets again under SECRETS_KEY —
// the third step of a key rotation (README: "Rotating SECRETS_KEY"). Each secret is opened with
// whichever key sealed it (SECRETS_KEY or one of SECRETS_READ_KEYS), so run it once every
// process knows both keys; running it again changes nothing.
import { existsSync } from "node:fs";
import { ConfigError, createSecretBox, loadConfig, resealServers } from "@turtle/core";
import { createDb } from "@turtle/db";

if (existsSync(".env")) process.loadEnvFile(".env");
const say = (line: string) => process.stdout.write(`secrets:rotate: ${line}\n`);

let config: ReturnType<typeof loadConfig>;
let box: ReturnType<typeof createSecretBox>;
try {
  config = loadConfig();
  box = createSecretBox(config);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`secrets:rotate: ${error.message}\n`);
  process.exit(1);
}

const db = createDb(config.DATABASE_URL, { max: 1 });
try {
  const resealed = await resealServers(db, box, { all: true });
  say(
    resealed.length === 0
      ? `every server's secrets are sealed under SECRETS_KEY (key ${box.keyId}) already`
      : `sealed the secrets of ${resealed.join(", ")} under SECRETS_KEY (key ${box.keyId})`,
  );
} catch (error) {
  process.stderr.write(`secrets:rotate: ${(error as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await db.$disconnect();
}
