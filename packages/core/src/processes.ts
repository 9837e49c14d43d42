/**
 * What starting processes needs, shared by the scripts (`npm start`, the demo, setup), the
 * benchmarks and the tests: a free port to give one, how long to wait before starting one that
 * died, and Debian's packages a fresh machine lacks (bubblewrap, Chromium).
 */
import { execFileSync } from "node:child_process";
import { createServer } from "node:net";

/** `apt-get install` of `packages` (as root), updating the package lists first if that fails. */
export function aptInstall(packages: readonly string[]): void {
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", ...packages], {
      env,
      stdio: "pipe",
      timeout: 600_000,
    });
  try {
    install();
  } catch {
    // The package lists may be missing or stale.
    execFileSync("apt-get", ["update"], { env, stdio: "pipe", timeout: 600_000 });
    install();
  }
}

/** A TCP port nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        resolve(typeof address === "object" && address !== null ? address.port : 0),
      );
    });
  });
}

/**
 * How long to wait before starting a process that died: `initialMs`, doubling with each death up
 * to `maxMs`, and back to `initialMs` once a run has stayed up `stableMs`. A process that keeps
 * dying (Postgres away) is retried ever more slowly instead of in a busy loop.
 */
export class Backoff {
  private next: number;
  readonly initialMs: number;
  readonly maxMs: number;
  readonly stableMs: number;

  constructor(options: { initialMs?: number; maxMs?: number; stableMs?: number } = {}) {
    this.initialMs = options.initialMs ?? 1_000;
    this.maxMs = options.maxMs ?? 30_000;
    this.stableMs = options.stableMs ?? 60_000;
    this.next = this.initialMs;
  }

  /** The wait before the next start, for a run that died after `upMs`. */
  died(upMs: number): number {
    if (upMs >= this.stableMs) this.next = this.initialMs;
    const delay = this.next;
    this.next = Math.min(this.next * 2, this.maxMs);
    return delay;
  }
}
