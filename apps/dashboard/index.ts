// The dashboard is built (vite build) into dist/ by `npm ci`; the API serves it at /dashboard.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The built dashboard: index.html and the hashed files under assets/. */
export const DASHBOARD_DIST = fileURLToPath(new URL("./dist/", import.meta.url));

export function dashboardBuilt(): boolean {
  return existsSync(`${DASHBOARD_DIST}index.html`);
}
