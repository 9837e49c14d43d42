// `npm run setup`: makes a machine ready to run Turtle, and is safe to run again (a second run
// changes nothing).
//
//   1. loads .env if present (the environment wins over it);
//   2. creates the database if it does not exist, then applies prisma/migrations;
//   3. makes sure there is an API key: TURTLE_API_KEY from the environment/.env is registered if
//      the database does not know it yet (a fresh database, a container); without one, a new key
//      is made and written to .env (created from .env.example) as TURTLE_API_KEY;
//   4. makes sure there is a SECRETS_KEY (a new one is written to .env), and seals with it the
//      secrets of servers registered before secrets were encrypted;
//   5. makes sure bubblewrap and slirp4netns are installed (as root, from Debian's packages),
//      which confine stdio MCP servers and give them a network of their own (the defaults).
//
// Options:
//   --new-key          also create another key and print it (once: only its hash is stored)
//   --name <name>      a label for the key created
//   --dotenv <path>    the .env to read and write (default: .env at the repository root)
import { chmodSync, copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { API_KEY_MIN_LENGTH, createApiKey, hashApiKey, storeApiKey } from "@turtle/api";
import {
  ConfigError,
  createSecretBox,
  generateSecretsKey,
  loadConfig,
  resealServers,
  type SecretBox,
} from "@turtle/core";
import { createDb, ensureDatabase, migrate } from "@turtle/db";
import { ensureBubblewrap } from "./bubblewrap.ts";

const { values: options } = parseArgs({
  options: {
    "new-key": { type: "boolean", default: false },
    name: { type: "string" },
    dotenv: { type: "string" },
  },
});
const envFile = resolve(options.dotenv ?? fileURLToPath(new URL("../.env", import.meta.url)));
const envExample = fileURLToPath(new URL("../.env.example", import.meta.url));
const say = (line: string) => process.stdout.write(`setup: ${line}\n`);

function fail(message: string): never {
  process.stderr.write(`setup: ${message}\n`);
  process.exit(1);
}

if (existsSync(envFile)) process.loadEnvFile(envFile);
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) fail(error.message);
  throw error;
}

// Where the database is, without its password.
const target = new URL(config.DATABASE_URL);
target.password = "";
const where = `${target.host}${target.pathname}`;
try {
  await ensureDatabase(config.DATABASE_URL);
  const applied = await migrate(config.DATABASE_URL);
  say(
    applied.length === 0
      ? `database ${where} is up to date`
      : `database ${where}: applied ${applied.join(", ")}`,
  );
} catch (error) {
  fail(`cannot prepare the database at ${where}: ${(error as Error).message}`);
}

const db = createDb(config.DATABASE_URL, { max: 1 });
try {
  const existing = process.env.TURTLE_API_KEY?.trim();
  if (existing) {
    if (existing.length < API_KEY_MIN_LENGTH) {
      fail(`TURTLE_API_KEY is too short to be a safe key (under ${API_KEY_MIN_LENGTH} characters)`);
    }
    const row = await db.apiKey.findUnique({ where: { hash: hashApiKey(existing) } });
    if (row === null) {
      await storeApiKey(db, existing, options.name ?? "TURTLE_API_KEY");
      say("registered the API key in TURTLE_API_KEY");
    } else if (row.revokedAt !== null) {
      fail("TURTLE_API_KEY is revoked: remove it from .env and run setup again for a new one");
    } else {
      say("the API key in TURTLE_API_KEY is registered");
    }
  } else {
    const { key } = await createApiKey(db, options.name ?? "default");
    writeEnv("TURTLE_API_KEY", key);
    say(`created an API key and wrote it to ${envFile} as TURTLE_API_KEY`);
  }
  let secretsKey = process.env.SECRETS_KEY?.trim();
  if (!secretsKey) {
    secretsKey = generateSecretsKey();
    writeEnv("SECRETS_KEY", secretsKey);
    say(`created a key for servers' secrets and wrote it to ${envFile} as SECRETS_KEY`);
  }
  let box: SecretBox;
  try {
    box = createSecretBox({ ...config, SECRETS_KEY: secretsKey });
  } catch (error) {
    fail((error as Error).message);
  }
  // Registrations from before secrets were encrypted are sealed now.
  const sealed = await resealServers(db, box, { all: false });
  if (sealed.length > 0) say(`sealed the secrets of ${sealed.join(", ")} under SECRETS_KEY`);
  if (options["new-key"]) {
    const { key, row } = await createApiKey(db, options.name ?? "extra");
    say(`created API key ${row.prefix}… (${row.name}); it is shown once, only its hash is kept:`);
    process.stdout.write(`${key}\n`);
  }
} finally {
  await db.$disconnect();
}
ensureBubblewrap();

/** Sets a variable in the .env file, creating the file from .env.example if needed. */
function writeEnv(name: string, value: string): void {
  if (!existsSync(envFile)) {
    if (existsSync(envExample)) copyFileSync(envExample, envFile);
    else writeFileSync(envFile, "");
  }
  const text = readFileSync(envFile, "utf8");
  const line = `${name}=${value}`;
  const existing = new RegExp(`^${name}=.*$`, "m");
  const updated = existing.test(text)
    ? text.replace(existing, line)
    : `${text}${text === "" || text.endsWith("\n") ? "" : "\n"}${line}\n`;
  writeFileSync(envFile, updated);
  chmodSync(envFile, 0o600);
}
