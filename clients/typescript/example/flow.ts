/**
 * The client against a running API, as a frontend uses it. Environment: TASKS_API_URL, TASKS_USER and
 * TASKS_TOKEN (a token whose subject is TASKS_USER), TASKS_OTHER_USER (someone else).
 * Prints one JSON line of what happened; exits non-zero when the API did not answer as documented.
 */
import {
  createTask,
  createTasksClient,
  etagOf,
  pageLinks,
  setTaskCompletion,
  totalCount,
  updateTask,
  type Task,
} from "../src/index.js";

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(`unexpected: ${what}`);
}

const client = createTasksClient({ baseUrl: env("TASKS_API_URL"), token: () => env("TASKS_TOKEN") });
const user_id = env("TASKS_USER");

// Create: `completed`, `priority`, `tags`... have defaults and may be left out. The typed helpers check
// the body as you write it: a misspelt or read-only field does not compile.
const created: Task[] = [];
for (const title of ["Buy milk", "Call mum", "Book flights"]) {
  const { data, response } = await createTask(client, user_id, { title });
  check(response.status === 201 && data !== undefined, `create answered ${response.status}`);
  created.push(data);
}

// List a page of two: the total counts the whole filter, `Link` says where the next page is.
const first = await client.GET("/api/{user_id}/tasks", {
  params: { path: { user_id }, query: { sort: "title", limit: 2 } },
});
check(first.data !== undefined, `list answered ${first.response.status}`);
const links = pageLinks(first.response);
const next = links.next;
check(next !== undefined, "no next link");
const second = await client.GET("/api/{user_id}/tasks", {
  params: { path: { user_id }, query: { sort: "title", limit: Number(next.query.limit), offset: Number(next.query.offset) } },
});
check(second.data !== undefined, `next page answered ${second.response.status}`);

// Toggle without a body: the task flips, its version (ETag) moves on.
const task = created[0];
check(task !== undefined, "nothing created");
const task_id = task.id;
const before = await client.GET("/api/{user_id}/tasks/{task_id}", { params: { path: { user_id, task_id } } });
const staleEtag = etagOf(before.response);
check(staleEtag !== null, "no ETag");
const toggled = await setTaskCompletion(client, user_id, task_id);
check(toggled.data !== undefined, `toggle answered ${toggled.response.status}`);

// A write with the old ETag in If-Match is refused (412) and changes nothing.
const stale = await updateTask(client, user_id, task_id, { title: "Lost update" }, { ifMatch: staleEtag });

// With the current one the delete applies.
const removed = await client.DELETE("/api/{user_id}/tasks/{task_id}", {
  params: { path: { user_id, task_id }, header: { "If-Match": etagOf(toggled.response) ?? "" } },
});

// Someone else's tasks: the path's user id is not the token's subject.
const foreign = await client.GET("/api/{user_id}/tasks", {
  params: { path: { user_id: env("TASKS_OTHER_USER") } },
});

console.log(
  JSON.stringify({
    created: created.map((t) => t.title),
    total: totalCount(first.response),
    firstPage: first.data.map((t) => t.title),
    links: Object.keys(links).sort(),
    next: next.url,
    secondPage: second.data.map((t) => t.title),
    toggled: { before: task.completed, after: toggled.data.completed, etag: etagOf(toggled.response) },
    staleIfMatch: { status: stale.response.status, problem: stale.error },
    deleted: removed.response.status,
    foreign: { status: foreign.response.status, problem: foreign.error },
  }),
);
