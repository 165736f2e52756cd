// Compiles: the same calls with fields a client may send (the control for the two fixtures beside it).
import { completeAllTasks, createTask, createTasksClient, setTaskCompletion, updateTask } from "../src/index.js";

const api = createTasksClient({ baseUrl: "http://127.0.0.1:8000", token: () => "jwt" });
const id = "0193f3c4-6a1e-7c2b-9a55-2f1e0c8d4b21";
await createTask(api, "alice", { title: "Buy milk", priority: "high" }, { idempotencyKey: "k1" });
await updateTask(api, "alice", id, { title: "Buy oat milk" }, { ifMatch: '"1"' });
await setTaskCompletion(api, "alice", id);
await setTaskCompletion(api, "alice", id, { completed: true });
await completeAllTasks(api, "alice", { completed: false });
