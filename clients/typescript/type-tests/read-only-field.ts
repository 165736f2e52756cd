// Must NOT compile: `version` is read-only, a client cannot send it (tests/test_client.py runs tsc on this file).
import { createTasksClient, updateTask } from "../src/index.js";

const api = createTasksClient({ baseUrl: "http://127.0.0.1:8000", token: () => "jwt" });
await updateTask(api, "alice", "0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b21", { title: "Buy milk", version: 3 });
