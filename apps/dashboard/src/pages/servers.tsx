import { useEffect, useState } from "preact/hooks";
import { ApiError, api, type Server, type Tool } from "../api.ts";
import { Empty, Notice, Panel } from "../components.tsx";

function ServerDetail({ name }: { name: string }) {
  const [tools, setTools] = useState<Tool[] | null>(null);
  const [types, setTypes] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [filter, setFilter] = useState("");

  useEffect(() => {
    setTools(null);
    setTypes(null);
    setError(null);
    api<{ tools: Tool[] }>(`/v1/servers/${encodeURIComponent(name)}/tools`)
      .then((answer) => setTools(answer.tools))
      .catch((caught) => setError(caught instanceof ApiError ? caught.message : String(caught)));
    fetch(`/v1/types?servers=${encodeURIComponent(name)}`, { credentials: "same-origin" })
      .then(async (response) => setTypes(response.ok ? await response.text() : null))
      .catch(() => setTypes(null));
  }, [name]);

  const needle = filter.trim().toLowerCase();
  const shown = (tools ?? []).filter(
    (tool) =>
      needle === "" ||
      tool.name.toLowerCase().includes(needle) ||
      (tool.description ?? "").toLowerCase().includes(needle),
  );

  return (
    <div class="server-detail">
      {error !== null && <Notice>{error}</Notice>}
      <Panel
        title={tools === null ? "Tools" : `Tools (${tools.length})`}
        actions={
          <input
            type="search"
            placeholder="Filter tools"
            value={filter}
            onInput={(e) => setFilter((e.target as HTMLInputElement).value)}
          />
        }
      >
        {tools === null && error === null && <p class="muted">Asking the server…</p>}
        <ul class="tools">
          {shown.map((tool) => (
            <li data-tool={tool.name}>
              <span class="mono tool-name">
                {name}.{tool.name}
              </span>
              {tool.annotations?.readOnlyHint === true && <span class="chip">read-only</span>}
              {tool.annotations?.destructiveHint === true && (
                <span class="chip chip-failed">destructive</span>
              )}
              {tool.description && <p class="muted">{tool.description}</p>}
            </li>
          ))}
        </ul>
      </Panel>
      <Panel
        title="TypeScript declarations"
        actions={<span class="muted small">what programs see</span>}
      >
        {types === null ? (
          <p class="muted">Loading…</p>
        ) : (
          <pre class="code declarations">{types}</pre>
        )}
      </Panel>
    </div>
  );
}

export function ServersPage({ name }: { name?: string; path?: string }) {
  const [servers, setServers] = useState<Server[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<{ servers: Server[] }>("/v1/servers")
      .then((answer) => setServers(answer.servers))
      .catch((caught) => setError(caught instanceof ApiError ? caught.message : String(caught)));
  }, []);
  const selected = name ?? servers?.[0]?.name;

  return (
    <main class="page">
      <div class="page-head">
        <h1>Servers</h1>
      </div>
      {error !== null && <Notice>{error}</Notice>}
      {servers !== null && servers.length === 0 ? (
        <Empty>
          No MCP servers registered. Add one with <code>POST /v1/servers</code> or an{" "}
          <code>mcpServers</code> file (<code>MCP_SERVERS_FILE</code>).
        </Empty>
      ) : (
        <div class="split">
          <ul class="server-list">
            {(servers ?? []).map((server) => (
              <li>
                <a
                  href={`/dashboard/servers/${encodeURIComponent(server.name)}`}
                  class={server.name === selected ? "active" : ""}
                >
                  <strong>{server.name}</strong>
                  <span class="muted small">
                    {server.transport === "stdio"
                      ? [server.command, ...(server.args ?? [])].join(" ")
                      : server.url}
                  </span>
                  {(server.env?.length ?? 0) + (server.headers?.length ?? 0) > 0 && (
                    <span class="muted small">
                      secrets: {[...(server.env ?? []), ...(server.headers ?? [])].join(", ")}
                    </span>
                  )}
                </a>
              </li>
            ))}
          </ul>
          {selected !== undefined && <ServerDetail name={selected} />}
        </div>
      )}
    </main>
  );
}
