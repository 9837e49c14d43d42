import { useEffect, useRef, useState } from "preact/hooks";

export type StreamState = "connecting" | "live" | "closed";

/**
 * An EventSource on `url` (null: none) calling `handlers[event]` with each event's parsed data.
 * The browser reconnects a stream that drops, sending Last-Event-ID; `closeOn` names an event
 * after which the stream is done.
 */
export function useEventStream(
  url: string | null,
  handlers: Record<string, (data: unknown) => void>,
  closeOn?: string,
): StreamState {
  const [state, setState] = useState<StreamState>("connecting");
  const current = useRef(handlers);
  current.current = handlers;
  useEffect(() => {
    if (url === null) return;
    const source = new EventSource(url, { withCredentials: true });
    setState("connecting");
    source.onopen = () => setState("live");
    source.onerror = () =>
      setState(source.readyState === EventSource.CLOSED ? "closed" : "connecting");
    const names = Object.keys(current.current);
    const listeners = names.map((name) => {
      const listener = (event: MessageEvent) => {
        let data: unknown = null;
        try {
          data = JSON.parse(event.data as string);
        } catch {
          return;
        }
        current.current[name]?.(data);
        if (name === closeOn) {
          source.close();
          setState("closed");
        }
      };
      source.addEventListener(name, listener);
      return listener;
    });
    return () => {
      for (const [i, name] of names.entries()) {
        source.removeEventListener(name, listeners[i] as EventListener);
      }
      source.close();
    };
  }, [url, closeOn]);
  return state;
}

/** Calls `task` now and every `ms` while the page is shown. */
export function useEvery(ms: number, task: () => void, deps: unknown[] = []): void {
  const current = useRef(task);
  current.current = task;
  useEffect(() => {
    current.current();
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") current.current();
    }, ms);
    return () => clearInterval(timer);
  }, [ms, ...deps]);
}

/** Re-renders every `ms`, for times that say "12 s ago". */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}
