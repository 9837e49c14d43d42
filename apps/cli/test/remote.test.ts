// The `turtle` commands that drive a running Turtle — submit (--wait), jobs, logs (-f), cancel,
// resume — run as the real binary against a listening API and a real worker process.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  CONTROL_SERVER,
  eventually,
  REPO_ROOT,
  runTurtle,
  startFleet,
  type TestApi,
  type TestFleet,
} from "@turtle/test-support";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let fleet: TestFleet;
let api: TestApi;
let dir: string;
let url: string;

beforeAll(async () => {
  fleet = await startFleet({
    servers: () => [{ name: "control", command: process.execPath, args: [CONTROL_SERVER] }],
  });
  ({ api, dir, base: url } = fleet);
});

afterAll(async () => {
  await fleet?.close();
});

/** The real binary, from a directory without a .env, against the test API. */
const turtle = (...args: string[]) =>
  runTurtle([...args, "--url", url, "--key", api.key], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? "" },
  });

function program(name: string, code: string): string {
  const file = join(dir, name);
  writeFileSync(file, code);
  return file;
}

describe("turtle submit", () => {
  it("--wait shows progress and logs on stderr, then the result on stdout", async () => {
    const file = program(
      "fanout.ts",
      [
        "const echoed = await Promise.all([1, 2, 3].map((n) => control.echo({ n })));",
        "console.log('echoed', echoed.length);",
        "console.warn('careful');",
        "return echoed.map((e) => e.n * input.factor);",
      ].join("\n"),
    );
    const run = await turtle("submit", file, "--wait", "--input", '{"factor":10}');
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual([10, 20, 30]);
    expect(run.stderr).toContain("echoed 3\n");
    expect(run.stderr).toContain("warn: careful\n");
    expect(run.stderr).toMatch(/job [0-9a-f]{8} running · \d+ steps done/);
    expect(run.stderr).toMatch(/job [0-9a-f-]{36} succeeded · 3 steps executed, 0 replayed/);
  });

  it("without --wait prints the job's id, which jobs and logs then show", async () => {
    const file = program("quick.ts", "console.log('hello from the job');\nreturn 1;");
    const run = await turtle("submit", file);
    expect(run.code, run.stderr).toBe(0);
    const id = run.stdout.trim();
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await eventually("the job to end", async () => {
      const job = (await api.call({ method: "GET", url: `/v1/jobs/${id}` })).json();
      return job.status === "succeeded" ? true : undefined;
    });
    const listed = await turtle("jobs", "--status", "succeeded");
    expect(listed.stdout.split("\n")[0]).toMatch(/^ID\s+STATUS\s+CREATED\s+FINISHED$/);
    expect(listed.stdout).toContain(`${id}  succeeded`);
    const logs = await turtle("logs", id);
    expect(logs.stdout).toBe("hello from the job\n");
    const followed = await turtle("logs", "-f", id);
    expect(followed.stdout).toBe("hello from the job\n");
  });

  it("fails with the program's error and exit code 1", async () => {
    const file = program("broken.ts", "await control.fail({ message: 'no luck' });");
    const run = await turtle("submit", file, "--wait");
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/failed · 1 steps executed/);
    expect(run.stderr).toContain("ToolError: no luck (line 1, column 1)");
  });
});

describe("turtle logs -f, cancel and resume", () => {
  it("follows a running job's lines, cancels it, and resumes it with edited code", async () => {
    const slow = program(
      "slow.ts",
      "console.log('before');\nawait control.echo({ step: 1 });\nawait control.sleep({ ms: 30000 });\nreturn 'slow';",
    );
    const id = (await turtle("submit", slow)).stdout.trim();
    const following = turtle("logs", "-f", id);
    await eventually("the job to reach its sleep", async () => {
      const steps = (await api.call({ method: "GET", url: `/v1/jobs/${id}/steps` })).json();
      return steps.steps.length >= 1 ? true : undefined;
    });
    const cancelled = await turtle("cancel", id);
    expect(cancelled.stdout.trim()).toBe(`${id} cancelled`);
    const followed = await following;
    expect(followed.code).toBe(0);
    expect(followed.stdout).toContain("before\n");

    const fixed = program(
      "fixed.ts",
      "console.log('after');\nawait control.echo({ step: 1 });\nawait control.sleep({ ms: 200 });\nreturn 'fixed';",
    );
    const resumed = await turtle("resume", id, "--code", fixed, "--wait");
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toBe("fixed");
    // The progress line counts this run's steps: the sleep done, the echo replayed.
    expect(resumed.stderr).toMatch(/succeeded · 1 steps done, 1 replayed, 0 running/);
    // The summary counts over the job's runs: the echo ran once, in the first, and was replayed.
    expect(resumed.stderr).toMatch(/succeeded · 2 steps executed, 1 replayed/);
  });

  it("stops following at Ctrl-C, saying the job goes on", async () => {
    const slow = program("forever.ts", "await control.sleep({ ms: 30000 });\nreturn 1;");
    const child = spawn(
      process.execPath,
      [
        "--no-node-snapshot",
        `${REPO_ROOT}apps/cli/bin/turtle.js`,
        ...["submit", slow, "--wait", "--url", url, "--key", api.key],
      ],
      { cwd: dir, env: { PATH: process.env.PATH ?? "" } },
    );
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk;
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    await eventually("the progress line to show the job running", async () =>
      /running · /.test(stderr) ? true : undefined,
    );
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    const id = /stopped following job ([0-9a-f-]{36}); it goes on/.exec(stderr)?.[1] ?? "";
    const job = await api.call({ method: "GET", url: `/v1/jobs/${id}` });
    expect(job.json().status).toBe("running");
    await api.call({ method: "POST", url: `/v1/jobs/${id}/cancel` });
  });

  it("answers an unknown job, a missing key and a missing argument clearly", async () => {
    const unknown = await turtle("logs", "00000000-0000-4000-8000-000000000000");
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^turtle: no job "00000000-0000-4000-8000-000000000000"/);
    const missing = await turtle("cancel");
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/^turtle: cancel needs a job id/);
  });
});
