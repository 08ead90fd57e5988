/**
 * A tiny metrics exporter for tests: a real HTTP server on loopback serving /metrics in the
 * Prometheus text format (0.0.4) from values the test sets, so a real Prometheus scrapes exactly
 * what the test drives.
 *
 * Counters and histograms can grow at a steady rate, computed at scrape time, rather than in
 * bursts from a timer: rate() over any window then returns the configured rate exactly, and
 * ratios of rates (error rate, cost per request) are exact, which keeps assertions tight and the
 * suite free of timing flakiness.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

/** A series' labels. */
export type Labels = Readonly<Record<string, string>>;

/** prom-client's default buckets, in seconds. */
export const DEFAULT_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

interface Growth {
  base: number;
  perSecond: number;
  since: number;
}

interface GaugeSeries {
  labels: Labels;
  value: number;
}

interface CounterSeries {
  labels: Labels;
  growth: Growth;
}

interface HistogramSeries {
  labels: Labels;
  /** Observations per bucket (not cumulative), plus one slot for above the last bound. */
  counts: number[];
  sum: number;
  /** Steady observations of one value; folded into counts/sum when it changes. */
  steady: { perSecond: number; seconds: number; since: number } | undefined;
}

type Family =
  | { type: "gauge"; series: Map<string, GaugeSeries> }
  | { type: "counter"; series: Map<string, CounterSeries> }
  | { type: "histogram"; buckets: readonly number[]; series: Map<string, HistogramSeries> };

/** A running exporter. */
export interface Exporter {
  /** The scrape URL, http://127.0.0.1:PORT/metrics. */
  readonly url: string;
  /** host:port, as a Prometheus scrape target. */
  readonly target: string;
  /** /metrics requests served so far. */
  readonly scrapes: number;
  /** Sets a gauge; NaN and infinities are written as Prometheus spells them. */
  setGauge(name: string, labels: Labels, value: number): void;
  /** Adds to a counter at once (creating it at 0 first). */
  incCounter(name: string, labels: Labels, by?: number): void;
  /** Lets a counter grow steadily at `perSecond` from now on; 0 keeps the series, flat. */
  setCounterRate(name: string, labels: Labels, perSecond: number): void;
  /** Declares a histogram's buckets (before its first observation; default {@link DEFAULT_BUCKETS}). */
  defineHistogram(name: string, buckets: readonly number[]): void;
  /** Records `count` observations of `seconds` at once. */
  observe(name: string, labels: Labels, seconds: number, count?: number): void;
  /** Observes `seconds` steadily, `perSecond` times a second, from now on; 0 keeps the series, flat. */
  setObservationRate(name: string, labels: Labels, perSecond: number, seconds: number): void;
  /** Removes one series, or the whole family when labels are omitted. */
  remove(name: string, labels?: Labels): void;
  /** Resolves once `count` more scrapes have been served. */
  waitForScrapes(count?: number, timeoutMs?: number): Promise<void>;
  /** The exposition text a scrape would get now. */
  render(): string;
  close(): Promise<void>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function formatValue(n: number): string {
  if (Number.isNaN(n)) return "NaN";
  if (n === Infinity) return "+Inf";
  if (n === -Infinity) return "-Inf";
  return String(n);
}

const escapeLabel = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

function seriesKey(labels: Labels): string {
  return JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const pairs = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${escapeLabel(labels[k] as string)}"`);
  if (extra) pairs.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return pairs.length ? `{${pairs.join(",")}}` : "";
}

function grown(g: Growth, now: number): number {
  return g.base + (g.perSecond * (now - g.since)) / 1000;
}

/** Folds the steady part of a histogram series into its counts, so a new rate starts from here. */
function settle(h: HistogramSeries, buckets: readonly number[], now: number): void {
  if (!h.steady) return;
  const n = (h.steady.perSecond * (now - h.steady.since)) / 1000;
  addObservations(h, buckets, h.steady.seconds, n);
  h.steady.since = now;
}

function addObservations(h: HistogramSeries, buckets: readonly number[], seconds: number, n: number): void {
  const i = buckets.findIndex((b) => seconds <= b);
  const slot = i === -1 ? buckets.length : i;
  h.counts[slot] = (h.counts[slot] ?? 0) + n;
  h.sum += seconds * n;
}

/**
 * Starts an exporter on a free loopback port (port 0: the kernel picks one, no race).
 * Paths other than /metrics answer 404, which makes it a handy "not Prometheus" server too.
 */
export async function startExporter(): Promise<Exporter> {
  const families = new Map<string, Family>();
  let scrapes = 0;
  const waiters = new Set<() => void>();

  const family = <T extends Family["type"]>(name: string, type: T): Extract<Family, { type: T }> => {
    if (!NAME.test(name)) throw new Error(`invalid metric name ${JSON.stringify(name)}`);
    let f = families.get(name);
    if (!f) {
      f = type === "histogram" ? { type, buckets: DEFAULT_BUCKETS, series: new Map() } : ({ type, series: new Map() } as Family);
      families.set(name, f);
    }
    if (f.type !== type) throw new Error(`metric ${name} is a ${f.type}, not a ${type}`);
    return f as Extract<Family, { type: T }>;
  };
  const checkLabels = (labels: Labels): void => {
    for (const k of Object.keys(labels)) {
      if (!LABEL.test(k) || k.startsWith("__") || k === "le") throw new Error(`invalid label name ${JSON.stringify(k)}`);
    }
  };
  const counter = (name: string, labels: Labels): CounterSeries => {
    checkLabels(labels);
    const f = family(name, "counter");
    const key = seriesKey(labels);
    let s = f.series.get(key);
    if (!s) {
      s = { labels: { ...labels }, growth: { base: 0, perSecond: 0, since: Date.now() } };
      f.series.set(key, s);
    }
    return s;
  };
  const histogram = (name: string, labels: Labels): { h: HistogramSeries; buckets: readonly number[] } => {
    checkLabels(labels);
    const f = family(name, "histogram");
    const key = seriesKey(labels);
    let h = f.series.get(key);
    if (!h) {
      h = { labels: { ...labels }, counts: new Array<number>(f.buckets.length + 1).fill(0), sum: 0, steady: undefined };
      f.series.set(key, h);
    }
    return { h, buckets: f.buckets };
  };

  const render = (): string => {
    const now = Date.now();
    const lines: string[] = [];
    for (const [name, f] of families) {
      lines.push(`# TYPE ${name} ${f.type}`);
      if (f.type === "gauge") {
        for (const s of f.series.values()) lines.push(`${name}${labelText(s.labels)} ${formatValue(s.value)}`);
      } else if (f.type === "counter") {
        for (const s of f.series.values()) lines.push(`${name}${labelText(s.labels)} ${formatValue(grown(s.growth, now))}`);
      } else {
        for (const h of f.series.values()) {
          const extra = h.steady ? (h.steady.perSecond * (now - h.steady.since)) / 1000 : 0;
          const steadySlot = h.steady ? f.buckets.findIndex((b) => (h.steady as { seconds: number }).seconds <= b) : -1;
          let cumulative = 0;
          f.buckets.forEach((bound, i) => {
            cumulative += (h.counts[i] ?? 0) + (i === steadySlot ? extra : 0);
            lines.push(`${name}_bucket${labelText(h.labels, ["le", formatValue(bound)])} ${formatValue(cumulative)}`);
          });
          const total = h.counts.reduce((a, b) => a + b, 0) + extra;
          lines.push(`${name}_bucket${labelText(h.labels, ["le", "+Inf"])} ${formatValue(total)}`);
          lines.push(`${name}_sum${labelText(h.labels)} ${formatValue(h.sum + extra * (h.steady?.seconds ?? 0))}`);
          lines.push(`${name}_count${labelText(h.labels)} ${formatValue(total)}`);
        }
      }
    }
    return lines.join("\n") + "\n";
  };

  const server: Server = createServer((req, res) => {
    if (req.method !== "GET" || (req.url ?? "").split("?")[0] !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
      return;
    }
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
    res.end(render(), () => {
      scrapes++;
      for (const w of [...waiters]) w();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}/metrics`,
    target: `127.0.0.1:${port}`,
    get scrapes() {
      return scrapes;
    },
    setGauge(name, labels, value) {
      checkLabels(labels);
      const f = family(name, "gauge");
      f.series.set(seriesKey(labels), { labels: { ...labels }, value });
    },
    incCounter(name, labels, by = 1) {
      if (!(by >= 0)) throw new Error(`a counter only goes up; got ${by}`);
      counter(name, labels).growth.base += by;
    },
    setCounterRate(name, labels, perSecond) {
      if (!(perSecond >= 0)) throw new Error(`a counter only goes up; got rate ${perSecond}`);
      const s = counter(name, labels);
      const now = Date.now();
      s.growth = { base: grown(s.growth, now), perSecond, since: now };
    },
    defineHistogram(name, buckets) {
      if (families.has(name)) throw new Error(`histogram ${name} already exists`);
      if (buckets.length === 0 || buckets.some((b, i) => i > 0 && b <= (buckets[i - 1] as number))) {
        throw new Error("buckets must be a non-empty increasing list");
      }
      families.set(name, { type: "histogram", buckets: [...buckets], series: new Map() });
    },
    observe(name, labels, seconds, count = 1) {
      const { h, buckets } = histogram(name, labels);
      addObservations(h, buckets, seconds, count);
    },
    setObservationRate(name, labels, perSecond, seconds) {
      if (!(perSecond >= 0)) throw new Error(`observation rate must be >= 0; got ${perSecond}`);
      const { h, buckets } = histogram(name, labels);
      const now = Date.now();
      settle(h, buckets, now);
      h.steady = perSecond > 0 ? { perSecond, seconds, since: now } : undefined;
    },
    remove(name, labels) {
      if (labels === undefined) families.delete(name);
      else families.get(name)?.series.delete(seriesKey(labels));
    },
    waitForScrapes(count = 1, timeoutMs = 10_000) {
      const target = scrapes + count;
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (scrapes < target) return;
          cleanup();
          resolve();
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`exporter at ${port}: ${target - scrapes} of ${count} scrapes missing after ${timeoutMs}ms`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
      });
    },
    render,
    close() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
