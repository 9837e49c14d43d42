// Browsers: logging in to the dashboard with an API key (a session cookie, never the key),
// what the cookie may do, and the two dashboards it opens — /dashboard and /admin/queues.
import { Writable } from "node:stream";
import { it, startApi, type TestApi } from "@turtle/test-support";
import { describe, expect } from "vitest";
import { createApiKey } from "../src/index.ts";

let api: TestApi;
const lines: Array<Record<string, unknown>> = [];

/** The file's API logs here, for the tests that read what it logged. */
const stream = new Writable({
  write(chunk: Buffer, _encoding, done) {
    for (const line of chunk.toString().split("\n")) if (line !== "") lines.push(JSON.parse(line));
    done();
  },
});

it.override("apiOptions", { app: { logger: { level: "info", stream } } });

it.beforeAll(async ({ api: started }) => {
  api = started;
});

/** Logs in with `key`; returns the session cookie (name=value). */
async function login(key = api.key): Promise<string> {
  const response = await api.app.inject({ method: "POST", url: "/v1/session", payload: { key } });
  expect(response.statusCode).toBe(200);
  const setCookie = String(response.headers["set-cookie"]);
  expect(setCookie).toMatch(/^turtle_session=[A-Za-z0-9_-]{43};/);
  expect(setCookie).toContain("HttpOnly");
  expect(setCookie).toContain("SameSite=Strict");
  expect(setCookie).toContain("Max-Age=43200");
  expect(setCookie).not.toContain(key);
  return setCookie.split(";")[0] ?? "";
}

describe("POST /v1/session", () => {
  it("trades a valid key for a session cookie that authenticates reads", async () => {
    const cookie = await login();
    const me = await api.app.inject({ method: "GET", url: "/v1/session", headers: { cookie } });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({ key: { name: "test" }, authenticatedBy: "session" });
    const jobs = await api.app.inject({ method: "GET", url: "/v1/jobs", headers: { cookie } });
    expect(jobs.statusCode).toBe(200);
    const bearer = await api.call({ method: "GET", url: "/v1/session" });
    expect(bearer.json().authenticatedBy).toBe("bearer");
  });

  it("answers 401 for a wrong key and 400 for a missing one, setting no cookie", async () => {
    const wrong = await api.app.inject({
      method: "POST",
      url: "/v1/session",
      payload: { key: "tt_not-a-key" },
    });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.message).toContain("that API key is not valid");
    expect(wrong.headers["set-cookie"]).toBeUndefined();
    const missing = await api.app.inject({ method: "POST", url: "/v1/session", payload: {} });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.message).toContain("body.key is required");
  });

  it("lets a cookie change things only from the dashboard's own origin", async () => {
    const cookie = await login();
    const payload = { code: "return 1" };
    const noOrigin = await api.app.inject({
      method: "POST",
      url: "/v1/jobs",
      headers: { cookie },
      payload,
    });
    expect(noOrigin.statusCode).toBe(403);
    expect(noOrigin.json().error.code).toBe("cross_origin");
    const otherSite = await api.app.inject({
      method: "POST",
      url: "/v1/jobs",
      headers: { cookie, origin: "https://evil.example", host: "turtle.local" },
      payload,
    });
    expect(otherSite.statusCode).toBe(403);
    const sameSite = await api.app.inject({
      method: "POST",
      url: "/v1/jobs",
      headers: { cookie, origin: "http://turtle.local", host: "turtle.local" },
      payload,
    });
    expect(sameSite.statusCode).toBe(202);
  });

  it("ends at logout, and with the key it came from when that is revoked", async () => {
    const cookie = await login();
    const logout = await api.app.inject({
      method: "DELETE",
      url: "/v1/session",
      headers: { cookie },
    });
    expect(logout.statusCode).toBe(204);
    expect(String(logout.headers["set-cookie"])).toMatch(/^turtle_session=;/);
    const after = await api.app.inject({ method: "GET", url: "/v1/jobs", headers: { cookie } });
    expect(after.statusCode).toBe(401);
    expect(after.json().error.message).toContain("the dashboard session has ended");

    const { key, row } = await createApiKey(api.db, "to revoke");
    const revokedCookie = await login(key);
    await api.db.apiKey.update({ where: { id: row.id }, data: { revokedAt: new Date() } });
    // Another app (no cache of the key yet) sees at once that the key behind it is revoked.
    const fresh = await startApi({ database: undefined, config: api.config });
    try {
      const revoked = await fresh.app.inject({
        method: "GET",
        url: "/v1/jobs",
        headers: { cookie: revokedCookie },
      });
      expect(revoked.statusCode).toBe(401);
    } finally {
      await fresh.app.close();
    }
  });
});

describe("behind a reverse proxy (TRUST_PROXY=true)", () => {
  it("marks the cookie Secure over https, and checks origins against the forwarded host", async () => {
    const proxied = await startApi({ env: { TRUST_PROXY: "true" } });
    try {
      const login = await proxied.app.inject({
        method: "POST",
        url: "/v1/session",
        headers: { "x-forwarded-proto": "https" },
        payload: { key: proxied.key },
      });
      expect(String(login.headers["set-cookie"])).toContain("Secure");
      const cookie = String(login.headers["set-cookie"]).split(";")[0] ?? "";
      const submitted = await proxied.app.inject({
        method: "POST",
        url: "/v1/jobs",
        headers: {
          cookie,
          host: "10.0.0.5:3000",
          "x-forwarded-host": "turtle.example.com",
          origin: "https://turtle.example.com",
        },
        payload: { code: "return 1" },
      });
      expect(submitted.statusCode).toBe(202);
    } finally {
      await proxied.close();
    }
  });
});

describe("the dashboards", () => {
  it("serve /dashboard's pages and files without a key (they hold no data)", async () => {
    for (const url of ["/dashboard", "/dashboard/jobs/abc", "/dashboard/workers"]) {
      const page = await api.app.inject({ method: "GET", url });
      expect(page.statusCode, url).toBe(200);
      expect(page.headers["content-type"]).toMatch(/^text\/html/);
      expect(page.body).toContain('<div id="app">');
    }
    const index = (await api.app.inject({ method: "GET", url: "/dashboard" })).body;
    const script = /src="(\/dashboard\/assets\/[^"]+\.js)"/.exec(index)?.[1];
    expect(script).toBeDefined();
    const asset = await api.app.inject({ method: "GET", url: script ?? "" });
    expect(asset.statusCode).toBe(200);
    expect(asset.headers["cache-control"]).toContain("immutable");
    const openapi = await api.app.inject({ method: "GET", url: "/openapi.json" });
    const paths = Object.keys(openapi.json().paths);
    expect(paths.some((path) => path.startsWith("/dashboard") || path.startsWith("/admin"))).toBe(
      false,
    );
    expect(paths).toEqual(expect.arrayContaining(["/v1/session", "/v1/workers", "/v1/events"]));
  });

  it("keep BullMQ's board behind the key: a browser goes to the login page first", async () => {
    const page = await api.app.inject({
      method: "GET",
      url: "/admin/queues",
      headers: { accept: "text/html" },
    });
    expect(page.statusCode).toBe(302);
    expect(page.headers.location).toBe("/dashboard/login?next=%2Fadmin%2Fqueues");
    const apiCall = await api.app.inject({ method: "GET", url: "/admin/queues/api/queues" });
    expect(apiCall.statusCode).toBe(401);

    const cookie = await login();
    const board = await api.app.inject({
      method: "GET",
      url: "/admin/queues",
      headers: { cookie, accept: "text/html" },
    });
    expect(board.statusCode).toBe(200);
    expect(board.body).toContain("Turtle queue");
    const queues = await api.call({ method: "GET", url: "/admin/queues/api/queues" });
    expect(queues.statusCode).toBe(200);
    const [queue] = queues.json().queues;
    expect(queue.name).toBe(api.config.TURTLE_QUEUE);
    // Read-only: removing or retrying entries behind Turtle's back would lose accepted jobs.
    expect(queue.readOnlyMode).toBe(true);
    const name = encodeURIComponent(api.config.TURTLE_QUEUE);
    for (const [method, url] of [
      ["PUT", `/admin/queues/api/queues/${name}/pause`],
      ["PUT", `/admin/queues/api/queues/${name}/clean/completed`],
    ] as const) {
      const refused = await api.call({ method, url });
      expect(refused.statusCode, url).toBe(405);
    }
    // "Pause all" passes over read-only queues.
    await api.call({ method: "PUT", url: "/admin/queues/api/queues/pause" });
    expect(await api.app.queue.isPaused()).toBe(false);
  });
});

describe("logs", () => {
  it("are JSON lines, each about a job carrying its jobId", async () => {
    const submitted = await api.call({ method: "POST", url: "/v1/jobs", payload: { code: "1" } });
    const { id } = submitted.json();
    await api.call({ method: "GET", url: `/v1/jobs/${id}` });
    await api.call({ method: "GET", url: `/v1/jobs/${id}/steps` });
    await api.call({ method: "POST", url: `/v1/jobs/${id}/cancel` });
    const about = lines.filter((line) => JSON.stringify(line).includes(id));
    // Each request's "incoming request" and "request completed" lines, but the submission's
    // first: its id is known once the job exists.
    expect(about.length).toBeGreaterThanOrEqual(7);
    for (const line of about) {
      expect(line.jobId, JSON.stringify(line)).toBe(id);
      expect(typeof line.level).toBe("number");
      expect(typeof line.time).toBe("number");
    }
    const completed = about.filter((line) => line.msg === "request completed");
    expect(completed.map((line) => (line.res as { statusCode: number }).statusCode)).toEqual([
      202, 200, 200, 202,
    ]);
  });
});
