// Type-checking before a run: POST /v1/check, and POST /v1/jobs with `typecheck: true`, against
// the declarations of real registered servers.

import { CONTROL_SERVER, it, type TestApi } from "@turtle/test-support";
import { describe, expect } from "vitest";

let api: TestApi;

it.beforeAll(async ({ api: started }) => {
  api = started;
  const registered = await api.call({
    method: "POST",
    url: "/v1/servers",
    payload: { name: "control", command: process.execPath, args: [CONTROL_SERVER] },
  });
  expect(registered.statusCode).toBe(201);
});

const GOOD = [
  "const slept = await control.sleep({ ms: input.ms ?? 1 });",
  "try {",
  "  await control.fail({ message: 'no' });",
  "} catch (error) {",
  "  console.warn((error as ToolError).tool);",
  "}",
  "return slept;",
].join("\n");

describe("POST /v1/check", () => {
  it("passes a program that fits the declarations", async () => {
    const response = await api.call({ method: "POST", url: "/v1/check", payload: { code: GOOD } });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ ok: true, diagnostics: [], truncated: false });
  });

  it("returns each type error at its line and column in the submitted code", async () => {
    const response = await api.call({
      method: "POST",
      url: "/v1/check",
      payload: {
        code: "const a = 1;\nawait control.sleep({ ms: 'soon' });\nawait control.sleeep({ ms: 1 });",
        servers: ["control"],
      },
    });
    expect(response.statusCode).toBe(200);
    const body = response.json();
    expect(body.ok).toBe(false);
    expect(body.summary).toMatch(
      /^the program has 2 type errors; the first, at line 2, column 23:/,
    );
    expect(body.diagnostics).toEqual([
      expect.objectContaining({ line: 2, column: 23, code: 2322 }),
      expect.objectContaining({ line: 3, column: 15, code: 2551 }),
    ]);
    expect(body.diagnostics[1].message).toMatch(
      /'sleeep' does not exist .* Did you mean 'sleep'\?/,
    );
  });

  it("reports syntax errors the same way", async () => {
    const response = await api.call({
      method: "POST",
      url: "/v1/check",
      payload: { code: "const x = ;\nreturn x;" },
    });
    expect(response.json()).toMatchObject({
      ok: false,
      diagnostics: [expect.objectContaining({ line: 1, column: 11, code: 1109 })],
    });
  });

  it("answers bad requests with 400 naming the field", async () => {
    const cases = [
      { payload: {}, message: /body\.code is required/ },
      { payload: { code: "   " }, message: /body\.code is blank/ },
      {
        payload: { code: "return 1", servers: ["nope"] },
        message: /body\.servers names servers that are not registered: "nope"/,
      },
      { payload: { code: 1 }, message: /body\.code must be a string/ },
    ];
    for (const { payload, message } of cases) {
      const response = await api.call({ method: "POST", url: "/v1/check", payload });
      expect(response.statusCode).toBe(400);
      expect(response.json().error.message).toMatch(message);
    }
  });

  it("needs the API key", async () => {
    const response = await api.app.inject({
      method: "POST",
      url: "/v1/check",
      payload: { code: "return 1" },
    });
    expect(response.statusCode).toBe(401);
  });
});

describe("POST /v1/jobs with typecheck", () => {
  it("refuses a program with type errors (400 type_errors, diagnostics) and makes no job", async () => {
    const before = await api.db.job.count();
    const response = await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "return control.sleep({});", typecheck: true },
    });
    expect(response.statusCode).toBe(400);
    const { error } = response.json();
    expect(error.code).toBe("type_errors");
    expect(error.message).toMatch(
      /^body\.code: the program has 1 type error; the first, at line 1, column 22: .*'ms'/,
    );
    expect(error.message).toMatch(/send typecheck: false to skip the check/);
    expect(error.diagnostics).toEqual([
      expect.objectContaining({ line: 1, column: 22, code: 2345 }),
    ]);
    expect(await api.db.job.count()).toBe(before);
  });

  it("queues a program that type-checks, and does not check unless asked", async () => {
    const checked = await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: GOOD, typecheck: true },
    });
    expect(checked.statusCode).toBe(202);
    const unchecked = await api.call({
      method: "POST",
      url: "/v1/jobs",
      payload: { code: "return control.sleep({});" },
    });
    expect(unchecked.statusCode).toBe(202);
  });
});
