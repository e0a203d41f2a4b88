// The HTTP transport in-process, over a bare event bus: what a client that stops reading does
// to the others. (The rest of the HTTP behaviour is tested against the built CLI in http.test.ts.)
import http from "node:http";
import { afterEach, expect, it } from "vitest";
import type { CronApi } from "../../src/core/api.js";
import { AppEventBus } from "../../src/core/events.js";
import { serveHttp, type HttpHandle } from "../../src/http/server.js";
import { HttpClient, RawStream, rawSession } from "../helpers/http.js";
import { waitFor } from "../helpers/server.js";

let handle: HttpHandle | null = null;
const clients: HttpClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await handle?.close();
  handle = null;
});

it("cuts a stream whose client stopped reading, while other sessions get every notification", async () => {
  const events = new AppEventBus();
  handle = await serveHttp({ events } as unknown as CronApi, {
    host: "127.0.0.1",
    port: 0,
    token_env: "AGENT_CRON_TOKEN",
    session_idle_seconds: 1800,
    max_sessions: 100,
    max_body_bytes: 4 * 1024 * 1024,
    env: {},
    stallMs: 1000,
    log: () => {},
  });
  const { url } = handle;

  const slow = await rawSession(url);
  const u = new URL(url);
  const request = http.get({ host: u.hostname, port: u.port, path: u.pathname, headers: { accept: "text/event-stream", ...slow.headers } }, (res) => {
    res.pause(); // never reads
  });
  request.on("error", () => {});
  await waitFor(
    async () => {
      const second = await RawStream.open(url, slow.headers);
      second.close();
      return second.status === 409; // the stalled stream is the session's one GET stream
    },
    { what: "the slow client's stream to open" },
  );

  const fast = await HttpClient.connect(url);
  clients.push(fast);
  const notices = () => fast.notifications.filter((n) => n.method === "notifications/message" && n.params.data?.i !== undefined);
  // The SDK opens its GET stream in the background: probe until it delivers.
  await waitFor(() => (events.emit("notice", "info", "probe", {}), fast.notifications.length > 0), { what: "the fast client's stream" });

  const COUNT = 200;
  // Fire-and-forget: emitting waits for no client. The reading client gets every notice while
  // the other never reads (a wall-clock bound here failed under load; speed lives in bench/).
  for (let i = 0; i < COUNT; i++) events.emit("notice", "info", `notice ${i} ${"x".repeat(64 * 1024)}`, { i });

  await waitFor(() => notices().length >= COUNT, { what: "every notice at the reading client", describe: () => String(notices().length) });
  expect(notices().map((n) => n.params.data.i)).toEqual([...Array(COUNT).keys()]);
  // Once cut, the session's stream is free again: the client can reconnect (and resume).
  const reopened = await waitFor(
    async () => {
      const stream = await RawStream.open(url, slow.headers);
      if (stream.status === 200) return stream;
      stream.close();
      return null;
    },
    { timeout: 10_000, interval: 250, what: "the stalled stream to be cut" },
  );
  reopened.close();
  request.destroy();
});
