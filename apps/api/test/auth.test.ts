import { request as httpRequest } from "node:http";
import { Writable } from "node:stream";
import { eventually, it, startApi, type TestApi } from "@turtle/test-support";
import { describe, expect } from "vitest";
import { buildApp, loggerOptions } from "../src/app.ts";
import { createApiKey, generateApiKey, hashApiKey } from "../src/index.ts";

let api: TestApi;

it.beforeAll(async ({ api: started }) => {
  api = started;
});

describe("API keys", () => {
  it("are tt_ plus 32 random bytes, stored as a SHA-256 hash only", async () => {
    const key = generateApiKey();
    expect(key).toMatch(/^tt_[A-Za-z0-9_-]{43}$/);
    const { key: created, row } = await createApiKey(api.db, "ci");
    expect(row.hash).toBe(hashApiKey(created));
    expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(created);
    expect(row.prefix).toBe(created.slice(0, 9));
  });

  it("guard every route but /healthz, /openapi.json and the /docs page", async () => {
    const health = await api.app.inject({ method: "GET", url: "/healthz" });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toEqual({ ok: true });
    const openapi = await api.app.inject({ method: "GET", url: "/openapi.json" });
    expect(openapi.statusCode).toBe(200);
    expect(Object.keys(openapi.json().paths)).toContain("/v1/jobs");
    const docs = await api.app.inject({ method: "GET", url: "/docs/" });
    expect(docs.statusCode).toBe(200);
    expect(docs.headers["content-type"]).toMatch(/^text\/html/);
    const docsSpec = await api.app.inject({ method: "GET", url: "/docs/json" });
    expect(Object.keys(docsSpec.json().paths)).toEqual(
      expect.arrayContaining(["/v1/jobs", "/v1/check", "/v1/jobs/{id}/events"]),
    );

    for (const [method, url] of [
      ["GET", "/v1/jobs"],
      ["POST", "/v1/jobs"],
      ["GET", "/v1/servers"],
      ["GET", "/v1/types"],
      ["POST", "/v1/check"],
      ["GET", "/v1/jobs/00000000-0000-0000-0000-000000000000/events"],
      ["POST", "/mcp"],
      ["POST", "/v1/jobs/00000000-0000-0000-0000-000000000000/cancel"],
      ["GET", "/v1/no-such-route"],
    ] as const) {
      const response = await api.app.inject({ method, url });
      expect(response.statusCode, `${method} ${url}`).toBe(401);
      expect(response.json().error.code).toBe("unauthorized");
    }
  });

  it("reject missing, malformed, unknown and revoked keys with a message saying what to send", async () => {
    const cases: Array<[string | undefined, RegExp]> = [
      [undefined, /missing Authorization header/],
      ["Basic abc", /malformed Authorization header/],
      ["Bearer", /malformed Authorization header/],
      [`Bearer ${generateApiKey()}`, /invalid or revoked API key/],
    ];
    for (const [authorization, message] of cases) {
      const response = await api.app.inject({
        method: "GET",
        url: "/v1/jobs",
        headers: authorization === undefined ? {} : { authorization },
      });
      expect(response.statusCode).toBe(401);
      expect(response.json()).toEqual({
        error: { code: "unauthorized", message: expect.stringMatching(message) },
      });
    }

    const { key, row } = await createApiKey(api.db, "revoked");
    await api.db.apiKey.update({ where: { id: row.id }, data: { revokedAt: new Date() } });
    const revoked = await api.app.inject({
      method: "GET",
      url: "/v1/jobs",
      headers: { authorization: `Bearer ${key}` },
    });
    expect(revoked.statusCode).toBe(401);
  });

  it("accept a valid key and record when it was last used", async () => {
    const { key, row } = await createApiKey(api.db, "used");
    expect(row.lastUsedAt).toBeNull();
    const response = await api.app.inject({
      method: "GET",
      url: "/v1/jobs",
      headers: { authorization: `bearer ${key}` },
    });
    expect(response.statusCode).toBe(200);
    const used = await eventuallyUsed(row.id);
    expect(used.getTime()).toBeGreaterThanOrEqual(row.createdAt.getTime());
  });
});

function eventuallyUsed(id: string): Promise<Date> {
  return eventually("lastUsedAt to be written", async () => {
    const row = await api.db.apiKey.findUniqueOrThrow({ where: { id } });
    return row.lastUsedAt ?? undefined;
  });
}

describe("logging", () => {
  it("redacts API keys and servers' env and headers wherever they are logged", async () => {
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const config = { ...api.config, LOG_LEVEL: "trace" as const };
    const app = await buildApp({ config, logger: { ...loggerOptions(config), stream } });
    await app.ready();
    try {
      app.log.info({ env: { TOKEN: "secret-1" }, headers: { Authorization: "secret-2" } }, "top");
      app.log.info(
        { server: { env: { TOKEN: "secret-3" }, headers: { "X-Key": "secret-4" } } },
        "one",
      );
      app.log.info({ servers: { files: { env: { TOKEN: "secret-5" } } } }, "two");
      app.log.info({ req: { headers: { authorization: "Bearer secret-6" } } }, "request");
      // A whole request cycle at trace level, with a secret in the body and the header.
      await app.inject({
        method: "POST",
        url: "/v1/servers",
        headers: { authorization: `Bearer secret-7` },
        payload: { name: "x", command: "node", env: { TOKEN: "secret-8" } },
      });
      await app.inject({
        method: "POST",
        url: "/v1/servers",
        headers: { authorization: `Bearer ${api.key}` },
        payload: { name: "logged", command: "/nonexistent", env: { TOKEN: "secret-9" } },
      });
      await app.inject({
        method: "GET",
        url: "/v1/servers/logged/tools",
        headers: { authorization: `Bearer ${api.key}` },
      });
    } finally {
      await app.close();
    }
    const log = lines.join("");
    expect(log).toContain('"msg":"top"');
    expect(log).toContain("[redacted]");
    expect(log).not.toMatch(/secret-\d/);
    expect(log).not.toContain(api.key);
  });
});

/** One real HTTP request from `from` (a loopback address), with `key` as its bearer key. */
function fromAddress(
  base: string,
  from: string,
  key: string,
  path = "/v1/jobs",
): Promise<{ status: number; retryAfter?: string; code?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${base}${path}`,
      { localAddress: from, headers: { authorization: `Bearer ${key}` } },
      (res) => {
        let body = "";
        res.on("data", (chunk: Buffer) => {
          body += chunk;
        });
        res.on("end", () => {
          const code = res.statusCode === 200 ? undefined : JSON.parse(body).error?.code;
          resolve({
            status: res.statusCode ?? 0,
            ...(res.headers["retry-after"]
              ? { retryAfter: String(res.headers["retry-after"]) }
              : {}),
            ...(code ? { code } : {}),
          });
        });
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("failed authentication", () => {
  it("is limited per client address: guesses get 429, valid keys and other addresses go on", async () => {
    const limited = await startApi({ env: { AUTH_FAILURES_PER_MINUTE: "20" } });
    try {
      const base = await limited.app.listen({ host: "127.0.0.1", port: 0 });
      // A valid key in use from the address before the guessing starts.
      expect((await fromAddress(base, "127.0.0.1", limited.key)).status).toBe(200);
      const answers = [];
      for (let i = 0; i < 100; i++) {
        answers.push(await fromAddress(base, "127.0.0.1", generateApiKey()));
      }
      expect(answers.slice(0, 20).every((answer) => answer.status === 401)).toBe(true);
      for (const answer of answers.slice(20)) {
        expect(answer).toMatchObject({ status: 429, code: "too_many_auth_failures" });
        expect(Number(answer.retryAfter)).toBeGreaterThan(0);
      }
      // Logging in is guessing too.
      const login = await limited.app.inject({
        method: "POST",
        url: "/v1/session",
        remoteAddress: "127.0.0.1",
        payload: { key: generateApiKey() },
      });
      expect(login.statusCode).toBe(429);
      // The key already in use keeps working from the same address, at once.
      expect((await fromAddress(base, "127.0.0.1", limited.key)).status).toBe(200);
      // Another address is not blocked: its valid key works, its first wrong key is a 401.
      const { key: other } = await createApiKey(limited.db, "other");
      expect((await fromAddress(base, "127.0.0.2", other)).status).toBe(200);
      expect((await fromAddress(base, "127.0.0.2", generateApiKey())).status).toBe(401);
      // A burst of guesses all at once from a third address: each counts before its look-up,
      // so no more than the limit are answered 401 (looked up), the rest 429.
      const burst = await Promise.all(
        Array.from({ length: 60 }, () => fromAddress(base, "127.0.0.3", generateApiKey())),
      );
      expect(burst.filter((answer) => answer.status === 401).length).toBeLessThanOrEqual(20);
      expect(burst.filter((answer) => answer.status === 429).length).toBeGreaterThanOrEqual(40);
      // A client's first burst with a valid key not yet cached counts once, and passes.
      const { key: fresh } = await createApiKey(limited.db, "fresh");
      const first = await Promise.all(
        Array.from({ length: 40 }, () => fromAddress(base, "127.0.0.4", fresh)),
      );
      expect(first.every((answer) => answer.status === 200)).toBe(true);
    } finally {
      await limited.close();
    }
  });

  it("behind a proxy, counts the address the proxy saw, not one the client wrote", async () => {
    const proxied = await startApi({
      env: { AUTH_FAILURES_PER_MINUTE: "5", TRUST_PROXY: "true" },
    });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 30; i++) {
        // The client forges the first entry; the proxy appends the address it saw.
        const answer = await proxied.app.inject({
          method: "GET",
          url: "/v1/jobs",
          remoteAddress: "127.0.0.9",
          headers: {
            authorization: `Bearer ${generateApiKey()}`,
            "x-forwarded-for": `10.9.${i}.1, 198.51.100.7`,
          },
        });
        statuses.push(answer.statusCode);
      }
      expect(statuses.filter((status) => status === 401)).toHaveLength(5);
      expect(statuses.filter((status) => status === 429)).toHaveLength(25);
    } finally {
      await proxied.close();
    }
  });
});
