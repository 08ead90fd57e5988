/**
 * The Prometheus MetricsProvider (provider.ts), on prometheus-query (which wraps axios).
 *
 * prometheus-query sends the request; the body is read raw through its response interceptor
 * because the package's own parsing loses what a decision needs: SampleValue uses parseFloat,
 * which turns "+Inf" and "-Inf" into NaN (a breach would read as "no data"); Metric drops
 * __name__, which the series order depends on; and an HTTP error whose body is not Prometheus
 * JSON loses its status code. A driver is built per query because a per-query timeout and
 * AbortSignal can only reach axios through the driver's options; axios.create is cheap next to
 * a network round trip.
 */
import { PrometheusDriver, type PrometheusConnectionOptions } from "prometheus-query";
import type { SeriesLabels } from "./provider.ts";
import type { QueryOutcome } from "./provider.ts";
import type { MetricsProvider, QueryOptions } from "./provider.ts";
import { boundedDelay } from "../api/timer.ts";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { EgressPolicy } from "../api/egress.ts";
import { egressLookup } from "../api/egress-dial.ts";

type RequestInterceptor = NonNullable<PrometheusConnectionOptions["requestInterceptor"]>;
type ResponseInterceptor = NonNullable<PrometheusConnectionOptions["responseInterceptor"]>;

/** A complete HTTP answer, whatever its status. */
interface Exchange {
  status: number;
  statusText: string;
  body: unknown;
}

/** The shape prometheus-query rejects with when no usable response arrived. */
interface DriverFailure {
  status: "error";
  errorType?: string;
  error?: string;
  code?: string;
  original?: unknown;
}

// A high-cardinality mistake (a selector without aggregation) must not exhaust the controller.
const MAX_RESPONSE_BYTES = 8 * 1024 * 1024;
const SNIPPET_CHARS = 200;

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** `10s`, `1.5s`, `250ms`: how a timeout reads in a message. */
function formatMs(ms: number): string {
  return ms >= 1000 ? `${ms / 1000}s` : `${ms}ms`;
}

function snippet(body: unknown): string {
  const text = typeof body === "string" ? body : body === undefined ? "" : JSON.stringify(body);
  const flat = text.replace(/\s+/g, " ").trim();
  if (!flat) return "";
  return `: ${flat.length > SNIPPET_CHARS ? `${flat.slice(0, SNIPPET_CHARS)}...` : flat}`;
}

const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;

/**
 * Parses a sample value as Prometheus writes it in JSON: a decimal string, or `+Inf`, `-Inf`,
 * `NaN` (Go's ParseFloat spellings `inf`, `infinity` are accepted too, in any case).
 * @returns the number, or undefined for anything else (never 0 for an empty string).
 */
export function parseSampleValue(text: unknown): number | undefined {
  if (typeof text !== "string") return undefined;
  const t = text.trim();
  const lower = t.toLowerCase();
  if (lower === "nan") return NaN;
  const sign = lower.startsWith("-") ? -1 : 1;
  const unsigned = lower.replace(/^[+-]/, "");
  if (unsigned === "inf" || unsigned === "infinity") return sign * Infinity;
  return NUMBER.test(t) ? Number(t) : undefined;
}

/** A canonical, locale-independent key of a label set, so vector order is stable. */
function labelKey(metric: unknown): string {
  if (!isRecord(metric)) return "";
  return Object.keys(metric)
    .sort()
    .map((k) => `${k}=${JSON.stringify(metric[k])}`)
    .join(",");
}

/** A series' labels; Prometheus sends strings only, anything else is dropped, not guessed at. */
function labelsOf(metric: unknown): SeriesLabels {
  if (!isRecord(metric)) return {};
  return Object.fromEntries(Object.entries(metric).filter((e): e is [string, string] => typeof e[1] === "string"));
}

function sampleOf(address: string, pair: unknown): number | QueryOutcome {
  const raw = Array.isArray(pair) ? pair[1] : undefined;
  const value = parseSampleValue(raw);
  if (value === undefined) {
    return { kind: "error", message: `Prometheus at ${address} returned a sample value that is not a number: ${JSON.stringify(raw) ?? "nothing"}` };
  }
  return value;
}

/**
 * Turns the `data` of a successful instant query into an outcome. A scalar is a number; a
 * vector is its values ordered by label set (so `result[i]` names the same series every time),
 * with each series' labels in the same order so status can name the series judged; an empty
 * vector is `empty`; NaN is kept. Range vectors and strings cannot be judged: they are
 * permanent errors, since only a different query fixes them.
 */
export function outcomeFromData(address: string, data: unknown): QueryOutcome {
  const resultType = isRecord(data) ? data.resultType : undefined;
  const result = isRecord(data) ? data.result : undefined;
  switch (resultType) {
    case "scalar": {
      const v = sampleOf(address, result);
      return typeof v === "number" ? { kind: "value", value: v } : v;
    }
    case "vector": {
      if (!Array.isArray(result)) break;
      if (result.length === 0) return { kind: "empty" };
      const series = result.map((s: unknown) => ({ key: labelKey(isRecord(s) ? s.metric : undefined), sample: s }));
      series.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      const values: number[] = [];
      const labels: SeriesLabels[] = [];
      for (const { sample } of series) {
        if (isRecord(sample) && sample.value === undefined && sample.histogram !== undefined) {
          return {
            kind: "error",
            permanent: true,
            message: `Prometheus at ${address}: the query returns native histogram samples, not numbers; wrap it in histogram_quantile(), histogram_count() or similar`,
          };
        }
        const v = sampleOf(address, isRecord(sample) ? sample.value : undefined);
        if (typeof v !== "number") return v;
        values.push(v);
        labels.push(labelsOf(isRecord(sample) ? sample.metric : undefined));
      }
      return { kind: "value", value: values, labels };
    }
    case "matrix":
      return {
        kind: "error",
        permanent: true,
        message: `Prometheus at ${address}: the query returns a range vector; analysis needs an instant vector or a scalar, e.g. wrap the range selector in rate() or avg_over_time()`,
      };
    case "string":
      return { kind: "error", permanent: true, message: `Prometheus at ${address}: the query returns a string, not a number` };
  }
  return { kind: "error", message: `Prometheus at ${address} returned an unexpected query result${snippet(data)}` };
}

/**
 * Turns a complete HTTP answer into an outcome. Prometheus' own error text is quoted as
 * `errorType: error`; `bad_data` (a query that does not parse, or an invalid parameter) is
 * permanent, while execution errors and Prometheus' own timeouts may clear by themselves.
 */
export function outcomeFromResponse(address: string, status: number, statusText: string, body: unknown): QueryOutcome {
  if (isRecord(body) && body.status === "error" && typeof body.error === "string") {
    const errorType = typeof body.errorType === "string" && body.errorType ? body.errorType : "error";
    const quoted = `${errorType}: ${body.error}`;
    if (errorType === "bad_data") {
      return { kind: "error", permanent: true, message: `Prometheus at ${address} rejected the query (HTTP ${status}): ${quoted}` };
    }
    return { kind: "error", message: `Prometheus at ${address} could not run the query (HTTP ${status}): ${quoted}` };
  }
  if (status < 200 || status >= 300) {
    return { kind: "error", message: `Prometheus at ${address} answered HTTP ${status}${statusText ? ` ${statusText}` : ""}${snippet(body)}` };
  }
  if (isRecord(body) && body.status === "success") return outcomeFromData(address, body.data);
  return { kind: "error", message: `${address} answered HTTP ${status} with something that is not a Prometheus API response${snippet(body)}` };
}

function isDriverFailure(e: unknown): e is DriverFailure {
  return isRecord(e) && e.status === "error" && !(e instanceof Error);
}

/** The most specific text of a network failure; axios leaves `message` empty for some. */
function networkDetail(f: DriverFailure): string {
  const original = f.original as { cause?: { message?: string; errors?: { message?: string }[] } } | undefined;
  const candidates = [f.error, original?.cause?.message, original?.cause?.errors?.map((e) => e.message).join("; ")];
  const text = candidates.find((c) => typeof c === "string" && c.trim() !== "") ?? "network error";
  return f.code && !text.includes(f.code) ? `${text} (${f.code})` : text;
}

/** Queries one Prometheus server (the spec's `prometheus.address`). */
export class PrometheusProvider implements MetricsProvider {
  /** The base URL, without a trailing slash, as named in every error message. */
  readonly address: string;
  /** Agents resolving through the egress policy, when there is one (else axios' defaults). */
  readonly #agents: { httpAgent: HttpAgent; httpsAgent: HttpsAgent } | undefined;

  /**
   * @param address an http:// or https:// base URL; a path prefix (a Prometheus behind a
   *   reverse proxy at /prometheus) is kept.
   * @throws TypeError for anything else: the schema has already rejected such addresses, so
   *   reaching here with one is a programming error.
   * @param options.egress the cluster admin's egress policy: the address a name resolves to is
   *   checked before connecting (the address as written was checked by reconcile), so a name
   *   pointing at the metadata service never gets a query, nor its answer into status.
   */
  constructor(address: string, options: { egress?: EgressPolicy } = {}) {
    let url: URL;
    try {
      url = new URL(address);
    } catch {
      throw new TypeError(`Prometheus address ${JSON.stringify(address)} is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new TypeError(`Prometheus address ${JSON.stringify(address)} must be an http:// or https:// URL`);
    }
    this.address = address.replace(/\/+$/, "");
    const lookup = options.egress ? egressLookup(options.egress) : undefined;
    this.#agents = lookup ? { httpAgent: new HttpAgent({ lookup }), httpsAgent: new HttpsAgent({ lookup }) } : undefined;
  }

  /**
   * Runs an instant query at the current time. Never rejects for network, HTTP or PromQL
   * problems: those are `{ kind: "error" }` outcomes (see {@link MetricsProvider}).
   * @throws RangeError when timeoutMs is not a positive finite number.
   */
  async query(promql: string, opts: QueryOptions): Promise<QueryOutcome> {
    const { timeoutMs, signal } = opts;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`timeoutMs must be a positive number, got ${timeoutMs}`);
    // The timeout comes from the spec (analysis.prometheus.timeout): AbortSignal.timeout fires
    // at once beyond 2^31-1 ms, so it is bounded.
    const timeout = Math.ceil(boundedDelay(timeoutMs));
    const address = this.address;
    const agents = this.#agents;
    const cancelled = (): QueryOutcome => ({ kind: "error", message: `query to Prometheus at ${address} was cancelled` });
    if (signal?.aborted) return cancelled();

    // One deadline for the whole exchange; axios' own timeout only bounds socket inactivity.
    const deadline = AbortSignal.timeout(timeout);
    const combined = signal ? AbortSignal.any([signal, deadline]) : deadline;
    let exchange: Exchange | undefined;
    const record = (res: { status: number; statusText: string; data: unknown }): void => {
      exchange = { status: res.status, statusText: res.statusText, body: res.data };
    };
    const onRequest: RequestInterceptor["onFulfilled"] = (config) => {
      config.signal = combined;
      config.maxContentLength = MAX_RESPONSE_BYTES;
      if (agents) Object.assign(config, agents);
      return config;
    };
    const onResponse: ResponseInterceptor["onFulfilled"] = (res) => {
      record(res);
      return res;
    };
    const onResponseError = (err: unknown): never => {
      const res = isRecord(err) ? err.response : undefined;
      if (isRecord(res) && typeof res.status === "number") {
        record({ status: res.status, statusText: typeof res.statusText === "string" ? res.statusText : "", data: res.data });
      }
      throw err;
    };
    const driver = new PrometheusDriver({
      endpoint: address,
      baseURL: "/api/v1/",
      timeout,
      // POST: rendered queries can be long, and proxies limit URL length.
      preferPost: true,
      requestInterceptor: { onFulfilled: onRequest },
      responseInterceptor: { onFulfilled: onResponse, onRejected: onResponseError },
    });

    let failure: unknown;
    try {
      // Prometheus gets the same budget, so it stops evaluating a query nobody waits for.
      await driver.instantQuery(promql, undefined, `${timeout}ms`);
    } catch (e) {
      failure = e;
    }
    // The raw answer decides even when the driver's own parsing choked on it.
    if (exchange !== undefined) return outcomeFromResponse(address, exchange.status, exchange.statusText, exchange.body);
    if (failure !== undefined && !isDriverFailure(failure)) throw failure;
    if (deadline.aborted || (isDriverFailure(failure) && (failure.errorType === "timeout_error" || failure.code === "ETIMEDOUT"))) {
      return { kind: "error", message: `Prometheus at ${address} did not answer within ${formatMs(timeout)} (timeout)` };
    }
    if (signal?.aborted) return cancelled();
    if (isDriverFailure(failure)) return { kind: "error", message: `cannot reach Prometheus at ${address}: ${networkDetail(failure)}` };
    return { kind: "error", message: `Prometheus at ${address} gave no answer` };
  }
}
