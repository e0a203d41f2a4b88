import type { ExecutionRequest, ExecutionResult, Executor } from "../../src/core/ports.js";

/**
 * An in-process agent for core tests: each attempt waits until the test settles it (or
 * its signal aborts), so overlap and concurrency can be observed exactly.
 */
export class ControlledExecutor implements Executor {
  readonly type = "controlled";
  readonly program = null;
  readonly calls: { req: ExecutionRequest; settle: (r: Partial<ExecutionResult>) => void }[] = [];
  running = 0;
  maxRunning = 0;

  execute(req: ExecutionRequest): Promise<ExecutionResult> {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    return new Promise<ExecutionResult>((resolve) => {
      const done = (r: Partial<ExecutionResult>) => {
        this.running--;
        resolve({ status: "completed", exitCode: 0, error: null, output: "ok", outputTruncated: false, usage: null, ...r });
      };
      let settled = false;
      const settle = (r: Partial<ExecutionResult>) => {
        if (settled) return;
        settled = true;
        done(r);
      };
      req.signal.addEventListener("abort", () => settle({ status: "canceled", exitCode: null, error: "aborted" }), { once: true });
      this.calls.push({ req, settle });
    });
  }

  /** Settles the oldest unsettled attempts. */
  finishAll(r: Partial<ExecutionResult> = {}): void {
    for (const c of this.calls) c.settle(r);
  }
}
