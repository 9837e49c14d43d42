// SERVER_CONCURRENCY bounds the calls in flight from one worker to one server of one project.
// A registration change gives the project's next jobs a fresh generation of clients while the
// old one's jobs still run: the bound must hold across the two, or a project that registers again
// and again while calls are in flight gets a fresh allowance each time.
import { createSecretBox, DEFAULT_PROJECT_ID, generateSecretsKey, saveServer } from "@turtle/core";
import { createDb, type Db } from "@turtle/db";
import { CONTROL_SERVER, test as it } from "@turtle/test-support";
import { describe, expect } from "vitest";
import { ToolHosts } from "../src/tool-hosts.ts";

let db: Db;
const box = createSecretBox({ SECRETS_KEY: generateSecretsKey() });
const sandbox = { kind: "none" } as const;

it.beforeAll(async ({ database }) => {
  db = createDb(database.url);
  const control = { command: process.execPath, args: [CONTROL_SERVER] };
  await saveServer(db, box, { projectId: DEFAULT_PROJECT_ID, name: "control" }, control);
});

it.afterAll(async () => {
  await db?.$disconnect();
});

describe("SERVER_CONCURRENCY across a registration change", () => {
  it("a call of the project's next generation waits for the old generation's call in flight", async () => {
    const hosts = new ToolHosts(db, box, { sandbox, serverConcurrency: 1 });
    try {
      const call = { namespace: "control", method: "echo", args: { a: 1 } };
      const first = await hosts.acquire(DEFAULT_PROJECT_ID, ["control"]);
      let finishFirst = () => {};
      const held = new Promise<void>((resolve) => {
        finishFirst = resolve;
      });
      let firstDone = false;
      let firstStarted = () => {};
      const started = new Promise<void>((resolve) => {
        firstStarted = resolve;
      });
      const firstCall = first.limit("control", async () => {
        await first.host.invoke(call);
        firstStarted();
        await held;
        firstDone = true;
      });
      await started;
      // The server was registered again: the project's next job gets a fresh generation.
      hosts.invalidate(DEFAULT_PROJECT_ID);
      const second = await hosts.acquire(DEFAULT_PROJECT_ID, ["control"]);
      const secondCall = second.limit("control", async () => {
        // Whether the old generation's call had ended when this one got its slot.
        const startedAfterFirst = firstDone;
        await second.host.invoke(call);
        return startedAfterFirst;
      });
      // A turn of the event loop: time enough for a call given a free slot to start.
      await new Promise((resolve) => setImmediate(resolve));
      finishFirst();
      await firstCall;
      expect(await secondCall).toBe(true);
      first.release();
      second.release();
    } finally {
      await hosts.close();
    }
  });
});
