// Debian's packages the project's scripts and tests install on a fresh machine (as root).
import { execFileSync } from "node:child_process";

/** `apt-get install` of `packages`, updating the package lists first if the install fails. */
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
