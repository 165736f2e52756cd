/**
 * A typed client for the Tasks API: openapi-fetch over the types generated from openapi.json
 * (src/schema.ts, by ./generate), plus helpers for the headers a frontend reads.
 */
import createClient, { type Client, type ClientOptions, type Middleware } from "openapi-fetch";

import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };
export * from "./requests.js";
export * from "./events.js";
export * from "./sync.js";

type Json<T> = T extends { content: { "application/json": infer Body } } ? Body : never;
type ProblemJson<T> = T extends { content: { "application/problem+json": infer Body } } ? Body : never;

/** A task as the API returns it. */
export type Task = Json<operations["getTask"]["responses"][200]>;
/** An RFC 9457 problem document: every error the API answers. */
export type Problem = ProblemJson<operations["getTask"]["responses"][404]>;

export type TasksClient = Client<paths>;

export interface TasksClientOptions extends ClientOptions {
  /** The API's origin, e.g. `https://api.example.com` (no trailing slash). */
  baseUrl: string;
  /** The bearer token for each request: Better Auth's `authClient.token()` or a stored JWT. */
  token: () => string | null | undefined | Promise<string | null | undefined>;
}

/** An openapi-fetch client that sends `Authorization: Bearer <token>` with every request. */
export function createTasksClient({ token, ...options }: TasksClientOptions): TasksClient {
  const client = createClient<paths>(options);
  const auth: Middleware = {
    async onRequest({ request }) {
      const value = await token();
      if (value) request.headers.set("Authorization", `Bearer ${value}`);
      return request;
    },
  };
  client.use(auth);
  return client;
}

/** The `ETag` of a task response (e.g. `"3"`), to send back as `If-Match`; null when absent. */
export function etagOf(response: Response): string | null {
  return response.headers.get("ETag");
}

/** `X-Total-Count`: how many tasks match the whole filter (not just this page); null when absent. */
export function totalCount(response: Response): number | null {
  const value = response.headers.get("X-Total-Count");
  if (value === null || !/^\d+$/.test(value.trim())) return null;
  return Number(value);
}

export type LinkRelation = "first" | "prev" | "next" | "last";

export interface PageLink {
  /** The link as sent (a path with its query, relative to the API's origin). */
  url: string;
  /** Its query parameters: pass them as `params.query` of the next list call. */
  query: Record<string, string>;
}

export type PageLinks = Partial<Record<LinkRelation, PageLink>>;

const LINK_VALUE = /<([^>]*)>\s*((?:;\s*[^;,]+)*)/g;
const REL_PARAM = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i;

/** Parse an RFC 8288 `Link` header into the paging relations the API sends. */
export function parseLink(header: string | null): PageLinks {
  const links: PageLinks = {};
  if (!header) return links;
  for (const match of header.matchAll(LINK_VALUE)) {
    const url = match[1] ?? "";
    const rel = REL_PARAM.exec(match[2] ?? "");
    for (const name of (rel?.[1] ?? rel?.[2] ?? "").split(/\s+/)) {
      if (name === "first" || name === "prev" || name === "next" || name === "last") {
        const query = Object.fromEntries(new URL(url, "http://link.invalid").searchParams);
        links[name] = { url, query };
      }
    }
  }
  return links;
}

/** The paging links of a list response. */
export function pageLinks(response: Response): PageLinks {
  return parseLink(response.headers.get("Link"));
}

/** Is this an error answer of the API (`application/problem+json`)? */
export function isProblem(value: unknown): value is Problem {
  return typeof value === "object" && value !== null && "status" in value && "title" in value;
}
