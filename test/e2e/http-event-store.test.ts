// Unit tests of the HTTP transport's event store (resumability), next to the HTTP e2e tests.
import { describe, expect, it } from "vitest";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { MemoryEventStore } from "../../src/mcp/http/event-store.js";

const note = (n: number): JSONRPCMessage => ({ jsonrpc: "2.0", method: "notifications/message", params: { n } });

async function replay(store: ReturnType<MemoryEventStore["forSession"]>, after: string) {
  const got: { id: string; n: unknown }[] = [];
  const stream = await store.replayEventsAfter(after, { send: async (id, m) => void got.push({ id, n: (m as any).params.n }) });
  return { stream, got };
}

describe("MemoryEventStore", () => {
  it("replays the events of the cursor's stream that came after it, in order", async () => {
    const store = new MemoryEventStore().forSession("s1");
    const ids = [];
    for (let n = 1; n <= 4; n++) ids.push(await store.storeEvent("_GET_stream", note(n)));
    await store.storeEvent("post-1", note(99));
    expect(await store.getStreamIdForEventId!(ids[1])).toBe("_GET_stream");
    const { stream, got } = await replay(store, ids[1]);
    expect(stream).toBe("_GET_stream");
    expect(got).toEqual([
      { id: ids[2], n: 3 },
      { id: ids[3], n: 4 },
    ]);
  });

  it("never replays another session's events, though stream ids are shared", async () => {
    const shared = new MemoryEventStore();
    const a = shared.forSession("a");
    const b = shared.forSession("b");
    const cursor = await a.storeEvent("_GET_stream", note(1));
    await b.storeEvent("_GET_stream", note(2));
    await a.storeEvent("_GET_stream", note(3));
    expect((await replay(a, cursor)).got.map((e) => e.n)).toEqual([3]);
    expect((await replay(b, cursor)).got.map((e) => e.n)).toEqual([2]);
  });

  it("keeps priming events as cursors only", async () => {
    const shared = new MemoryEventStore();
    const s = shared.forSession("s");
    const priming = await s.storeEvent("post-1", {} as JSONRPCMessage);
    await s.storeEvent("post-1", note(1));
    expect(shared.size.events).toBe(1);
    expect((await replay(s, priming)).got.map((e) => e.n)).toEqual([1]);
  });

  it("is bounded per stream and in total, dropping the oldest first", async () => {
    const shared = new MemoryEventStore({ perStream: 3, total: 5, totalBytes: 1 << 20 });
    const s = shared.forSession("s");
    const first = await s.storeEvent("_GET_stream", note(0));
    for (let n = 1; n < 10; n++) await s.storeEvent("_GET_stream", note(n));
    expect((await replay(s, first)).got.map((e) => e.n)).toEqual([7, 8, 9]);

    for (let n = 0; n < 4; n++) await s.storeEvent(`post-${n}`, note(100 + n));
    expect(shared.size.events).toBe(5);
    // The oldest events overall (of the GET stream) went first.
    expect((await replay(s, first)).got.map((e) => e.n)).toEqual([9]);
  });

  it("is bounded in bytes", async () => {
    const shared = new MemoryEventStore({ perStream: 1000, total: 1000, totalBytes: 2000 });
    const s = shared.forSession("s");
    for (let n = 0; n < 100; n++) await s.storeEvent("_GET_stream", note(n));
    expect(shared.size.bytes).toBeLessThanOrEqual(2000);
    expect(shared.size.events).toBeGreaterThan(10);
  });

  it("forgets a session's events when it closes", async () => {
    const shared = new MemoryEventStore();
    const s = shared.forSession("s");
    const cursor = await s.storeEvent("_GET_stream", note(1));
    await s.storeEvent("_GET_stream", note(2));
    shared.dropSession("s");
    expect(shared.size).toEqual({ events: 0, bytes: 0 });
    expect((await replay(s, cursor)).got).toEqual([]);
    // A late event of a dropped session is not kept (nothing would free it).
    await s.storeEvent("_GET_stream", note(3));
    expect(shared.size.events).toBe(0);
  });

  it("answers a malformed cursor with no stream", async () => {
    const s = new MemoryEventStore().forSession("s");
    expect(await s.getStreamIdForEventId!("garbage")).toBeUndefined();
    expect((await replay(s, "garbage")).stream).toBe("");
  });
});
