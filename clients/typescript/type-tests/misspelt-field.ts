// Must NOT compile: `prority` is not a field of a task (tests/test_client.py runs tsc on this file).
import { createTask, createTasksClient } from "../src/index.js";

const api = createTasksClient({ baseUrl: "http://127.0.0.1:8000", token: () => "jwt" });
await createTask(api, "alice", { title: "Buy milk", prority: "high" });
