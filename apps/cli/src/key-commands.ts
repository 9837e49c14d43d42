// `turtle keys`: the API keys of the calling key's project (an admin key's), made and revoked
// through the REST API.
import { type Io, printTable } from "./job-commands.ts";
import { type Remote, request } from "./remote.ts";

interface KeyView {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  createdAt: string;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export async function listKeys(remote: Remote, revoked: boolean, io: Io): Promise<number> {
  const { keys } = await request<{ keys: KeyView[] }>(
    remote,
    "GET",
    `/v1/keys${revoked ? "?revoked=true" : ""}`,
  );
  const rows = keys.map((key) => [
    key.id,
    key.name,
    `${key.prefix}…`,
    key.scopes.join(","),
    key.lastUsedAt ?? "never",
    key.revokedAt === null ? "" : `revoked ${key.revokedAt}`,
  ]);
  printTable(["ID", "NAME", "PREFIX", "SCOPES", "LAST USED", ""], rows, io);
  return 0;
}

/** Makes a key: the key itself on stdout (shown this once), what it is on stderr. */
export async function createKey(
  remote: Remote,
  name: string,
  scopes: string[],
  io: Io,
): Promise<number> {
  const made = await request<KeyView & { key: string }>(remote, "POST", "/v1/keys", {
    name,
    scopes,
  });
  io.stderr(
    `created key ${made.prefix}… (${made.name}, ${made.scopes.join(", ")}); it is shown once, only its hash is kept:\n`,
  );
  io.stdout(`${made.key}\n`);
  return 0;
}

export async function revokeKey(remote: Remote, id: string, io: Io): Promise<number> {
  const revoked = await request<KeyView>(remote, "DELETE", `/v1/keys/${encodeURIComponent(id)}`);
  io.stderr(`revoked key ${revoked.prefix}… (${revoked.name}) at ${revoked.revokedAt}\n`);
  return 0;
}
