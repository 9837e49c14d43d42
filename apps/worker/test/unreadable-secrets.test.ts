// A job connects only to the servers its program names, so a registration whose secrets this
// worker cannot open (sealed with a key it lacks, or altered) must hold up only the jobs that
// name that server: the project's other jobs run. Those that name it are handed back (key
// missing) or fail secrets_unreadable (altered), as before.
import {
  createSecretBox,
  DEFAULT_PROJECT_ID,
  generateSecretsKey,
  type SealedSecrets,
  saveServer,
} from "@turtle/core";
import { CONTROL_SERVER, eventually, test } from "@turtle/test-support";
import { expect } from "vitest";

test("secrets a worker cannot open fail only the jobs that name their server", async ({
  platform,
  worker,
}) => {
  expect(worker).toBeDefined();
  const entry = { command: process.execPath, args: [CONTROL_SERVER], env: { TOKEN: "t" } };
  // Sealed with a key no worker of this platform has (a deployment mid-rotation).
  const otherBox = createSecretBox({ SECRETS_KEY: generateSecretsKey() });
  await saveServer(platform.db, otherBox, { projectId: DEFAULT_PROJECT_ID, name: "sealed" }, entry);
  // Sealed with the platform's key, then altered.
  const box = createSecretBox(platform.env);
  const altered = await saveServer(
    platform.db,
    box,
    { projectId: DEFAULT_PROJECT_ID, name: "altered" },
    entry,
  );
  const sealed = altered.secrets as unknown as SealedSecrets;
  await platform.db.server.update({
    where: { projectId_name: { projectId: DEFAULT_PROJECT_ID, name: "altered" } },
    data: { secrets: { ...sealed, tag: Buffer.alloc(16).toString("base64") } },
  });

  const plain = await platform.submit({ code: "return await control.echo({ a: 1 });" });
  const done = await platform.waitFor(plain.id, ["succeeded", "failed"]);
  expect(done.error).toBeNull();
  expect(done).toMatchObject({ status: "succeeded", result: { a: 1 } });

  const none = await platform.submit({ code: "return 42;" });
  expect(await platform.waitFor(none.id, ["succeeded", "failed"])).toMatchObject({
    status: "succeeded",
    result: 42,
  });

  // Naming the altered server still fails the job, saying why.
  const naming = await platform.submit({ code: "return await altered.echo({ a: 1 });" });
  expect(await platform.waitFor(naming.id, ["succeeded", "failed"])).toMatchObject({
    status: "failed",
    error: { code: "secrets_unreadable" },
  });

  // Naming the server sealed with the missing key hands the job back: queued, nothing failed.
  const waiting = await platform.submit({ code: "return await sealed.echo({ a: 1 });" });
  const back = await eventually(`job ${waiting.id} handed back`, async () => {
    const row = await platform.db.job.findUniqueOrThrow({ where: { id: waiting.id } });
    expect(row.status).not.toBe("failed");
    return row.status === "queued" && row.attempts >= 1 ? row : undefined;
  });
  expect(back.error).toBeNull();
});
