// How times, durations and values read on the dashboard.

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** "12 s ago", "3 min ago", then the date. */
export function ago(iso: string | null, now = Date.now()): string {
  if (iso === null) return "—";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86_400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleString();
}

export function clock(iso: string | null): string {
  return iso === null ? "—" : new Date(iso).toLocaleTimeString();
}

/**
 * From one time to another, or to now while it is still going (never below zero: `now` ticks
 * once a second, and a clock may lag the server's by a little).
 */
export function between(from: string | null, to: string | null, now = Date.now()): number | null {
  if (from === null) return null;
  return Math.max(0, (to === null ? now : Date.parse(to)) - Date.parse(from));
}

export function shortId(id: string): string {
  return id.slice(0, 8);
}

export function json(value: unknown): string {
  if (value === undefined) return "undefined";
  return JSON.stringify(value, null, 2) ?? String(value);
}
