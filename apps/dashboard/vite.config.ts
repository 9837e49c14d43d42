// `npm run build -w @turtle/dashboard` (run by `npm ci`) writes dist/, which the API serves at
// /dashboard. `npm run dev -w @turtle/dashboard` serves the sources with reload, passing API
// calls to an API on TURTLE_URL (default http://127.0.0.1:3000).
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const api = process.env.TURTLE_URL ?? "http://127.0.0.1:3000";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "/dashboard/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: { outDir: "dist", emptyOutDir: true, chunkSizeWarningLimit: 300 },
  server: { proxy: { "/v1": api, "/admin": api, "/docs": api } },
});
