import type { EventStore } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";

export interface EventStoreLimits {
  /** Events kept per stream (the GET stream of a session, or one POST's response stream). */
  perStream: number;
  /** Events kept across every session. */
  total: number;
  /** Approximate bytes (JSON length) kept across every session. */
  totalBytes: number;
}

export const DEFAULT_EVENT_LIMITS: EventStoreLimits = { perStream: 500, total: 10_000, totalBytes: 16 * 1024 * 1024 };

interface Stored {
  sessionId: string;
  key: string;
  message: JSONRPCMessage;
  size: number;
}

/**
 * Missed-notification memory for resumable streams (`Last-Event-ID`), shared by all sessions
 * and bounded so that clients which never come back cannot grow it: the oldest events go
 * first. Each session sees it through `forSession`, because every session's transport names
 * its GET stream the same (`_GET_stream`), and one session must never replay another's.
 *
 * Event ids are `<stream id>:<sequence>`, so a cursor whose event was already evicted still
 * says where to resume; the client then gets what is left, newer than its cursor.
 */
export class MemoryEventStore {
  private seq = 0;
  private bytes = 0;
  /** Insertion order is age order, so the first entry is always the oldest event. */
  private readonly events = new Map<number, Stored>();
  private readonly streams = new Map<string, number[]>();
  private readonly sessionStreams = new Map<string, Set<string>>();

  constructor(private readonly limits: EventStoreLimits = DEFAULT_EVENT_LIMITS) {}

  get size(): { events: number; bytes: number } {
    return { events: this.events.size, bytes: this.bytes };
  }

  forSession(sessionId: string): EventStore {
    const keyOf = (streamId: string) => `${sessionId} ${streamId}`;
    if (!this.sessionStreams.has(sessionId)) this.sessionStreams.set(sessionId, new Set());
    return {
      storeEvent: async (streamId, message) => {
        const seq = ++this.seq;
        // Priming events carry no message; their id is only a cursor, so nothing is kept.
        // Nor is anything after the session was dropped, which would never be freed.
        if ("jsonrpc" in message && this.sessionStreams.has(sessionId)) this.store(seq, keyOf(streamId), sessionId, message);
        return `${streamId}:${seq}`;
      },
      getStreamIdForEventId: async (eventId) => parseEventId(eventId)?.streamId,
      replayEventsAfter: async (lastEventId, { send }) => {
        const cursor = parseEventId(lastEventId);
        if (!cursor) return "";
        for (const seq of [...(this.streams.get(keyOf(cursor.streamId)) ?? [])]) {
          const event = this.events.get(seq);
          if (seq > cursor.seq && event) await send(`${cursor.streamId}:${seq}`, event.message);
        }
        return cursor.streamId;
      },
    };
  }

  /** Forgets a closed session's events. */
  dropSession(sessionId: string): void {
    for (const key of this.sessionStreams.get(sessionId) ?? []) {
      for (const seq of this.streams.get(key) ?? []) this.forget(seq);
      this.streams.delete(key);
    }
    this.sessionStreams.delete(sessionId);
  }

  private store(seq: number, key: string, sessionId: string, message: JSONRPCMessage): void {
    const size = JSON.stringify(message).length;
    this.events.set(seq, { sessionId, key, message, size });
    this.bytes += size;
    let stream = this.streams.get(key);
    if (!stream) {
      this.streams.set(key, (stream = []));
      this.sessionStreams.get(sessionId)!.add(key);
    }
    stream.push(seq);
    if (stream.length > this.limits.perStream) this.forget(stream.shift()!);
    while (this.events.size > this.limits.total || this.bytes > this.limits.totalBytes) {
      const oldest = this.events.keys().next().value!;
      const { sessionId: owner, key: oldestKey } = this.events.get(oldest)!;
      // The oldest event overall is also the oldest of its own stream.
      const rest = this.streams.get(oldestKey);
      rest?.shift();
      if (!rest?.length) {
        this.streams.delete(oldestKey);
        this.sessionStreams.get(owner)?.delete(oldestKey);
      }
      this.forget(oldest);
    }
  }

  private forget(seq: number): void {
    const event = this.events.get(seq);
    if (!event) return;
    this.bytes -= event.size;
    this.events.delete(seq);
  }
}

function parseEventId(eventId: string): { streamId: string; seq: number } | null {
  const at = eventId.lastIndexOf(":");
  const seq = Number(eventId.slice(at + 1));
  if (at <= 0 || !Number.isSafeInteger(seq) || seq < 0) return null;
  return { streamId: eventId.slice(0, at), seq };
}
