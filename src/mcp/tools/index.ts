import { addCronTool } from "./add-cron.js";
import { auditTool } from "./audit.js";
import { cancelRunTool } from "./cancel-run.js";
import { getCronTool } from "./get-cron.js";
import { getRunTool } from "./get-run.js";
import { listCronsTool } from "./list-crons.js";
import { listRunsTool } from "./list-runs.js";
import { pauseTool, resumeTool } from "./pause.js";
import { previewScheduleTool } from "./preview-schedule.js";
import { removeTool } from "./remove.js";
import { runNowTool } from "./run-now.js";
import { updateCronTool } from "./update-cron.js";

export const tools = [
  addCronTool,
  listCronsTool,
  listRunsTool,
  pauseTool,
  resumeTool,
  removeTool,
  getCronTool,
  getRunTool,
  updateCronTool,
  runNowTool,
  cancelRunTool,
  previewScheduleTool,
  auditTool,
];
