import { describe, expect, it } from "vitest";
import { FleetScheduler } from "../../src/core/scheduler.js";
import { FakeClock } from "../helpers/clock.js";

function setup() {
  const clock = new FakeClock("2026-01-01T00:00:00.000Z");
  const fired: { id: string; at: number; now: number }[] = [];
  const s = new FleetScheduler((id, at) => fired.push({ id, at, now: clock.now() }), clock);
  return { clock, fired, s, t0: clock.now() };
}

describe("FleetScheduler", () => {
  it("fires every job at its time, in time order, with one timer for the whole fleet", () => {
    const { clock, fired, s, t0 } = setup();
    s.set("c", t0 + 3000);
    s.set("a", t0 + 1000);
    s.set("b", t0 + 2000);
    s.start();
    expect(clock.pendingTimers).toBe(1);
    clock.advance(3000);
    expect(fired.map((f) => f.id)).toEqual(["a", "b", "c"]);
    expect(fired.map((f) => f.now - f.at)).toEqual([0, 0, 0]);
  });

  it("replaces a job's occurrence when set again and forgets it when cleared", () => {
    const { clock, fired, s, t0 } = setup();
    s.start();
    s.set("a", t0 + 1000);
    s.set("a", t0 + 5000);
    s.set("b", t0 + 2000);
    s.set("b", null);
    clock.advance(10_000);
    expect(fired).toEqual([{ id: "a", at: t0 + 5000, now: t0 + 5000 }]);
    expect(s.size).toBe(0);
  });

  it("keeps a heap of thousands of jobs ordered through many updates", () => {
    const { clock, fired, s, t0 } = setup();
    s.start();
    for (let i = 0; i < 5000; i++) s.set(`j${i}`, t0 + 1 + ((i * 7919) % 5000));
    for (let i = 0; i < 5000; i += 2) s.set(`j${i}`, t0 + 10_000 + i);
    clock.advance(20_000);
    expect(fired).toHaveLength(5000);
    const ats = fired.map((f) => f.at);
    expect([...ats].sort((x, y) => x - y)).toEqual(ats);
  });

  it("does not fire early when the wall clock is set back, and fires when it gets there", () => {
    const { clock, fired, s, t0 } = setup();
    s.set("a", t0 + 60_000);
    s.start();
    clock.advance(30_000);
    clock.jumpWall(-3_600_000);
    clock.advance(60_000);
    expect(fired).toEqual([]);
    clock.advance(3_600_000);
    expect(fired).toHaveLength(1);
    expect(fired[0].now).toBe(t0 + 60_000);
  });

  it("notices a forward wall-clock jump within its longest sleep", () => {
    const { clock, fired, s, t0 } = setup();
    s.set("a", t0 + 3_600_000);
    s.start();
    clock.jumpWall(3_600_000);
    clock.advance(30_000);
    expect(fired).toHaveLength(1);
  });

  it("keeps going when a handler throws", () => {
    const clock = new FakeClock(0);
    const seen: string[] = [];
    const s = new FleetScheduler((id) => {
      seen.push(id);
      if (id === "bad") throw new Error("boom");
    }, clock);
    const warn = process.emitWarning;
    process.emitWarning = () => {};
    try {
      s.set("bad", 10);
      s.set("good", 20);
      s.start();
      clock.advance(100);
    } finally {
      process.emitWarning = warn;
    }
    expect(seen).toEqual(["bad", "good"]);
  });

  it("stops firing after stop()", () => {
    const { clock, fired, s, t0 } = setup();
    s.set("a", t0 + 1000);
    s.start();
    s.stop();
    clock.advance(5000);
    expect(fired).toEqual([]);
    expect(clock.pendingTimers).toBe(0);
  });
});
