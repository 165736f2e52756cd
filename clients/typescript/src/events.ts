/**
 * Live updates (`GET /api/{user_id}/events`, Server-Sent Events): the events, typed, and `followEvents`,
 * which keeps one stream open for as long as you want it.
 *
 * The stream is read with `fetch`, so the token travels in the `Authorization` header, never in a URL
 * (URLs end up in consoles, proxies' logs and browser history). No runtime dependency: this file works in
 * browsers, Node 20+ and Next.js alike.
 */
import type { Task } from "./index.js";

/** A list (lists, subtasks and manual order). */
export interface TaskList {
  id: string;
  user_id: string;
  name: string;
  position: string;
  created_at: string;
  updated_at: string;
  version: number;
}

/** A task as events carry it: as `GET` returns it; the organising fields are there once the server has them. */
export type LiveTask = Task & {
  list_id?: string | null;
  parent_id?: string | null;
  position?: string;
};

/** Every event of the stream, discriminated by `type` (the SSE `event:` name is the same string). */
export type TaskEvent =
  | { type: "task.created"; task: LiveTask }
  | { type: "task.updated"; task: LiveTask }
  | { type: "task.deleted"; id: string; version: number }
  | { type: "tasks.changed"; action: "complete-all" | "clear-completed" | "list-deleted"; count: number }
  | { type: "list.created"; list: TaskList }
  | { type: "list.updated"; list: TaskList }
  | { type: "list.deleted"; id: string; version: number }
  | { type: "resync" }
  | { type: "token-expired" };

export type TaskEventType = TaskEvent["type"];

const EVENT_TYPES: ReadonlySet<string> = new Set<TaskEventType>([
  "task.created",
  "task.updated",
  "task.deleted",
  "tasks.changed",
  "list.created",
  "list.updated",
  "list.deleted",
  "resync",
  "token-expired",
]);

/** Is this parsed `data` one of the events above? (Unknown types from a newer server are skipped.) */
export function isTaskEvent(value: unknown): value is TaskEvent {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as { type?: unknown }).type === "string" &&
    EVENT_TYPES.has((value as { type: string }).type)
  );
}

/** What `followEvents` is doing, for a status line ("live", "reconnecting in 4 s"...). */
export type StreamStatus =
  | { state: "connecting" }
  | { state: "open" }
  | { state: "waiting"; ms: number; reason: "closed" | "network" | "unauthorized" | "too-many" | "unavailable" | "error"; status?: number }
  | { state: "stopped"; reason: "closed-by-you" | "forbidden" | "refused"; status?: number };

export interface FollowEventsOptions {
  /** The API's origin, e.g. `https://api.example.com` (no trailing slash). */
  baseUrl: string;
  /** The signed-in user: the token's subject. */
  userId: string;
  /**
   * The bearer token. `{ refresh: true }` means the last one was refused (expired): return a fresh one
   * (Better Auth: `(await authClient.token()).data?.token`). Return null to stop (signed out).
   */
  token: (request: { refresh: boolean }) => string | null | undefined | Promise<string | null | undefined>;
  /** Every event, in order; `id` is its SSE id (null for `resync` and `token-expired`). */
  onEvent?: (event: TaskEvent, id: string | null) => void;
  /**
   * Events may have been missed: refetch what you show (or `GET /sync` from your cursor). Called on a
   * `resync` event and on a reconnect that could not ask for the missed events (no event id yet).
   */
  resync: () => void | Promise<void>;
  onStatus?: (status: StreamStatus) => void;
  /** Where to resume: the last event id you stored (e.g. in sessionStorage). */
  lastEventId?: string | null;
  /** Stops the stream for good (as `close()` does). */
  signal?: AbortSignal;
  /** Backoff after failures: the first wait and the longest (ms). Defaults 1,000 and 30,000. */
  minDelayMs?: number;
  maxDelayMs?: number;
  fetch?: typeof fetch;
}

export interface EventStreamHandle {
  /** Close the stream; no reconnect follows. */
  close(): void;
  /** The id of the last event received, for the next `followEvents({ lastEventId })`. */
  lastEventId(): string | null;
  /** Settles when the stream stopped for good (`close()`, a 403, signed out). */
  done: Promise<void>;
}

/**
 * Follow the caller's live updates: reconnect with `Last-Event-ID` whenever the stream ends, fetch a
 * fresh token on `token-expired` and on a 401, wait out 429 and 503 (`Retry-After`, else a growing
 * backoff), and call `resync` when events may have been missed. Never logs anything (the token stays
 * out of consoles).
 */
export function followEvents(options: FollowEventsOptions): EventStreamHandle {
  const stop = new AbortController();
  if (options.signal) {
    if (options.signal.aborted) stop.abort();
    else options.signal.addEventListener("abort", () => stop.abort(), { once: true });
  }
  const state = { lastEventId: options.lastEventId ?? null };
  const done = run(options, state, stop.signal);
  return { close: () => stop.abort(), lastEventId: () => state.lastEventId, done };
}

interface RunState {
  lastEventId: string | null;
}

type Outcome =
  | { kind: "ended"; retryMs: number | null }
  | { kind: "token-expired" }
  | { kind: "status"; status: number; retryAfterMs: number | null }
  | { kind: "network" };

async function run(options: FollowEventsOptions, state: RunState, signal: AbortSignal): Promise<void> {
  const minDelay = options.minDelayMs ?? 1_000;
  const maxDelay = options.maxDelayMs ?? 30_000;
  const report = (status: StreamStatus) => options.onStatus?.(status);
  let refresh = false;
  let refreshedAndRefused = false;
  let failures = 0;
  let serverRetryMs: number | null = null;
  let connectedBefore = false;
  const backoff = () => Math.min(maxDelay, minDelay * 2 ** Math.min(failures++, 16)) * (0.75 + Math.random() / 2);

  while (!signal.aborted) {
    let token: string | null | undefined;
    try {
      token = await options.token({ refresh });
    } catch {
      token = undefined;
      if (!(await wait(backoff(), signal, report, "error"))) break;
      continue;
    }
    if (!token) {
      report({ state: "stopped", reason: "refused" });
      return;
    }
    const askedForRefresh = refresh;
    refresh = false;
    report({ state: "connecting" });
    const outcome = await connect(options, state, token, signal, () => {
      failures = 0;
      refreshedAndRefused = false;
      report({ state: "open" });
      // A reconnect without an id cannot ask for what it missed meanwhile.
      if (connectedBefore && state.lastEventId === null) void options.resync();
      connectedBefore = true;
    });
    if (signal.aborted) break;
    if (outcome.kind === "token-expired") {
      refresh = true; // reconnect at once with a fresh token
      continue;
    }
    if (outcome.kind === "ended") {
      serverRetryMs = outcome.retryMs ?? serverRetryMs;
      const ms = serverRetryMs ?? minDelay;
      if (!(await wait(ms, signal, report, "closed"))) break;
      continue;
    }
    if (outcome.kind === "network") {
      if (!(await wait(backoff(), signal, report, "network"))) break;
      continue;
    }
    const { status, retryAfterMs } = outcome;
    if (status === 401) {
      // Expired while we were away (or revoked): one immediate retry with a fresh token, then backoff.
      refresh = true;
      if (!askedForRefresh && !refreshedAndRefused) continue;
      refreshedAndRefused = true;
      if (!(await wait(backoff(), signal, report, "unauthorized", status))) break;
      continue;
    }
    if (status === 429 || status === 503) {
      const ms = retryAfterMs ?? backoff();
      if (!(await wait(ms, signal, report, status === 429 ? "too-many" : "unavailable", status))) break;
      continue;
    }
    if (status >= 500) {
      if (!(await wait(backoff(), signal, report, "error", status))) break;
      continue;
    }
    // 403 (another user's stream) and other 4xx: retrying cannot help.
    report({ state: "stopped", reason: status === 403 ? "forbidden" : "refused", status });
    return;
  }
  report({ state: "stopped", reason: "closed-by-you" });
}

async function wait(
  ms: number,
  signal: AbortSignal,
  report: (status: StreamStatus) => void,
  reason: Extract<StreamStatus, { state: "waiting" }>["reason"],
  status?: number,
): Promise<boolean> {
  if (signal.aborted) return false;
  report(status === undefined ? { state: "waiting", ms, reason } : { state: "waiting", ms, reason, status });
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done, { once: true });
  });
  return !signal.aborted;
}

/** `Retry-After` in ms: delay-seconds or an HTTP date; null when absent or unreadable. */
export function retryAfterMs(value: string | null, now: number = Date.now()): number | null {
  if (value === null) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

async function connect(
  options: FollowEventsOptions,
  state: RunState,
  token: string,
  signal: AbortSignal,
  opened: () => void,
): Promise<Outcome> {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}`, Accept: "text/event-stream" };
  if (state.lastEventId !== null) headers["Last-Event-ID"] = state.lastEventId;
  const url = `${options.baseUrl}/api/${encodeURIComponent(options.userId)}/events`;
  const doFetch = options.fetch ?? globalThis.fetch;
  let response: Response;
  try {
    response = await doFetch(url, { headers, signal, cache: "no-store" });
  } catch {
    return { kind: "network" };
  }
  if (response.status !== 200 || !response.body) {
    await response.body?.cancel().catch(() => undefined);
    return { kind: "status", status: response.status, retryAfterMs: retryAfterMs(response.headers.get("Retry-After")) };
  }
  opened();
  const parser = new SseParser();
  let expired = false;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const message of parser.push(decoder.decode(value, { stream: true }))) {
        if (message.id !== null) state.lastEventId = message.id;
        let data: unknown;
        try {
          data = JSON.parse(message.data);
        } catch {
          continue;
        }
        if (!isTaskEvent(data)) continue;
        options.onEvent?.(data, message.id);
        if (data.type === "resync") await options.resync();
        if (data.type === "token-expired") expired = true;
      }
      if (expired) break;
    }
  } catch {
    if (!signal.aborted && !expired) return { kind: "network" };
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return expired ? { kind: "token-expired" } : { kind: "ended", retryMs: parser.retryMs };
}

/** One dispatched SSE message. */
export interface SseMessage {
  event: string;
  data: string;
  id: string | null;
}

/** The WHATWG event-stream format, fed text as it arrives. */
export class SseParser {
  private buffer = "";
  private event = "";
  private data: string[] = [];
  private id: string | null = null;
  private sawId = false;
  /** The last `retry:` the server sent (ms). */
  retryMs: number | null = null;

  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      // A lone "\r" at the end may be the first half of "\r\n": wait for more.
      if (!match || (match[0] === "\r" && match.index === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      const message = this.line(line);
      if (message) out.push(message);
    }
    return out;
  }

  private line(line: string): SseMessage | null {
    if (line === "") {
      const message =
        this.data.length > 0
          ? { event: this.event || "message", data: this.data.join("\n"), id: this.sawId ? this.id : null }
          : null;
      this.event = "";
      this.data = [];
      this.sawId = false;
      return message;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") this.event = value;
    else if (field === "data") this.data.push(value);
    else if (field === "id" && !value.includes("\0")) {
      this.id = value;
      this.sawId = true;
    } else if (field === "retry" && /^\d+$/.test(value)) this.retryMs = Number(value);
    return null;
  }
}
