// The commands that talk to a running Turtle over its REST API: submit (with a live progress line
// and streamed logs), jobs, logs (-f), cancel and resume. The URL and key come from flags, else
// TURTLE_URL and TURTLE_API_KEY (from the environment or .env).
import { existsSync } from "node:fs";
import { createParser } from "eventsource-parser";

export interface Remote {
  url: string;
  key: string;
}

/** An answer of the API that is not a success: its status and its own message. */
export class RemoteError extends Error {
  override name = "RemoteError";
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export function remoteFrom(
  flags: { url?: string; key?: string },
  env: NodeJS.ProcessEnv = flags.url !== undefined && flags.key !== undefined ? {} : loadEnv(),
): Remote {
  const url = (flags.url ?? env.TURTLE_URL ?? `http://127.0.0.1:${env.PORT ?? 3000}`).replace(
    /\/+$/,
    "",
  );
  const key = flags.key ?? env.TURTLE_API_KEY;
  if (key === undefined || key === "") {
    throw new Error(
      "no API key: pass --key, or set TURTLE_API_KEY (npm run setup writes one to .env)",
    );
  }
  let protocol: string | undefined;
  try {
    protocol = new URL(url).protocol;
  } catch {}
  if (protocol !== "http:" && protocol !== "https:") {
    throw new Error(
      `--url must be an http:// or https:// URL, got ${JSON.stringify(url)} (try http://${url.replace(/^\w+:\/\//, "")})`,
    );
  }
  return { url, key };
}

function loadEnv(): NodeJS.ProcessEnv {
  if (existsSync(".env")) process.loadEnvFile(".env");
  return process.env;
}

/** One request; the parsed JSON answer, or a RemoteError carrying the API's message. */
export async function request<T>(
  remote: Remote,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  let response: Response;
  try {
    response = await fetch(`${remote.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${remote.key}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    throw new Error(
      `cannot reach Turtle at ${remote.url}${cause ? ` (${cause})` : ""}: is it running?`,
    );
  }
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const message = (parsed as { error?: { message?: string } } | undefined)?.error?.message;
    throw new RemoteError(
      response.status,
      message ?? `HTTP ${response.status}: ${text.slice(0, 200)}`,
    );
  }
  return parsed as T;
}

export interface StreamEvent {
  event: string;
  data: Record<string, unknown>;
}

/**
 * A job's server-sent events, in order, until `end`. A stream that closes before (the API
 * restarting) is opened again, from the last event received, a few times.
 */
export async function* jobEvents(remote: Remote, jobId: string): AsyncGenerator<StreamEvent> {
  const position = { lastId: undefined as string | undefined, ended: false };
  for (let attempt = 0; ; attempt++) {
    yield* streamOnce(remote, jobId, position);
    if (position.ended) return;
    if (attempt >= 5) throw new Error(`lost the event stream of job ${jobId}; try again`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

async function* streamOnce(
  remote: Remote,
  jobId: string,
  position: { lastId: string | undefined; ended: boolean },
): AsyncGenerator<StreamEvent> {
  const response = await fetch(`${remote.url}/v1/jobs/${encodeURIComponent(jobId)}/events`, {
    headers: {
      authorization: `Bearer ${remote.key}`,
      accept: "text/event-stream",
      ...(position.lastId === undefined ? {} : { "last-event-id": position.lastId }),
    },
  }).catch(() => {
    throw new Error(`cannot reach Turtle at ${remote.url}: is it running?`);
  });
  if (!response.ok || response.body === null) {
    const body = (await response.json().catch(() => undefined)) as
      | { error?: { message?: string } }
      | undefined;
    throw new RemoteError(response.status, body?.error?.message ?? `HTTP ${response.status}`);
  }
  const ready: StreamEvent[] = [];
  const parser = createParser({
    onEvent(message) {
      if (message.id !== undefined) position.lastId = message.id;
      if (message.event === "end") position.ended = true;
      try {
        ready.push({ event: message.event ?? "message", data: JSON.parse(message.data) });
      } catch {
        // Not ours: skipped.
      }
    },
  });
  const decoder = new TextDecoder();
  for await (const chunk of response.body) {
    parser.feed(decoder.decode(chunk, { stream: true }));
    yield* ready.splice(0);
  }
}
