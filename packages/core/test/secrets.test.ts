import { describe, expect, it } from "vitest";
import {
  ConfigError,
  createSecretBox,
  DEFAULT_PROJECT_ID,
  generateSecretsKey,
  loadConfig,
  SecretBox,
  SecretsError,
  SecretsKeyMissingError,
  secretsKeyId,
  turtleSecrets,
} from "../src/index.ts";

const secrets = { env: { API_TOKEN: "very-secret", OTHER: "ünïcødé ✓" } };
const server = (name: string, projectId = DEFAULT_PROJECT_ID) => ({ projectId, name });
const crm = server("crm");

function catchError(action: () => unknown): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  throw new Error("expected an error");
}

describe("SecretBox", () => {
  it("seals with AES-256-GCM under the key's id, and opens what it sealed", () => {
    const key = generateSecretsKey();
    const box = createSecretBox({ SECRETS_KEY: key });
    const sealed = box.seal(crm, secrets);
    expect(sealed).toEqual({
      v: 2,
      kid: secretsKeyId(Buffer.from(key, "base64")),
      iv: expect.stringMatching(/^[A-Za-z0-9+/]{16}$/),
      tag: expect.stringMatching(/^[A-Za-z0-9+/]{22}==$/),
      data: expect.any(String),
    });
    expect(JSON.stringify(sealed)).not.toMatch(/very-secret|API_TOKEN/);
    expect(box.open(crm, sealed)).toEqual(secrets);
    // A fresh IV each time: the same secrets never seal to the same text.
    expect(box.seal(crm, secrets).data).not.toBe(sealed.data);
    expect(box.isCurrent(sealed)).toBe(true);
  });

  it("refuses secrets altered, or moved to another server", () => {
    const box = createSecretBox({ SECRETS_KEY: generateSecretsKey() });
    const sealed = box.seal(crm, secrets);
    expect(() => box.open(server("billing"), sealed)).toThrow(SecretsError);
    // The same name in another project is another server.
    const elsewhere = server("crm", "00000000-0000-4000-8000-0000000000aa");
    expect(() => box.open(elsewhere, sealed)).toThrow(SecretsError);
    const data = Buffer.from(sealed.data, "base64");
    data[0] = (data[0] ?? 0) ^ 1;
    expect(() => box.open(crm, { ...sealed, data: data.toString("base64") })).toThrow(
      'the secrets of server "crm" do not open',
    );
    expect(() => box.open(crm, { ...sealed, tag: Buffer.alloc(16).toString("base64") })).toThrow(
      SecretsError,
    );
    // Sealed with a key the box has: altered, not a missing key.
    const tampered = { ...sealed, tag: Buffer.alloc(16).toString("base64") };
    expect(() => box.open(crm, tampered)).not.toThrow(SecretsKeyMissingError);
    expect(catchError(() => box.open(crm, tampered))).toMatchObject({
      code: "secrets_unreadable",
    });
  });

  it("opens with a read key during a rotation, and names a key it lacks", () => {
    const oldKey = generateSecretsKey();
    const newKey = generateSecretsKey();
    const sealedOld = createSecretBox({ SECRETS_KEY: oldKey }).seal(crm, secrets);
    const rolling = createSecretBox({ SECRETS_KEY: newKey, SECRETS_READ_KEYS: ` ${oldKey} ,` });
    expect(rolling.open(crm, sealedOld)).toEqual(secrets);
    expect(rolling.isCurrent(sealedOld)).toBe(false);
    const stranger = createSecretBox({ SECRETS_KEY: generateSecretsKey() });
    expect(() => stranger.open(crm, sealedOld)).toThrow(
      `sealed with key ${secretsKeyId(Buffer.from(oldKey, "base64"))}, which is neither SECRETS_KEY`,
    );
    // Nothing wrong with the value: the error names the key and the server, for whoever has it.
    const missing = catchError(() => stranger.open(crm, sealedOld));
    expect(missing).toBeInstanceOf(SecretsKeyMissingError);
    expect(missing).toBeInstanceOf(SecretsError);
    expect(missing).toMatchObject({
      code: "secrets_key_missing",
      kid: secretsKeyId(Buffer.from(oldKey, "base64")),
      server: crm,
    });
  });

  it("reads secrets stored before encryption as they are", () => {
    const box = new SecretBox(Buffer.alloc(32, 7));
    expect(box.open(server("old"), { headers: { Authorization: "Bearer x" } })).toEqual({
      headers: { Authorization: "Bearer x" },
    });
    expect(box.open(server("old"), {})).toEqual({});
    expect(box.isSealed({ env: {} })).toBe(false);
  });

  it("takes keys as base64, url-safe base64 or hex, and says what a bad one should be", () => {
    const bytes = Buffer.alloc(32, 9);
    const ids = [bytes.toString("base64"), bytes.toString("base64url"), bytes.toString("hex")].map(
      (text) => createSecretBox({ SECRETS_KEY: text }).keyId,
    );
    expect(new Set(ids).size).toBe(1);
    expect(() => createSecretBox({})).toThrow(ConfigError);
    expect(() => createSecretBox({})).toThrow("SECRETS_KEY is not set");
    expect(() => createSecretBox({ SECRETS_KEY: "c2hvcnQ=" })).toThrow(
      "SECRETS_KEY must be 32 random bytes as base64 or hex (got 5 bytes)",
    );
    expect(() =>
      createSecretBox({ SECRETS_KEY: bytes.toString("hex"), SECRETS_READ_KEYS: "nope" }),
    ).toThrow("SECRETS_READ_KEYS[0] must be 32 random bytes");
  });
});

describe("turtleSecrets", () => {
  it("lists the process's own secrets in every form a server could quote them", () => {
    const key = generateSecretsKey();
    const bytes = Buffer.from(key, "base64");
    const config = loadConfig({
      SECRETS_KEY: key,
      SECRETS_READ_KEYS: ` ${bytes.toString("hex")} `,
      DATABASE_URL: "postgresql://turtle:p%40ss-word@db:5432/turtle",
      REDIS_URL: "redis://:redis-pass@redis:6379",
    });
    const listed = turtleSecrets(config, { TURTLE_API_KEY: "tt_operator-key-of-the-deployment" });
    expect(listed).toEqual(
      expect.arrayContaining([
        key,
        bytes.toString("hex"),
        bytes.toString("base64url"),
        "postgresql://turtle:p%40ss-word@db:5432/turtle",
        "p%40ss-word",
        "p@ss-word",
        "redis://:redis-pass@redis:6379",
        "redis-pass",
        "tt_operator-key-of-the-deployment",
      ]),
    );
  });
});

describe("STDIO_SANDBOX settings", () => {
  it("default to bubblewrap on a network of its own, and read directories with :rw", () => {
    expect(loadConfig({})).toMatchObject({
      STDIO_SANDBOX: "bwrap",
      STDIO_SANDBOX_NETWORK: "isolated",
      STDIO_SANDBOX_PATHS: [],
    });
    expect(loadConfig({ STDIO_SANDBOX_PATHS: "/srv/a, /srv/b:rw" }).STDIO_SANDBOX_PATHS).toEqual([
      { path: "/srv/a", writable: false },
      { path: "/srv/b", writable: true },
    ]);
    expect(() => loadConfig({ STDIO_SANDBOX_PATHS: "data" })).toThrow(
      /STDIO_SANDBOX_PATHS="data": "data" is not an absolute path/,
    );
    expect(() => loadConfig({ STDIO_SANDBOX: "off" })).toThrow(/STDIO_SANDBOX="off"/);
    expect(loadConfig({ STDIO_SANDBOX_NETWORK: "host" }).STDIO_SANDBOX_NETWORK).toBe("host");
    expect(() => loadConfig({ STDIO_SANDBOX_NETWORK: "slirp" })).toThrow(
      /STDIO_SANDBOX_NETWORK="slirp"/,
    );
  });
});
