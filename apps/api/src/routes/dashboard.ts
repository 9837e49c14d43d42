// The two dashboards. /dashboard is Turtle's own (apps/dashboard, built into its dist/): the page
// and its files are public — they hold no data — and it reads everything through /v1 with the
// session cookie that logging in sets. /admin/queues is BullMQ's board (bull-board), read-only
// (removing or retrying a queue entry behind Turtle's back would lose or repeat an accepted
// job), behind the same authentication, for the operator only: its entries are every project's.

import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { FastifyAdapter } from "@bull-board/fastify";
import fastifyStatic from "@fastify/static";
import { DASHBOARD_DIST, dashboardBuilt } from "@turtle/dashboard";
import { ApiError } from "../errors.ts";
import type { TypedInstance } from "../typed-instance.ts";

export const QUEUE_BOARD_PATH = "/admin/queues";

export default async function dashboardRoutes(app: TypedInstance) {
  await app.register(async (ui) => {
    ui.addHook("onRoute", (route) => {
      route.config = { ...route.config, public: true };
      route.schema = { ...route.schema, hide: true };
    });
    await ui.register(fastifyStatic, {
      root: `${DASHBOARD_DIST}assets`,
      prefix: "/dashboard/assets/",
      // Their names change with their content.
      immutable: true,
      maxAge: "365d",
    });
    // Every other path under /dashboard is a page of the app, which routes in the browser.
    const page = async (_request: unknown, reply: import("fastify").FastifyReply) => {
      if (!dashboardBuilt()) {
        throw new ApiError(
          503,
          "dashboard_not_built",
          "the dashboard is not built: run `npm run build -w @turtle/dashboard` (npm ci does it)",
        );
      }
      return reply.header("cache-control", "no-cache").sendFile("index.html", DASHBOARD_DIST);
    };
    ui.get("/dashboard", page);
    ui.get("/dashboard/*", page);
  });

  await app.register(async (board) => {
    board.addHook("onRoute", (route) => {
      route.config = { ...route.config, scope: "operator" };
      route.schema = { ...route.schema, hide: true };
    });
    const adapter = new FastifyAdapter();
    adapter.setBasePath(QUEUE_BOARD_PATH);
    createBullBoard({
      queues: [new BullMQAdapter(app.queue, { readOnlyMode: true })],
      serverAdapter: adapter,
      options: {
        uiConfig: {
          boardTitle: "Turtle queue",
          miscLinks: [{ text: "Turtle dashboard", url: "/dashboard" }],
        },
      },
    });
    await board.register(adapter.registerPlugin(), { prefix: QUEUE_BOARD_PATH });
  });
}
