/**
 * A value made the first time it is asked for, then kept. For zod schemas a process may never
 * use: each schema is ~2 KB of heap (its closures and internals), and a server that builds
 * them all at import carries ~1,000 it never parses with (issue 27's RSS).
 */
export function lazily<T>(make: () => T): () => T {
  let value: T | undefined;
  let made = false;
  return () => {
    if (!made) {
      value = make();
      made = true;
    }
    return value as T;
  };
}
