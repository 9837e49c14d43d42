// The browser the dashboard test drives: Debian's Chromium, installed from Debian's packages the
// first time the test needs it (or CHROMIUM_PATH, to use another build).
import { existsSync } from "node:fs";
import { aptInstall } from "@turtle/core";

const DEBIAN_CHROMIUM = "/usr/bin/chromium";

/** Flags for a headless run as root on a machine without outside network. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** The path of a Chromium to launch, installing Debian's package when there is none. */
export function chromiumPath(): string {
  const chosen = process.env.CHROMIUM_PATH;
  if (chosen !== undefined && chosen !== "") {
    if (!existsSync(chosen)) throw new Error(`CHROMIUM_PATH ${chosen} does not exist`);
    return chosen;
  }
  if (existsSync(DEBIAN_CHROMIUM)) return DEBIAN_CHROMIUM;
  if (process.getuid?.() !== 0) {
    throw new Error(
      "the dashboard test needs Chromium: install Debian's package (apt-get install chromium) or set CHROMIUM_PATH",
    );
  }
  aptInstall(["chromium"]);
  if (!existsSync(DEBIAN_CHROMIUM))
    throw new Error("apt-get installed chromium, yet it is missing");
  return DEBIAN_CHROMIUM;
}
