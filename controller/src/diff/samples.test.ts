import { describe, expect, it } from "vitest";
import { RingBuffer, SampleStore } from "./samples.ts";

describe("RingBuffer", () => {
  it.each([
    { capacity: 3, pushed: [1, 2], oldestFirst: [1, 2], evicted: 0 },
    { capacity: 3, pushed: [1, 2, 3], oldestFirst: [1, 2, 3], evicted: 0 },
    { capacity: 3, pushed: [1, 2, 3, 4, 5], oldestFirst: [3, 4, 5], evicted: 2 },
    { capacity: 1, pushed: [1, 2, 3], oldestFirst: [3], evicted: 2 },
    { capacity: 0, pushed: [1, 2], oldestFirst: [], evicted: 2 },
  ])("capacity $capacity after $pushed", ({ capacity, pushed, oldestFirst, evicted }) => {
    const b = new RingBuffer<number>(capacity);
    for (const x of pushed) b.push(x);
    expect(b.toArray()).toEqual(oldestFirst);
    expect(b.newest()).toEqual([...oldestFirst].reverse());
    expect(b.size).toBe(oldestFirst.length);
    expect(b.evicted).toBe(evicted);
  });

  it("limits newest()", () => {
    const b = new RingBuffer<number>(5);
    for (let i = 0; i < 12; i++) b.push(i);
    expect(b.newest(2)).toEqual([11, 10]);
  });

  it("clears", () => {
    const b = new RingBuffer<number>(2);
    b.push(1);
    b.clear();
    expect(b.toArray()).toEqual([]);
    b.push(2);
    expect(b.toArray()).toEqual([2]);
  });

  it.each([-1, 1.5, Number.NaN])("rejects capacity %s", (capacity) => {
    expect(() => new RingBuffer(capacity)).toThrow(/non-negative integer/);
  });
});

describe("SampleStore", () => {
  it("keeps the newest samples per key, independently", () => {
    const s = new SampleStore<string>({ capacity: 2 });
    for (const x of ["a1", "a2", "a3"]) s.add("ns/a", x);
    s.add("ns/b", "b1");
    expect(s.list("ns/a")).toEqual(["a3", "a2"]);
    expect(s.list("ns/a", 1)).toEqual(["a3"]);
    expect(s.list("ns/b")).toEqual(["b1"]);
    expect(s.list("ns/none")).toEqual([]);
    expect(s.evicted("ns/a")).toBe(1);
  });

  it("drops the least recently written key beyond maxKeys", () => {
    const s = new SampleStore<number>({ capacity: 5, maxKeys: 2 });
    s.add("a", 1);
    s.add("b", 1);
    s.add("a", 2);
    s.add("c", 1);
    expect(s.keys().sort()).toEqual(["a", "c"]);
    expect(s.list("a")).toEqual([2, 1]);
  });

  it("resizes a key's buffer when the configured capacity changes, keeping the newest", () => {
    const s = new SampleStore<number>({ capacity: 5 });
    for (let i = 1; i <= 5; i++) s.add("a", i);
    s.add("a", 6, 3);
    expect(s.list("a")).toEqual([6, 5, 4]);
  });

  it("stores nothing at capacity 0", () => {
    const s = new SampleStore<number>({ capacity: 0 });
    s.add("a", 1);
    expect(s.list("a")).toEqual([]);
  });

  it("deletes a key", () => {
    const s = new SampleStore<number>({ capacity: 1 });
    s.add("a", 1);
    expect(s.delete("a")).toBe(true);
    expect(s.keys()).toEqual([]);
  });

  it("rejects invalid options", () => {
    expect(() => new SampleStore({ capacity: -1 })).toThrow(/capacity/);
    expect(() => new SampleStore({ capacity: 1, maxKeys: 0 })).toThrow(/maxKeys/);
  });
});
