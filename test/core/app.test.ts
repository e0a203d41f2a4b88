import { schedulingBehaviour } from "../behaviour/scheduling.js";
import { memoryBackend } from "../helpers/app.js";

// The core's behaviour without a data dir: jobs and runs in memory.
schedulingBehaviour(memoryBackend);
