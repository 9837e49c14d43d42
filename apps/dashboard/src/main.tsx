// Turtle's dashboard: jobs (live list, each job's code, steps, logs and result), servers (tools
// and declarations) and workers (what runs where, throughput over time).
import "./styles.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { LocationProvider, Router, useLocation } from "preact-iso";
import { api, onUnauthorized, type Session } from "./api.ts";
import { Logo } from "./components.tsx";
import { JobPage } from "./pages/job.tsx";
import { JobsPage } from "./pages/jobs.tsx";
import { LoginPage } from "./pages/login.tsx";
import { ServersPage } from "./pages/servers.tsx";
import { WorkersPage } from "./pages/workers.tsx";

function Nav({ session, onLogout }: { session: Session; onLogout: () => void }) {
  const { path } = useLocation();
  const tab = (href: string, label: string, match: (p: string) => boolean) => (
    <a href={href} class={match(path) ? "tab active" : "tab"}>
      {label}
    </a>
  );
  return (
    <nav class="topbar">
      <a href="/dashboard" class="brand">
        <Logo /> Turtle
      </a>
      {tab("/dashboard", "Jobs", (p) => p === "/dashboard" || p.startsWith("/dashboard/jobs"))}
      {tab("/dashboard/servers", "Servers", (p) => p.startsWith("/dashboard/servers"))}
      {tab("/dashboard/workers", "Workers", (p) => p.startsWith("/dashboard/workers"))}
      {session.project.operator && (
        <a href="/admin/queues" class="tab" target="_blank" rel="noopener">
          Queue ↗
        </a>
      )}
      <a href="/docs" class="tab" target="_blank" rel="noopener">
        API ↗
      </a>
      <span class="spacer" />
      <span
        class="who"
        title={`API key ${session.key.prefix}… (${session.key.scopes.join(", ")}) of project ${session.project.name}`}
      >
        <span class="project">{session.project.name}</span> · {session.key.name}
      </span>
      {session.authenticatedBy === "session" && (
        <button type="button" class="ghost" onClick={onLogout}>
          Log out
        </button>
      )}
    </nav>
  );
}

function NotFound(_props: { default?: boolean }) {
  return (
    <main class="page">
      <h1>Not here</h1>
      <p>
        Nothing lives at this address. <a href="/dashboard">Back to the jobs.</a>
      </p>
    </main>
  );
}

function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const location = useLocation();

  useEffect(() => {
    api<Session>("/v1/session")
      .then(setSession)
      .catch(() => setSession(null));
    return onUnauthorized(() => setSession(null));
  }, []);

  const onLogin = location.path === "/dashboard/login";
  useEffect(() => {
    if (session === null && !onLogin) {
      location.route(`/dashboard/login?next=${encodeURIComponent(location.url)}`, true);
    }
  }, [session, onLogin, location]);

  if (session === undefined) return <main class="page loading">Loading…</main>;
  if (session === null || onLogin) {
    return <LoginPage onLogin={setSession} />;
  }
  const logout = async () => {
    await api("/v1/session", { method: "DELETE" }).catch(() => {});
    setSession(null);
  };
  return (
    <>
      <Nav session={session} onLogout={logout} />
      <Router>
        <JobsPage path="/dashboard" />
        <JobsPage path="/dashboard/jobs" />
        <JobPage path="/dashboard/jobs/:id" />
        <ServersPage path="/dashboard/servers" />
        <ServersPage path="/dashboard/servers/:name" />
        <WorkersPage path="/dashboard/workers" />
        <NotFound default />
      </Router>
    </>
  );
}

const root = document.getElementById("app");
if (root !== null) {
  render(
    <LocationProvider scope="/dashboard">
      <App />
    </LocationProvider>,
    root,
  );
}
