import { describe, expect, it } from "vitest";
import { outcomeFromData, outcomeFromResponse, parseSampleValue, PrometheusProvider } from "./prometheus.ts";

const A = "http://prom:9090";
const vector = (...series: [Record<string, string>, string][]) => ({
  resultType: "vector",
  result: series.map(([metric, v]) => ({ metric, value: [1700000000.123, v] })),
});

describe("parseSampleValue", () => {
  it.each<[unknown, number | undefined]>([
    ["0.25", 0.25],
    ["-3", -3],
    ["1e-7", 1e-7],
    [".5", 0.5],
    ["+Inf", Infinity],
    ["-Inf", -Infinity],
    ["NaN", NaN],
    ["inf", Infinity],
    ["-Infinity", -Infinity],
    ["", undefined],
    [" ", undefined],
    ["0x10", undefined],
    ["abc", undefined],
    ["1.2.3", undefined],
    [1, undefined],
    [undefined, undefined],
  ])("%j -> %s", (text, expected) => {
    expect(parseSampleValue(text)).toBe(expected);
  });
});

describe("outcomeFromData", () => {
  it("returns a scalar as a number, infinities and NaN included", () => {
    expect(outcomeFromData(A, { resultType: "scalar", result: [1, "0.5"] })).toEqual({ kind: "value", value: 0.5 });
    expect(outcomeFromData(A, { resultType: "scalar", result: [1, "+Inf"] })).toEqual({ kind: "value", value: Infinity });
    expect(outcomeFromData(A, { resultType: "scalar", result: [1, "-Inf"] })).toEqual({ kind: "value", value: -Infinity });
    expect(outcomeFromData(A, { resultType: "scalar", result: [1, "NaN"] })).toEqual({ kind: "value", value: NaN });
  });

  it("orders vector values by label set, whatever order Prometheus sent", () => {
    const a = outcomeFromData(A, vector([{ v: "b" }, "2"], [{ v: "a" }, "1"], [{ v: "c" }, "NaN"]));
    const b = outcomeFromData(A, vector([{ v: "c" }, "NaN"], [{ v: "a" }, "1"], [{ v: "b" }, "2"]));
    expect(a).toEqual({ kind: "value", value: [1, 2, NaN], labels: [{ v: "a" }, { v: "b" }, { v: "c" }] });
    expect(b).toEqual(a);
  });

  it("orders by the whole label set, the metric name included", () => {
    const out = outcomeFromData(A, vector([{ __name__: "y", a: "1" }, "2"], [{ __name__: "x", a: "2" }, "1"], [{}, "0"]));
    expect(out).toEqual({ kind: "value", value: [0, 1, 2], labels: [{}, { __name__: "x", a: "2" }, { __name__: "y", a: "1" }] });
  });

  it("keeps only string label values, so a malformed answer cannot smuggle objects into status", () => {
    const out = outcomeFromData(A, vector([{ a: "x", b: 1, c: { d: "e" } } as unknown as Record<string, string>, "1"]));
    expect(out).toEqual({ kind: "value", value: [1], labels: [{ a: "x" }] });
  });

  it("treats an empty vector as empty, not as zero", () => {
    expect(outcomeFromData(A, { resultType: "vector", result: [] })).toEqual({ kind: "empty" });
  });

  it.each([
    ["a range vector", { resultType: "matrix", result: [] }, /range vector/],
    ["a string", { resultType: "string", result: [1, "x"] }, /string/],
    ["a native histogram", { resultType: "vector", result: [{ metric: {}, histogram: [1, {}] }] }, /native histogram/],
  ])("rejects %s permanently", (_name, data, message) => {
    const out = outcomeFromData(A, data);
    expect(out).toMatchObject({ kind: "error", permanent: true });
    expect(out.kind === "error" && out.message).toMatch(message);
  });

  it.each([
    ["no data", undefined],
    ["an unknown result type", { resultType: "table", result: [] }],
    ["a value that is not a number", vector([{}, "twelve"])],
    ["a sample without a value", { resultType: "vector", result: [{ metric: {} }] }],
  ])("reports %s as an error naming the address", (_name, data) => {
    const out = outcomeFromData(A, data);
    expect(out).toMatchObject({ kind: "error" });
    expect(out.kind === "error" && out.message).toContain(A);
    expect(out.kind === "error" && out.permanent).toBeFalsy();
  });
});

describe("outcomeFromResponse", () => {
  it("quotes a PromQL parse error and marks it permanent", () => {
    const body = { status: "error", errorType: "bad_data", error: 'invalid parameter "query": 1:15: parse error: unclosed left parenthesis' };
    expect(outcomeFromResponse(A, 400, "Bad Request", body)).toEqual({
      kind: "error",
      permanent: true,
      message: `Prometheus at ${A} rejected the query (HTTP 400): bad_data: invalid parameter "query": 1:15: parse error: unclosed left parenthesis`,
    });
  });

  it("quotes execution errors and Prometheus timeouts without marking them permanent", () => {
    const exec = outcomeFromResponse(A, 422, "", { status: "error", errorType: "execution", error: "many-to-many matching not allowed" });
    expect(exec).toEqual({ kind: "error", message: `Prometheus at ${A} could not run the query (HTTP 422): execution: many-to-many matching not allowed` });
    const timeout = outcomeFromResponse(A, 503, "", { status: "error", errorType: "timeout", error: "query timed out in expression evaluation" });
    expect(timeout).toMatchObject({ kind: "error", message: expect.stringContaining("timeout: query timed out") });
    expect(timeout).not.toHaveProperty("permanent");
  });

  it("names the HTTP status of an answer that is not Prometheus JSON, with a bounded excerpt", () => {
    const out = outcomeFromResponse(A, 502, "Bad Gateway", `<html>\n  <body>upstream down${"x".repeat(500)}</body></html>`);
    expect(out.kind).toBe("error");
    const message = out.kind === "error" ? out.message : "";
    expect(message).toMatch(new RegExp(`^Prometheus at ${A} answered HTTP 502 Bad Gateway: <html> <body>upstream down`));
    expect(message.length).toBeLessThan(300);
  });

  it("rejects a 200 that is not a Prometheus API response", () => {
    const out = outcomeFromResponse(A, 200, "OK", "<html>hello</html>");
    expect(out).toMatchObject({ kind: "error", message: expect.stringMatching(/not a Prometheus API response/) });
  });

  it("parses a successful answer", () => {
    expect(outcomeFromResponse(A, 200, "OK", { status: "success", data: vector([{}, "0.01"]) })).toEqual({ kind: "value", value: [0.01], labels: [{}] });
  });
});

describe("PrometheusProvider", () => {
  it("rejects addresses the schema would have rejected, as programming errors", () => {
    expect(() => new PrometheusProvider("prom:9090")).toThrow(TypeError);
    expect(() => new PrometheusProvider("ftp://prom")).toThrow(/http:\/\/ or https:\/\//);
  });

  it("keeps a path prefix and drops trailing slashes", () => {
    expect(new PrometheusProvider("http://gw/prometheus/").address).toBe("http://gw/prometheus");
  });

  it("rejects a timeout that is not positive", async () => {
    await expect(new PrometheusProvider(A).query("up", { timeoutMs: 0 })).rejects.toThrow(RangeError);
  });

  it("does not send a query whose signal is already aborted", async () => {
    const out = await new PrometheusProvider("http://127.0.0.1:9").query("up", { timeoutMs: 1000, signal: AbortSignal.abort() });
    expect(out).toEqual({ kind: "error", message: "query to Prometheus at http://127.0.0.1:9 was cancelled" });
  });
});
