import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { createApiKey } from "@turtle/api";
import { freePort, generateSecretsKey } from "@turtle/core";
import { createDb } from "@turtle/db";
import { createTestDatabase } from "@turtle/test-support/database";
import { type Figure, percentile } from "./measure.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const CONTROL_SERVER = join(ROOT, "packages/bindings/test/servers/control-server.ts");

/**
 * A 3-step job submitted over HTTP with `?wait=`, warm API and worker, against a raw MCP SDK
 * client making the same 3 calls to the same stdio server.
 */
export async function benchApi(): Promise<Figure[]> {
  const database = await createTestDatabase("bench_api");
  const db = createDb(database.url);
  const { key } = await createApiKey(db, "bench");
  await db.$disconnect();
  const port = await freePort();
  const env = {
    DATABASE_URL: database.url,
    TURTLE_QUEUE: `bench-api-${randomBytes(4).toString("hex")}`,
    PORT: String(port),
    LOG_LEVEL: "silent",
    SECRETS_KEY: generateSecretsKey(),
    // Counted (its cost is measured) but never reached.
    PROJECT_REQUESTS_PER_MINUTE: "10000000",
    // The control server lives in the repository: confined servers see it only when listed.
    STDIO_SANDBOX_PATHS: dirname(CONTROL_SERVER),
  };
  const base = `http://127.0.0.1:${port}`;
  const children: ChildProcess[] = [
    spawn(process.execPath, ["apps/api/src/server.ts"], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: "ignore",
    }),
    await start(
      ["--no-node-snapshot", "apps/worker/src/main.ts"],
      { ...env, LOG_LEVEL: "info" },
      /worker ready/,
    ),
  ];
  for (
    let i = 0;
    !(await fetch(`${base}/healthz`).then(
      (r) => r.ok,
      () => false,
    ));
    i++
  ) {
    if (i > 300) throw new Error("the API did not come up");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const headers = { authorization: `Bearer ${key}`, "content-type": "application/json" };
  try {
    const registered = await fetch(`${base}/v1/servers`, {
      method: "POST",
      headers,
      body: JSON.stringify({ name: "control", command: process.execPath, args: [CONTROL_SERVER] }),
    });
    if (registered.status !== 201) throw new Error(`register: ${await registered.text()}`);
    const code =
      "await control.noop({ step: 1 });\nawait control.noop({ step: 2 });\nawait control.noop({ step: 3 });\nreturn 3;";
    const submit = async () => {
      const started = performance.now();
      const response = await fetch(`${base}/v1/jobs?wait=10`, {
        method: "POST",
        headers,
        body: JSON.stringify({ code, servers: ["control"] }),
      });
      const job = (await response.json()) as { status: string };
      if (job.status !== "succeeded") throw new Error(`bench job: ${JSON.stringify(job)}`);
      return performance.now() - started;
    };
    for (let i = 0; i < 30; i++) await submit();
    const latencies: number[] = [];
    for (let i = 0; i < 300; i++) latencies.push(await submit());
    const raw = await rawThreeCalls(300);
    return [
      {
        name: "3-step job over HTTP with ?wait, p50",
        unit: "ms",
        value: percentile(latencies, 50),
        baseline: { name: "raw MCP SDK client, 3 calls, p50", value: percentile(raw, 50) },
        target: { kind: "max", value: 15 },
      },
      {
        name: "3-step job over HTTP with ?wait, p99",
        unit: "ms",
        value: percentile(latencies, 99),
        baseline: { name: "raw MCP SDK client, 3 calls, p99", value: percentile(raw, 99) },
        target: { kind: "max", value: 50 },
      },
    ];
  } finally {
    await Promise.all(
      children.map(
        (child) =>
          new Promise<void>((resolve) => {
            child.once("exit", () => resolve());
            child.kill("SIGTERM");
          }),
      ),
    );
    await database.drop();
  }
}

async function rawThreeCalls(times: number): Promise<number[]> {
  const client = new Client({ name: "bench", version: "1" });
  await client.connect(
    new StdioClientTransport({ command: process.execPath, args: [CONTROL_SERVER] }),
  );
  const latencies: number[] = [];
  for (let i = 0; i < times + 30; i++) {
    const started = performance.now();
    for (let step = 1; step <= 3; step++)
      await client.callTool({ name: "noop", arguments: { step } });
    if (i >= 30) latencies.push(performance.now() - started);
  }
  await client.close();
  return latencies;
}

function start(args: string[], env: Record<string, string>, ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    let text = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (ready.test(text)) {
        text = "";
        resolve(child);
      }
      if (text.length > 10_000) text = text.slice(-1000);
    });
    child.once("exit", (code) => reject(new Error(`${args.at(-1)} exited with ${code}`)));
  });
}
