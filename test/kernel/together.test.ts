import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { flushNow, holdForTurn, writeTogether, writeTogetherAndWait } from "../../src/kernel/together.js";

/** A stream that records each write the kernel would get: one entry per _write or _writev. */
function recorder() {
  const writes: string[][] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      writes.push([String(chunk)]);
      done();
    },
    writev(chunks, done) {
      writes.push(chunks.map((c) => String(c.chunk)));
      done();
    },
  });
  return { stream, writes };
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("writeTogether", () => {
  it("hands the lines written in one turn to the stream in one write, in order, and the next turn's in another", async () => {
    const { stream, writes } = recorder();
    writeTogether(stream, "a\n");
    writeTogether(stream, "b\n");
    await Promise.resolve();
    writeTogether(stream, "c\n");
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toEqual([["a\n", "b\n", "c\n"]]);
    writeTogether(stream, "d\n");
    await nextTurn();
    expect(writes).toEqual([["a\n", "b\n", "c\n"], ["d\n"]]);
  });

  it('"tick" lets the lines go once the current work and its nextTick callbacks are done, before a timer or I/O', async () => {
    const { stream, writes } = recorder();
    writeTogether(stream, "+ 1\n", "tick");
    writeTogether(stream, "+ 2\n", "tick");
    expect(writes).toEqual([]);
    await new Promise<void>((resolve) => process.nextTick(resolve));
    expect(writes).toEqual([["+ 1\n", "+ 2\n"]]);
  });

  it("keeps each stream apart", async () => {
    const one = recorder();
    const two = recorder();
    writeTogether(one.stream, "x");
    writeTogether(two.stream, "y");
    writeTogether(one.stream, "z");
    await nextTurn();
    expect(one.writes).toEqual([["x", "z"]]);
    expect(two.writes).toEqual([["y"]]);
  });

  it("a stream ended meanwhile still gets its lines (end uncorks it), and the later release does nothing", async () => {
    const { stream, writes } = recorder();
    writeTogether(stream, "last\n");
    stream.end();
    await nextTurn();
    expect(writes.flat()).toEqual(["last\n"]);
    expect(stream.writableCorked).toBe(0);
  });

  it("flushNow hands what is held to the stream at once, and the stream is held again only by a later write", async () => {
    const { stream, writes } = recorder();
    writeTogether(stream, "- 1\n", "tick");
    writeTogether(stream, "+ 2\n", "tick");
    flushNow(stream);
    expect(writes).toEqual([["- 1\n", "+ 2\n"]]);
    flushNow(stream);
    await new Promise<void>((resolve) => process.nextTick(resolve));
    expect(writes).toHaveLength(1);
    expect(stream.writableCorked).toBe(0);
  });

  it("holdForTurn holds whatever is written to the stream meanwhile, by anyone", async () => {
    const { stream, writes } = recorder();
    holdForTurn(stream);
    stream.write("answer\n");
    stream.write("notification\n");
    expect(writes).toEqual([]);
    await nextTurn();
    expect(writes).toEqual([["answer\n", "notification\n"]]);
  });
});

describe("writeTogetherAndWait", () => {
  it("resolves each write once the stream has taken it, the held-back ones sharing one 'drain' listener, and keeps their order", async () => {
    // A reader that takes a write only a few milliseconds later: the stream fills past its 64 bytes.
    const got: string[] = [];
    const stream = new Writable({
      highWaterMark: 64,
      write(chunk, _enc, done) {
        setTimeout(() => {
          got.push(String(chunk));
          done();
        }, 2);
      },
      writev(chunks, done) {
        setTimeout(() => {
          got.push(...chunks.map((c) => String(c.chunk)));
          done();
        }, 2);
      },
    });
    let most = 0;
    const resolved: number[] = [];
    const lines = Array.from({ length: 40 }, (_, i) => `${JSON.stringify({ id: i, pad: "x".repeat(100) })}\n`);
    const waits = lines.map((line, i) => {
      const p = writeTogetherAndWait(stream, line).then(() => resolved.push(i));
      most = Math.max(most, stream.listenerCount("drain"));
      return p;
    });
    for (let turn = 0; turn < 5; turn++) {
      await nextTurn();
      const more = Array.from({ length: 8 }, (_, i) => `${JSON.stringify({ id: 40 + turn * 8 + i, pad: "y".repeat(100) })}\n`);
      for (const line of more) {
        lines.push(line);
        waits.push(writeTogetherAndWait(stream, line).then(() => resolved.push(lines.indexOf(line))));
        most = Math.max(most, stream.listenerCount("drain"));
      }
    }
    await Promise.all(waits);
    expect(most).toBe(1);
    expect(resolved).toHaveLength(80);
    expect(got.join("")).toBe(lines.join(""));
    expect(stream.listenerCount("drain")).toBe(0);
  });

  it("resolves at once while the stream has room", async () => {
    const { stream, writes } = recorder();
    await writeTogetherAndWait(stream, "a\n");
    expect(stream.listenerCount("drain")).toBe(0);
    await nextTurn();
    expect(writes).toEqual([["a\n"]]);
  });
});
