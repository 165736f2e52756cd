/**
 * One typed function per write, so a request body is checked where you write it: a misspelt field
 * (`prority`) or a read-only one (`version`) does not compile. (openapi-fetch's `api.POST(path, { body })`
 * takes the body through generics, where TypeScript does not flag unknown properties; the API would
 * answer 400 at run time.) Each returns openapi-fetch's `{ data, error, response }`.
 */
import type { operations } from "./schema.js";
import type { TasksClient } from "./index.js";

type Json<T> = T extends { content: { "application/json": infer Body } } ? Body : never;

/** The body of a create: `title` is required, every other field has a default. */
export type NewTask = Json<NonNullable<operations["createTask"]["requestBody"]>>;
/** The body of an update (PATCH or PUT): the fields to change; a field left out stays as it is. */
export type TaskChanges = Json<NonNullable<operations["updateTask"]["requestBody"]>>;
/** `{ "completed": boolean }`: sets it (the toggle takes no body). */
export type Completion = Json<NonNullable<operations["setTaskCompletion"]["requestBody"]>>;

export interface WriteOptions {
  /** `Idempotency-Key`: a retry with the same key and body gets the first answer again. */
  idempotencyKey?: string;
}

export interface ConditionalOptions {
  /** `If-Match`: the ETag you read (`etagOf(response)`); a stale one is a 412 and changes nothing. */
  ifMatch?: string;
}

const header = (name: string, value: string | undefined) => (value === undefined ? {} : { [name]: value });

/** `POST /api/{user_id}/tasks` (201, the new task). */
export function createTask(api: TasksClient, userId: string, body: NewTask, options: WriteOptions = {}) {
  return api.POST("/api/{user_id}/tasks", {
    params: { path: { user_id: userId }, header: header("Idempotency-Key", options.idempotencyKey) },
    body,
  });
}

/** `PATCH /api/{user_id}/tasks/{task_id}`: change the fields given. */
export function updateTask(
  api: TasksClient,
  userId: string,
  taskId: string,
  body: TaskChanges,
  options: ConditionalOptions = {},
) {
  return api.PATCH("/api/{user_id}/tasks/{task_id}", {
    params: { path: { user_id: userId, task_id: taskId }, header: header("If-Match", options.ifMatch) },
    body,
  });
}

/** `PATCH /api/{user_id}/tasks/{task_id}/complete`: without `body` toggle atomically, with it set. */
export function setTaskCompletion(
  api: TasksClient,
  userId: string,
  taskId: string,
  body?: Completion,
  options: ConditionalOptions = {},
) {
  const params = { path: { user_id: userId, task_id: taskId }, header: header("If-Match", options.ifMatch) };
  return api.PATCH("/api/{user_id}/tasks/{task_id}/complete", body === undefined ? { params } : { params, body });
}

/** `POST /api/{user_id}/tasks/complete-all`: set `completed` on every task of the caller. */
export function completeAllTasks(api: TasksClient, userId: string, body: Completion, options: WriteOptions = {}) {
  return api.POST("/api/{user_id}/tasks/complete-all", {
    params: { path: { user_id: userId }, header: header("Idempotency-Key", options.idempotencyKey) },
    body,
  });
}
