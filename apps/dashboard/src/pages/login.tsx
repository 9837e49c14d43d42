import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { ApiError, api, type Session } from "../api.ts";
import { Logo, Notice } from "../components.tsx";

/**
 * Where to go after logging in: a page of this site only. The browser's own URL parser decides,
 * so `/\\evil.example`, tabs and other tricks that a browser reads as another site stay here.
 */
function nextPath(query: Record<string, string>): string {
  let target: URL;
  try {
    target = new URL(query.next ?? "/dashboard", window.location.origin);
  } catch {
    return "/dashboard";
  }
  if (target.origin !== window.location.origin || target.pathname === "/dashboard/login") {
    return "/dashboard";
  }
  return `${target.pathname}${target.search}${target.hash}`;
}

export function LoginPage({ onLogin }: { onLogin: (session: Session) => void }) {
  const location = useLocation();
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await api<Session>("/v1/session", { method: "POST", body: { key } });
      const next = nextPath(location.query);
      if (!next.startsWith("/dashboard")) {
        // Another app of this server (the queue board): a full page load.
        window.location.assign(next);
        return;
      }
      onLogin(session);
      location.route(next, true);
    } catch (caught) {
      setError(caught instanceof ApiError ? caught.message : String(caught));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="login">
      <form class="login-card" onSubmit={submit}>
        <h1 class="brand">
          <Logo size={28} /> Turtle
        </h1>
        <p class="muted">Log in with an API key. The browser keeps a session, not the key.</p>
        <label for="key">API key</label>
        <input
          id="key"
          name="key"
          type="password"
          autocomplete="current-password"
          placeholder="tt_…"
          value={key}
          onInput={(event) => setKey((event.target as HTMLInputElement).value)}
          required
        />
        {error !== null && <Notice>{error}</Notice>}
        <button type="submit" class="primary" disabled={busy || key.trim() === ""}>
          {busy ? "Logging in…" : "Log in"}
        </button>
        <p class="muted small">
          The key is in <code>.env</code> as <code>TURTLE_API_KEY</code> after{" "}
          <code>npm run setup</code>.
        </p>
      </form>
    </main>
  );
}
