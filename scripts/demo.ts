// `npm run demo`: Turtle end to end on this machine. Sets up the database and an API key, starts
// the API (registering the MCP servers of examples/mcp-servers.json: server-everything and
// server-memory, real servers from the npm registry) and a worker, submits the example program
// over REST, waits for it and prints its result. Then stops both processes.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "@turtle/core";
import { ROOT, startProcess, stop } from "./processes.ts";

const say = (line: string) => process.stdout.write(`demo: ${line}\n`);

const setup = spawnSync(process.execPath, ["scripts/setup.ts"], { cwd: ROOT, stdio: "inherit" });
if (setup.status !== 0) process.exit(setup.status ?? 1);
const envFile = join(ROOT, ".env");
if (existsSync(envFile)) process.loadEnvFile(envFile);
const key = process.env.TURTLE_API_KEY;
if (key === undefined) throw new Error("setup left no TURTLE_API_KEY in .env");

const port = process.env.PORT ?? String(await freePort());
const base = `http://127.0.0.1:${port}`;
const env = {
  PORT: port,
  HOST: "127.0.0.1",
  MCP_SERVERS_FILE: join(ROOT, "examples/mcp-servers.json"),
};
const output: string[] = [];
const api = startProcess("api", env, "pipe");
const worker = startProcess("worker", env, "pipe");
for (const [name, child] of [
  ["api", api],
  ["worker", worker],
] as const) {
  child.stdout?.on("data", (chunk: Buffer) => output.push(`[${name}] ${chunk}`));
  child.stderr?.on("data", (chunk: Buffer) => output.push(`[${name}] ${chunk}`));
}

async function call(method: string, path: string, body?: unknown) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

let exitCode = 1;
try {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const health = await fetch(`${base}/healthz`).catch(() => null);
    if (health?.ok) break;
    if (api.exitCode !== null || Date.now() > deadline) throw new Error("the API did not come up");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  say(`platform up at ${base} (API + 1 worker)`);
  const code = readFileSync(join(ROOT, "examples/weather-report.ts"), "utf8");
  const input = JSON.parse(readFileSync(join(ROOT, "examples/weather-report.input.json"), "utf8"));
  say("POST /v1/jobs?wait=60 with examples/weather-report.ts (servers: everything, memory)");
  const submitted = await call("POST", "/v1/jobs?wait=60", {
    code,
    input,
    servers: ["everything", "memory"],
  });
  const job = submitted.body;
  const stats = job.stats as Record<string, number> | undefined;
  say(
    `job ${job.id}: ${job.status} (${stats?.executedSteps ?? 0} steps executed, ${stats?.wallMs ?? "?"} ms)`,
  );
  for (const line of (job.logs as Array<{ message: string }> | undefined) ?? [])
    say(`log: ${line.message}`);
  if (job.status === "succeeded") {
    process.stdout.write(`${JSON.stringify(job.result, null, 2)}\n`);
    exitCode = 0;
  } else {
    process.stderr.write(`demo: the job did not succeed: ${JSON.stringify(job.error ?? job)}\n`);
  }
} catch (error) {
  process.stderr.write(`demo: ${(error as Error).message}\n${output.join("")}`);
} finally {
  await Promise.all([stop(worker), stop(api)]);
}
process.exit(exitCode);
