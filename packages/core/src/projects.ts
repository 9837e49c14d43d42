// Projects (tenants) and what the API and workers share about them: the project everything
// stored before projects existed belongs to, the scopes of API keys, and how a server is named
// across projects. The count of each project's active jobs is in active-jobs.ts.

/** The operator's project, made by the migration that introduced projects (and by setup). */
export const DEFAULT_PROJECT_ID = "00000000-0000-4000-8000-000000000001";
export const DEFAULT_PROJECT_NAME = "default";

export type Scope = "submit" | "read" | "admin";
export const SCOPES: readonly Scope[] = ["submit", "read", "admin"];

/** Project names: lowercase letters, digits and dashes, starting with a letter or digit. */
export const PROJECT_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

/**
 * A server across projects: the key of connection pools, limiters and the `servers` channel, and
 * what a server's sealed secrets are bound to (so a row's secrets do not open in another project).
 */
export function serverRef(projectId: string, name: string): string {
  return `${projectId}/${name}`;
}

/** The project and name of a server ref (see serverRef). */
export function parseServerRef(ref: string): { projectId: string; name: string } | null {
  const slash = ref.indexOf("/");
  if (slash <= 0) return null;
  return { projectId: ref.slice(0, slash), name: ref.slice(slash + 1) };
}
