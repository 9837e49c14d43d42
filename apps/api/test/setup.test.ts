// `npm run setup` as users run it: a real process against a database that does not exist yet.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  ConfigSchema,
  createSecretBox,
  DEFAULT_PROJECT_ID,
  generateSecretsKey,
} from "@turtle/core";
import { createDb, type Db } from "@turtle/db";
import { createTestDatabase, REPO_ROOT, type TestDatabase } from "@turtle/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateApiKey, hashApiKey } from "../src/index.ts";

const run = promisify(execFile);
const SETUP = `${REPO_ROOT}scripts/setup.ts`;

let dir: string;
let database: TestDatabase;
let db: Db;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "turtle-setup-"));
  // A name on the test server, dropped again so that setup has to create it.
  database = await createTestDatabase("setup");
  await database.drop();
  db = createDb(database.url, { max: 1 });
});

afterAll(async () => {
  await db.$disconnect();
  await database.drop();
  rmSync(dir, { recursive: true, force: true });
});

function setup(envFile: string, args: string[] = [], env: Record<string, string> = {}) {
  return run(process.execPath, [SETUP, "--dotenv", envFile, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "", DATABASE_URL: database.url, ...env },
  });
}

describe("npm run setup", () => {
  it("creates the database, migrates it, and writes a new key to .env (from .env.example)", async () => {
    const envFile = join(dir, ".env");
    const { stdout } = await setup(envFile);
    expect(stdout).toContain("applied 20261124000000_init");
    expect(stdout).toContain("created an API key");
    expect(stdout).toContain("created a key for servers' secrets");

    const text = readFileSync(envFile, "utf8");
    expect(text).toContain("# DATABASE_URL=");
    const key = /^TURTLE_API_KEY=(tt_[A-Za-z0-9_-]{43})$/m.exec(text)?.[1];
    expect(key).toBeDefined();
    expect(stdout).not.toContain(String(key));
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    const secretsKey = /^SECRETS_KEY=(\S+)$/m.exec(text)?.[1] ?? "";
    expect(Buffer.from(secretsKey, "base64")).toHaveLength(32);
    expect(stdout).not.toContain(secretsKey);
    const rows = await db.apiKey.findMany();
    expect(rows.map((row) => row.hash)).toEqual([hashApiKey(String(key))]);
  });

  it("changes nothing when run again", async () => {
    const envFile = join(dir, ".env");
    const before = readFileSync(envFile, "utf8");
    const { stdout } = await setup(envFile);
    expect(stdout).toContain("is up to date");
    expect(stdout).toContain("is registered");
    expect(readFileSync(envFile, "utf8")).toBe(before);
    expect(await db.apiKey.count()).toBe(1);
  });

  it("adds and prints another key with --new-key, leaving .env alone", async () => {
    const envFile = join(dir, ".env");
    const before = readFileSync(envFile, "utf8");
    const { stdout } = await setup(envFile, ["--new-key", "--name", "ci"]);
    const key = stdout.trim().split("\n").at(-1) ?? "";
    expect(key).toMatch(/^tt_[A-Za-z0-9_-]{43}$/);
    expect(readFileSync(envFile, "utf8")).toBe(before);
    const row = await db.apiKey.findUniqueOrThrow({ where: { hash: hashApiKey(key) } });
    expect(row.name).toBe("ci");
    expect(await db.apiKey.count()).toBe(2);
  });

  it("registers a key given in the environment (e.g. to a container) instead of writing one", async () => {
    const envFile = join(dir, "absent.env");
    const key = generateApiKey();
    const { stdout } = await setup(envFile, [], {
      TURTLE_API_KEY: key,
      SECRETS_KEY: generateSecretsKey(),
    });
    expect(stdout).toContain("registered the API key in TURTLE_API_KEY");
    expect(await db.apiKey.count({ where: { hash: hashApiKey(key) } })).toBe(1);
    expect(existsSync(envFile)).toBe(false);

    await expect(
      setup(envFile, [], { TURTLE_API_KEY: "short", SECRETS_KEY: generateSecretsKey() }),
    ).rejects.toMatchObject({
      stderr: expect.stringContaining("TURTLE_API_KEY is too short"),
    });
  });

  it("appends the key to an .env that lacks the line, and stops on a bad setting", async () => {
    const envFile = join(dir, "custom.env");
    writeFileSync(envFile, "LOG_LEVEL=warn");
    await setup(envFile);
    expect(readFileSync(envFile, "utf8")).toMatch(
      /^LOG_LEVEL=warn\nTURTLE_API_KEY=tt_\S+\nSECRETS_KEY=\S+\n$/,
    );
    await expect(setup(envFile, [], { SECRETS_KEY: "too-short" })).rejects.toMatchObject({
      stderr: expect.stringContaining("SECRETS_KEY must be 32 random bytes"),
    });

    await expect(setup(envFile, [], { PORT: "eighty" })).rejects.toMatchObject({
      stderr: expect.stringContaining('PORT="eighty"'),
    });
  });
});

describe("servers' secrets", () => {
  const legacy = { projectId: DEFAULT_PROJECT_ID, name: "legacy" };
  const ROTATE = `${REPO_ROOT}scripts/rotate-secrets.ts`;
  const rotate = (env: Record<string, string>) =>
    run(process.execPath, [ROTATE], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? "", DATABASE_URL: database.url, ...env },
    });

  it("are sealed by setup when registered before encryption, and rotate to a new key", async () => {
    // A registration from before secrets were encrypted: its token in the clear.
    await db.server.create({
      data: {
        projectId: DEFAULT_PROJECT_ID,
        name: "legacy",
        config: { command: "node", envNames: ["TOKEN"] },
        secrets: { env: { TOKEN: "clear-as-day" } },
      },
    });
    const oldKey = generateSecretsKey();
    const envFile = join(dir, "secrets.env");
    const { stdout } = await setup(envFile, [], { SECRETS_KEY: oldKey });
    expect(stdout).toContain("sealed the secrets of legacy under SECRETS_KEY");
    const sealed = await db.server.findUniqueOrThrow({ where: { projectId_name: legacy } });
    expect(JSON.stringify(sealed.secrets)).not.toContain("clear-as-day");
    const oldBox = createSecretBox({ SECRETS_KEY: oldKey });
    expect(oldBox.open(legacy, sealed.secrets)).toEqual({ env: { TOKEN: "clear-as-day" } });

    // Rotation: the new key seals, the old one still opens; every row is sealed again.
    const newKey = generateSecretsKey();
    const rotated = await rotate({ SECRETS_KEY: newKey, SECRETS_READ_KEYS: oldKey });
    expect(rotated.stdout).toContain("sealed the secrets of legacy under SECRETS_KEY");
    const row = await db.server.findUniqueOrThrow({ where: { projectId_name: legacy } });
    const newBox = createSecretBox({ SECRETS_KEY: newKey });
    expect(newBox.isCurrent(row.secrets)).toBe(true);
    expect(newBox.open(legacy, row.secrets)).toEqual({ env: { TOKEN: "clear-as-day" } });
    expect(() => oldBox.open(legacy, row.secrets)).toThrow(/sealed with key [0-9a-f]{16}/);
    const again = await rotate({ SECRETS_KEY: newKey });
    expect(again.stdout).toContain("already");
    // Without the key that sealed them, the rotation says which key it needs.
    await expect(rotate({ SECRETS_KEY: generateSecretsKey() })).rejects.toMatchObject({
      stderr: expect.stringContaining("neither SECRETS_KEY"),
    });
    await db.server.delete({ where: { projectId_name: legacy } });
  });
});

describe(".env.example", () => {
  it("documents every setting, each with a comment line", () => {
    const text = readFileSync(`${REPO_ROOT}.env.example`, "utf8");
    const lines = text.split("\n");
    for (const name of [...Object.keys(ConfigSchema.shape), "TURTLE_API_KEY"]) {
      const at = lines.findIndex((line) => new RegExp(`^(# )?${name}=`).test(line));
      expect(at, name).toBeGreaterThan(0);
      expect(lines[at - 1], name).toMatch(/^# \S/);
      expect(lines[at - 1], name).not.toMatch(/^# [A-Z_]+=/);
    }
  });
});
