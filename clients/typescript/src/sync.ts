/**
 * Offline catch-up: a local copy of the caller's tasks and lists, kept up to date from
 * `GET /api/{user_id}/sync` and from the live updates (`followEvents`).
 *
 * Every object carries a `version`; a copy is replaced only by one whose version is at least the one
 * held, so an answer read before a live event cannot undo it. The cursor is opaque and is only
 * meaningful together with the state it was applied to: the optional store keeps both.
 */
import type { components } from "./schema.js";
import type { TasksClient } from "./index.js";
import type { TaskEvent } from "./events.js";

export type SyncedTask = components["schemas"]["TaskRead"];
export type SyncedList = components["schemas"]["ListRead"];
export type SyncAnswer = components["schemas"]["SyncPage"];

/** What the store keeps: the cursor and the state it belongs to. */
export interface SyncState {
  cursor: string | null;
  tasks: SyncedTask[];
  lists: SyncedList[];
}

/** Where the state survives a reload (IndexedDB, localStorage, a file...). */
export interface SyncStore {
  load(): SyncState | null | undefined | Promise<SyncState | null | undefined>;
  save(state: SyncState): void | Promise<void>;
}

export interface SyncOptions {
  api: TasksClient;
  /** The signed-in user: the token's subject. */
  userId: string;
  store?: SyncStore;
  /** Objects per `/sync` answer (1–1000; the server's default is 500). */
  limit?: number;
}

/** A `/sync` answer other than 200 and 410 (401, 403, 429, 503...). */
export class SyncError extends Error {
  constructor(
    readonly status: number,
    readonly problem: unknown,
  ) {
    super(`GET /sync answered ${status}`);
    this.name = "SyncError";
  }
}

type Versioned = { id: string; version: number };

/** Upsert unless the copy held (or the deletion seen) is newer. Returns whether anything changed. */
function upsert<T extends Versioned>(map: Map<string, T>, gone: Map<string, number>, item: T): boolean {
  const held = map.get(item.id);
  if ((held && held.version > item.version) || (gone.get(item.id) ?? -1) >= item.version) return false;
  if (held && held.version === item.version) return false;
  map.set(item.id, item);
  return true;
}

function remove(map: Map<string, Versioned>, gone: Map<string, number>, id: string, version: number): boolean {
  gone.set(id, Math.max(version, gone.get(id) ?? -1));
  return map.delete(id);
}

export class TaskSync {
  /** The caller's tasks by id, as the server has them (as of the last answer or event). */
  readonly tasks = new Map<string, SyncedTask>();
  /** The caller's lists by id. */
  readonly lists = new Map<string, SyncedList>();
  private cursorValue: string | null = null;
  private loaded = false;
  private running: Promise<void> | null = null;
  private again = false;
  private resets = 0;
  private readonly listeners = new Set<(sync: TaskSync) => void>();
  // Deletions seen (id → version), so an answer read before a `*.deleted` event cannot bring the object
  // back. Those older than a finished pull are dropped: that pull saw the deletion itself.
  private readonly goneTasks = new Map<string, number>();
  private readonly goneLists = new Map<string, number>();

  constructor(private readonly options: SyncOptions) {}

  /** The cursor of the last answer applied (null before the first one). Opaque. */
  get cursor(): string | null {
    return this.cursorValue;
  }

  /** How many times a `410` (cursor unknown or too old) made the helper start again from nothing. */
  get restarts(): number {
    return this.resets;
  }

  /** Call `listener` after every change of the maps; returns the unsubscribe function. */
  subscribe(listener: (sync: TaskSync) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Catch up: `/sync` from the cursor until `more` is false (without a cursor: everything). A pull asked
   * for while one runs is served by its next request, or by one more pull after it. On a `410` the maps are cleared and filled again from a
   * full sync. Rejects with `SyncError` on other errors (the maps keep what was applied).
   */
  pull(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        await this.load();
        do await this.pullOnce();
        while (this.again);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  /** Apply one live-update event (`followEvents({ onEvent: (e) => sync.apply(e), resync: () => sync.pull() })`). */
  apply(event: TaskEvent): void {
    let changed = false;
    switch (event.type) {
      case "task.created":
      case "task.updated":
        changed = upsert(this.tasks, this.goneTasks, event.task);
        break;
      case "task.deleted":
        changed = remove(this.tasks, this.goneTasks, event.id, event.version);
        break;
      case "list.created":
      case "list.updated":
        changed = upsert(this.lists, this.goneLists, event.list);
        break;
      case "list.deleted":
        // Its tasks come as deletions in the pull that the `tasks.changed` following it starts.
        changed = remove(this.lists, this.goneLists, event.id, event.version);
        break;
      case "tasks.changed": // a bulk action or a list deleted with its tasks: one event for many
      case "resync": // events may have been missed
        void this.pull().catch(() => undefined);
        break;
      case "token-expired":
        break;
    }
    if (changed) this.notify();
  }

  /** The saved state, read once before the first pull (pulls run one at a time; a failed read is retried). */
  private async load(): Promise<void> {
    if (this.loaded) return;
    const state = await this.options.store?.load();
    this.loaded = true;
    if (!state) return;
    for (const list of state.lists) upsert(this.lists, this.goneLists, list);
    for (const task of state.tasks) upsert(this.tasks, this.goneTasks, task);
    this.cursorValue = state.cursor;
    this.notify();
  }

  private async pullOnce(): Promise<void> {
    const seenTasks = [...this.goneTasks.keys()];
    const seenLists = [...this.goneLists.keys()];
    let changed = false;
    for (;;) {
      const query = {
        ...(this.cursorValue === null ? {} : { cursor: this.cursorValue }),
        ...(this.options.limit === undefined ? {} : { limit: this.options.limit }),
      };
      // A pull asked for before this request is sent is answered by it: no need to run again for it
      // (a `resync` event reaches both `apply` and followEvents' `resync` callback).
      this.again = false;
      const { data, error, response } = await this.options.api.GET("/api/{user_id}/sync", {
        params: { path: { user_id: this.options.userId }, query },
      });
      if (response.status === 410 && this.cursorValue !== null) {
        this.restart();
        changed = true;
        continue;
      }
      if (data === undefined) throw new SyncError(response.status, error);
      changed = this.applyAnswer(data) || changed;
      this.cursorValue = data.cursor;
      if (!data.more) break;
    }
    for (const id of seenTasks) this.goneTasks.delete(id);
    for (const id of seenLists) this.goneLists.delete(id);
    await this.options.store?.save(this.state());
    if (changed) this.notify();
  }

  private applyAnswer(answer: SyncAnswer): boolean {
    let changed = false;
    for (const list of answer.lists) changed = upsert(this.lists, this.goneLists, list) || changed;
    for (const task of answer.tasks) changed = upsert(this.tasks, this.goneTasks, task) || changed;
    for (const gone of answer.deleted_tasks) changed = remove(this.tasks, this.goneTasks, gone.id, gone.version) || changed;
    for (const gone of answer.deleted_lists) changed = remove(this.lists, this.goneLists, gone.id, gone.version) || changed;
    return changed;
  }

  /** The cursor is unknown or older than the deletions the server keeps: start from nothing. */
  private restart(): void {
    this.resets += 1;
    this.cursorValue = null;
    this.tasks.clear();
    this.lists.clear();
    this.goneTasks.clear();
    this.goneLists.clear();
  }

  /** The state to persist: the cursor and the maps it belongs to. */
  state(): SyncState {
    return { cursor: this.cursorValue, tasks: [...this.tasks.values()], lists: [...this.lists.values()] };
  }

  private notify(): void {
    for (const listener of this.listeners) listener(this);
  }
}

/** A `TaskSync` for one user: call `pull()` at start and when back online, `apply()` with each live event. */
export function createSync(options: SyncOptions): TaskSync {
  return new TaskSync(options);
}
