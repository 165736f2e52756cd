/**
 * Follow the live updates of one user, as a frontend does, printing one JSON line per event and per
 * change of the stream's state (never the token). Environment: TASKS_API_URL, TASKS_USER and
 * TASKS_TOKEN_URL: a URL answering `{"token": "<JWT>"}`, as Better Auth's `/api/auth/token` does.
 * Runs until its standard input closes.
 */
import { followEvents } from "../src/index.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const print = (line: Record<string, unknown>) => console.log(JSON.stringify(line));
let cached: string | null = null;

const stream = followEvents({
  baseUrl: env("TASKS_API_URL"),
  userId: env("TASKS_USER"),
  // Keep the token until the API refuses it; then (refresh) ask for a new one.
  token: async ({ refresh }) => {
    if (cached === null || refresh) {
      print({ token: refresh ? "refresh" : "first" });
      const answer = await fetch(env("TASKS_TOKEN_URL"));
      cached = ((await answer.json()) as { token: string }).token;
    }
    return cached;
  },
  onEvent: (event, id) => print({ event, id }),
  resync: () => print({ resync: true }),
  onStatus: (status) => print({ status }),
});

process.stdin.resume();
process.stdin.on("end", () => stream.close());
await stream.done;
print({ done: true });
