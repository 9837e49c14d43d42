// `turtle keys` as the real binary against a listening API: an admin key lists, creates and
// revokes its project's keys; the new key works with the scopes it was given.

import { runTurtle, startApi, type TestApi } from "@turtle/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let api: TestApi;
let url: string;

beforeAll(async () => {
  api = await startApi();
  url = await api.app.listen({ host: "127.0.0.1", port: 0 });
});

afterAll(async () => {
  await api?.close();
});

const turtle = (key: string, ...args: string[]) =>
  runTurtle(["keys", ...args, "--url", url, "--key", key], {
    env: { PATH: process.env.PATH ?? "" },
    cwd: "/",
  });

describe("turtle keys", () => {
  it("creates a key with scopes, lists it, and revokes it", async () => {
    const made = await turtle(api.key, "create", "ci-reader", "--scopes", "read");
    expect(made.code, made.stderr).toBe(0);
    const key = made.stdout.trim();
    expect(key).toMatch(/^tt_/);
    expect(made.stderr).toMatch(/created key tt_.{6}… \(ci-reader, read\); it is shown once/);

    const listed = await turtle(api.key);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^ID\s+NAME\s+PREFIX\s+SCOPES\s+LAST USED/);
    expect(listed.stdout).toMatch(/ci-reader\s+tt_.{6}…\s+read\s+never/);
    expect(listed.stdout).not.toContain(key);

    // The new key reads, but may not manage keys.
    const reads = await api.app.inject({
      method: "GET",
      url: "/v1/jobs",
      headers: { authorization: `Bearer ${key}` },
    });
    expect(reads.statusCode).toBe(200);
    const refused = await turtle(key);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/lacks the `admin` scope/);

    const id = /^(\S+)\s+ci-reader/m.exec(listed.stdout)?.[1] as string;
    const revoked = await turtle(api.key, "revoke", id);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stderr).toMatch(/revoked key tt_.{6}… \(ci-reader\)/);
    const after = await turtle(key);
    expect(after.stderr).toMatch(/invalid or revoked API key/);
    expect((await turtle(api.key, "--revoked")).stdout).toMatch(/ci-reader.*revoked 20/);
  });

  it("says what is missing", async () => {
    const noScopes = await turtle(api.key, "create", "x");
    expect(noScopes.code).toBe(2);
    expect(noScopes.stderr).toMatch(/keys create needs a name and scopes/);
    const badScope = await turtle(api.key, "create", "x", "--scopes", "root");
    expect(badScope.code).toBe(1);
    expect(badScope.stderr).toMatch(/scopes/);
    const unknown = await turtle(api.key, "rotate");
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown keys action "rotate"/);
  });
});
