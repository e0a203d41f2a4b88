/**
 * An error caused by the caller's input or request. Its message is one clear sentence meant
 * for the person or model that made the request; the MCP edge turns it into an `isError`
 * result, the CLI into exit code 2. Anything else that is thrown is a runtime failure.
 */
export class UserError extends Error {
  override name = "UserError";
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * A runtime failure with a message meant for the caller as it is (the owner of the data dir
 * does not answer): one sentence, no stack; the CLI exits 1, a tool answers isError.
 */
export class UnavailableError extends Error {
  override name = "UnavailableError";
}

/**
 * This process was the owner of the data dir but another process has taken it over (this one
 * stalled past the lock's stale time). Nothing was written; the call goes to the new owner.
 */
export class LockLostError extends UnavailableError {
  override name = "LockLostError";
  constructor(dataDir: string) {
    super(`This agent-cron process no longer owns the data dir ${dataDir} (another process took it over); nothing was changed. Try again.`);
  }
}

/**
 * Called before every write to a data dir: throws LockLostError once this process is no longer
 * its owner, so a deposed owner never writes, deletes or acknowledges anything.
 */
export type Fence = () => void;
export const unfenced: Fence = () => {};

/** A caller that did not prove it may do this (an event trigger's wrong token): HTTP 401. */
export class UnauthorizedError extends UserError {
  override name = "UnauthorizedError";
}
