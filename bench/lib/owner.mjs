import { readFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Stops the background owner a server under always_on "daemon" started on `dataDir` (it
 * outlives its client by design): found by the pid in its owner.json, asked with SIGTERM,
 * killed after 10 s.
 */
export async function stopBackgroundOwner(dataDir) {
  const ownerFile = path.join(dataDir, "owner.json");
  let pid = null;
  for (let i = 0; i < 100 && pid === null; i++) {
    try {
      pid = JSON.parse(readFileSync(ownerFile, "utf8")).pid;
    } catch {
      await sleep(100);
    }
  }
  if (pid === null) return;
  const alive = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  try {
    process.kill(pid, "SIGTERM");
  } catch {}
  for (let i = 0; i < 100 && alive(); i++) await sleep(100);
  if (alive()) process.kill(pid, "SIGKILL");
}
