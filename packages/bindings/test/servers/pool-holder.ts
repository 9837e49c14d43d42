// Turtle's side of a confined server, in a process of its own that a test can SIGKILL: it starts
// the control server confined (the default network, through slirp4netns), calls it once, prints
// `ready`, and waits to be killed.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createClientPool } from "../../src/index.ts";

const here = dirname(fileURLToPath(import.meta.url));
const pool = createClientPool(
  { control: { command: process.execPath, args: [join(here, "control-server.ts")] } },
  { sandbox: { kind: "bwrap", paths: [{ path: here, writable: false }] } },
);
await pool.callTool("control", "noop", {});
process.stdout.write("ready\n");
setInterval(() => {}, 60_000);
