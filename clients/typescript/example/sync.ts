/**
 * One device of an offline-first app: its tasks and lists kept in a local file, caught up with `/sync`
 * when it starts, and (with TASKS_SYNC_FOLLOW=1) kept live by the events until standard input closes.
 * Environment: TASKS_API_URL, TASKS_USER, TASKS_TOKEN, TASKS_SYNC_FILE (the device's saved state).
 * Prints one JSON line per change of the local copy (`{"ids": ...}`: every id with its version), never
 * the token.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";

import { createSync, createTasksClient, followEvents, type SyncState, type TaskSync } from "../src/index.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const file = env("TASKS_SYNC_FILE");
const baseUrl = env("TASKS_API_URL");
const userId = env("TASKS_USER");
const token = () => env("TASKS_TOKEN");

const sync = createSync({
  api: createTasksClient({ baseUrl, token }),
  userId,
  // A browser would use IndexedDB; the cursor is saved with the state it belongs to.
  store: {
    load: () => (existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as SyncState) : null),
    save: (state) => writeFileSync(file, JSON.stringify(state)),
  },
});

const versions = (map: Map<string, { version: number }>) =>
  Object.fromEntries([...map].map(([id, item]) => [id, item.version]).sort());
const print = (line: Record<string, unknown>) => console.log(JSON.stringify(line));
const show = (s: TaskSync) => print({ ids: { tasks: versions(s.tasks), lists: versions(s.lists) }, restarts: s.restarts });

if (process.env.TASKS_SYNC_FOLLOW) {
  sync.subscribe(show);
  // Follow first, then pull: an event that arrives during the pull is kept, the version check decides.
  const stream = followEvents({
    baseUrl,
    userId,
    token,
    onEvent: (event) => sync.apply(event),
    resync: () => sync.pull(),
    onStatus: (status) => {
      if (status.state === "open") print({ status: "open" });
    },
  });
  await sync.pull();
  show(sync);
  process.stdin.resume();
  process.stdin.on("end", () => stream.close());
  await stream.done;
} else {
  await sync.pull();
  show(sync);
}
