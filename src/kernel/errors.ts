/**
 * Every error agent-cron raises on purpose, in one registry (as fastify's lib/errors.js): each
 * has a stable code, and code that decides by an error (an edge choosing isError, an exit code
 * or an HTTP status; a retry loop; a follower rebuilding an owner's error) reads the code
 * through `codeOf`/`kindOf`, never the message. The message stays one clear sentence for the
 * person or model that reads it, free to be reworded.
 *
 * `kind` says who the error is for: `user` is the caller's input or request (a tool answers
 * isError with the sentence, the CLI exits 2); `unavailable` is a runtime failure whose
 * sentence is meant for the caller as it is (the CLI exits 1); `internal` is anything else
 * (reported with "internal error:" or a stack).
 */
export const ERRORS = {
  AC_BAD_REQUEST: { kind: "user", what: "the caller's input or request is wrong" },
  AC_UNAUTHORIZED: { kind: "user", what: "the caller did not prove it may do this (an event trigger's token): HTTP 401" },
  AC_UNAVAILABLE: { kind: "unavailable", what: "a part this call needs does not answer" },
  AC_LOCK_LOST: { kind: "unavailable", what: "this process no longer owns the data dir; nothing was written; the call may go to the new owner" },
  AC_DB_UNREACHABLE: { kind: "unavailable", what: "the database does not answer; `reason` says how it failed" },
  AC_NOT_CONFIRMED: {
    kind: "unavailable",
    what: "the change was written and is in effect, but the disk did not confirm it (fsync failed): it may not survive a power cut",
  },
  AC_OWNER_GONE: { kind: "internal", what: "the owner of the data dir stopped during or before a call" },
  AC_OWNER_PRESENT: { kind: "internal", what: "serve --background found the data dir owned already" },
  AC_PRIVATE_ADDRESS: { kind: "internal", what: "a webhook's host resolves to a private address: refused, never retried" },
} as const satisfies Record<string, { kind: ErrorKind; what: string }>;

export type ErrorKind = "user" | "unavailable" | "internal";
export type ErrorCode = keyof typeof ERRORS;

/** An error of the registry: its code decides; its message is for people. */
export class AgentCronError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The registry's code of an error, or of the error it wraps (`cause`); null for any other. */
export function codeOf(err: unknown): ErrorCode | null {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (e instanceof AgentCronError || (typeof code === "string" && Object.hasOwn(ERRORS, code))) return code as ErrorCode;
  }
  return null;
}

/** Who the error is for (see ERRORS); `internal` for an error that is not in the registry. */
export function kindOf(err: unknown): ErrorKind {
  const code = codeOf(err);
  return code ? ERRORS[code].kind : "internal";
}

/**
 * The error an owner reported as `{ code, message }` (the data dir's socket), rebuilt as the
 * class that code stands for, so a follower decides on it as the owner would.
 */
export function errorFromCode(code: string | undefined, message: string): Error {
  switch (code) {
    case "AC_BAD_REQUEST":
      return new UserError(message);
    case "AC_UNAUTHORIZED":
      return new UnauthorizedError(message);
    case "AC_UNAVAILABLE":
    case "AC_DB_UNREACHABLE":
    case "AC_NOT_CONFIRMED":
      return new UnavailableError(message, code);
    default:
      return code && Object.hasOwn(ERRORS, code) ? new AgentCronError(code as ErrorCode, message) : new Error(message);
  }
}

/**
 * An error caused by the caller's input or request. Its message is one clear sentence meant
 * for the person or model that made the request; the MCP edge turns it into an `isError`
 * result, the CLI into exit code 2. Anything else that is thrown is a runtime failure.
 */
export class UserError extends AgentCronError {
  override name = "UserError";
  constructor(message: string, code: Extract<ErrorCode, "AC_BAD_REQUEST" | "AC_UNAUTHORIZED"> = "AC_BAD_REQUEST") {
    super(code, message);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/**
 * A runtime failure with a message meant for the caller as it is (the owner of the data dir
 * does not answer): one sentence, no stack; the CLI exits 1, a tool answers isError.
 */
export class UnavailableError extends AgentCronError {
  override name = "UnavailableError";
  constructor(message: string, code: Extract<ErrorCode, "AC_UNAVAILABLE" | "AC_LOCK_LOST" | "AC_DB_UNREACHABLE" | "AC_NOT_CONFIRMED"> = "AC_UNAVAILABLE") {
    super(code, message);
  }
}

/**
 * This process was the owner of the data dir but another process has taken it over (this one
 * stalled past the lock's stale time). Nothing was written; the call goes to the new owner.
 */
export class LockLostError extends UnavailableError {
  override name = "LockLostError";
  constructor(dataDir: string) {
    super(`This agent-cron process no longer owns the data dir ${dataDir} (another process took it over); nothing was changed. Try again.`, "AC_LOCK_LOST");
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
  constructor(message: string) {
    super(message, "AC_UNAUTHORIZED");
  }
}
