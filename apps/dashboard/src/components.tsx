import type { ComponentChildren } from "preact";
import type { JobStatus } from "./api.ts";

export function StatusBadge({ status }: { status: JobStatus | "running" | string }) {
  return (
    <span class={`badge badge-${status}`} data-status={status}>
      {status}
    </span>
  );
}

export function Panel(props: {
  title: ComponentChildren;
  actions?: ComponentChildren;
  children: ComponentChildren;
  id?: string;
}) {
  return (
    <section class="panel" id={props.id}>
      <header class="panel-head">
        <h2>{props.title}</h2>
        {props.actions}
      </header>
      <div class="panel-body">{props.children}</div>
    </section>
  );
}

export function Notice({
  kind = "error",
  children,
}: {
  kind?: "error" | "info";
  children: ComponentChildren;
}) {
  return (
    <div class={`notice notice-${kind}`} role={kind === "error" ? "alert" : "status"}>
      {children}
    </div>
  );
}

export function LiveDot({ state }: { state: "connecting" | "live" | "closed" }) {
  const label = state === "live" ? "live" : state === "connecting" ? "connecting…" : "ended";
  return (
    <span class={`live live-${state}`} title="updates as they happen (server-sent events)">
      <span class="live-dot" />
      {label}
    </span>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

/** Turtle's mark: a shell. */
export function Logo({ size = 22 }: { size?: number }) {
  return (
    <svg width={size} height={size} viewBox="0 0 32 32" aria-hidden="true" class="logo">
      <ellipse cx="16" cy="18" rx="13" ry="10" fill="#2f9e44" />
      <path d="M16 10l5 3v6l-5 3-5-3v-6z" fill="#8ce99a" />
      <circle cx="28" cy="12" r="3" fill="#2f9e44" />
    </svg>
  );
}
