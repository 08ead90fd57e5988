import { describe, expect, it } from "vitest";
import { parseDuration } from "../api/duration.ts";
import {
  compileTemplate,
  escapePromQLString,
  formatPromDuration,
  renderTemplate,
  TemplateError,
  unknownVariables,
  type TemplateVars,
} from "./template.ts";

const vars: TemplateVars = {
  rollout: "triage",
  namespace: "bots",
  stable: "v1",
  candidate: "v2",
  interval: "30s",
  args: { window: "5m", quantile: "0.99", code: '5.."} or vector(1) or {x="' },
};

describe("renderTemplate", () => {
  it.each<[string, string]>([
    ['up{rollout="{{rollout}}"}', 'up{rollout="triage"}'],
    ['x{namespace="{{ namespace }}",version="{{candidate}}"}', 'x{namespace="bots",version="v2"}'],
    ['x{version="{{stable}}"}[{{interval}}]', 'x{version="v1"}[30s]'],
    ["rate(x[{{args.window}}])", "rate(x[5m])"],
    ["histogram_quantile({{args.quantile}}, x)", "histogram_quantile(0.99, x)"],
    ["no variables here", "no variables here"],
    ['sum by (le) (x{a="{b}"})', 'sum by (le) (x{a="{b}"})'],
  ])("%s", (template, expected) => {
    expect(renderTemplate(template, vars)).toBe(expected);
  });

  it("refuses a dashed name outside quotes, where PromQL would read it as a subtraction", () => {
    expect(() => renderTemplate("x > {{rollout}}", { ...vars, rollout: "my-app" })).toThrow(/\{\{rollout\}\} is used outside a quoted string/);
  });

  // Found by template.property.test.ts: `-1` is a number, but after an operand it is a subtraction.
  it.each([
    ["x {{args.t}}", "-1", "x - 1"],
    ["{{args.t}}{{args.t}}", "-1", "-1 - 1"],
    ["sum(x) {{args.t}}", "+2", "sum(x) + 2"],
  ])("refuses a signed value after an operand: %s with %s would read as %s", (template, t) => {
    expect(() => renderTemplate(template, { ...vars, args: { t } })).toThrow(/follows an operand, so its signed value/);
  });

  it.each([
    ["x > {{args.t}}", "x > -1"],
    ["x offset {{args.t}}", "x offset -1"],
    ["x > bool {{args.t}}", "x > bool -1"],
    ["max(x, {{args.t}})", "max(x, -1)"],
    ["{{args.t}}", "-1"],
  ])("keeps a signed value where the sign is unary: %s", (template, expected) => {
    expect(renderTemplate(template, { ...vars, args: { t: "-1" } })).toBe(expected);
  });

  it.each<[string, string, string]>([
    ["double quotes", 'x{code=~"{{args.code}}"}', String.raw`x{code=~"5..\"} or vector(1) or {x=\""}`],
    ["single quotes", "x{code=~'{{args.v}}'}", String.raw`x{code=~'it\'s \\ "ok"'}`],
    ["escaped quote before placeholder", String.raw`x{a="\"{{args.v}}"}`, String.raw`x{a="\"it's \\ \"ok\""}`],
    ["backtick strings have no escapes", "x{a=`{{args.plain}}`}", "x{a=`a\\b`}"],
    ["comment", "x # {{args.window}}\n", "x # 5m\n"],
  ])("escapes for the string it sits in: %s", (_name, template, expected) => {
    const v = { ...vars, args: { ...vars.args, v: `it's \\ "ok"`, plain: "a\\b" } };
    expect(renderTemplate(template, v)).toBe(expected);
  });

  it.each<[string, string, string]>([
    ["rate(x[{{args.evil}}])", "1m]) or vector(1", "args.evil"],
    ["x > {{args.evil}}", "1 or vector(1)", "args.evil"],
    ["x > {{args.evil}}", "", "args.evil"],
    ["x # {{args.evil}}", "a\nvector(1)", "args.evil"],
    ["x{a=`{{args.evil}}`}", "` or vector(1) or `", "args.evil"],
  ])("refuses a value that would change the query's shape: %s with %j", (template, value, variable) => {
    const v = { ...vars, args: { evil: value } };
    let error: unknown;
    try {
      renderTemplate(template, v);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TemplateError);
    expect((error as TemplateError).variable).toBe(variable);
    expect((error as TemplateError).message).toContain(`{{${variable}}}`);
  });

  it.each<[string, string, string]>([
    ["x{a=\"{{rolout}}\"}", "rolout", "{{rolout}}"],
    ["x[{{args.missing}}]", "args.missing", "{{args.missing}}"],
    ["x{a=\"{{args}}\"}", "args", "{{args}}"],
    ["x{a=\"{{args.constructor}}\"}", "args.constructor", "{{args.constructor}}"],
    ["x{a=\"{{args.__proto__}}\"}", "args.__proto__", "{{args.__proto__}}"],
    ["x{a=\"{{toString}}\"}", "toString", "{{toString}}"],
    ["{{a}} {{b}}", "a", "unknown template variables {{a}}, {{b}}"],
  ])("unknown variable: %s", (template, variable, message) => {
    let error: unknown;
    try {
      renderTemplate(template, vars);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(TemplateError);
    expect((error as TemplateError).variable).toBe(variable);
    expect((error as TemplateError).message).toContain(message);
  });

  it.each<[string, RegExp]>([
    ["x{{rollout", /unclosed "\{\{" at offset 1/],
    ["x{{}}", /"\{\{\}\}" is not a variable/],
    ["x{{ rollout name }}", /is not a variable/],
    ["x{{args.a.b}}", /is not a variable/],
    ["x{{1abc}}", /is not a variable/],
  ])("malformed placeholder %s", (template, message) => {
    expect(() => compileTemplate(template)).toThrow(message);
  });
});

describe("unknownVariables", () => {
  it.each<[string, string[], string[]]>([
    ['x{a="{{rollout}}",b="{{namespace}}",c="{{stable}}",d="{{candidate}}"}[{{interval}}]', [], []],
    ["[{{args.window}}] {{args.floor}}", ["window"], ["args.floor"]],
    ["{{foo}} {{foo}} {{args.x}}", ["x"], ["foo"]],
  ])("%s with args %j", (template, args, expected) => {
    expect(unknownVariables(compileTemplate(template), args)).toEqual(expected);
  });

  it("lists variables once, in order of first use", () => {
    expect(compileTemplate("{{b}} {{a}} {{b}} {{args.x}}").variables).toEqual(["b", "a", "args.x"]);
  });
});

describe("escapePromQLString", () => {
  it.each<[string, string]>([
    ["plain", "plain"],
    ['a"b', 'a\\"b'],
    ["a\\b", "a\\\\b"],
    ["line\nbreak\r\ttab", "line\\nbreak\\r\\ttab"],
    ["bell\u0007", "bell\\x07"],
    ["del\u007f", "del\\x7f"],
    ["unicode é ✓", "unicode é ✓"],
    ["'single'", "'single'"],
  ])("%j", (value, expected) => {
    expect(escapePromQLString(value)).toBe(expected);
  });

  it("escapes single quotes for single-quoted strings", () => {
    expect(escapePromQLString(`it's "x"`, "'")).toBe(`it\\'s "x"`);
  });
});

describe("formatPromDuration", () => {
  it.each<[number, string]>([
    [30_000, "30s"],
    [90_000, "1m30s"],
    [5_400_000, "1h30m"],
    [3_600_000, "1h"],
    [1_500, "1500ms"],
    [60_500, "60500ms"],
    [0, "0s"],
    [3_661_000, "1h1m1s"],
  ])("%d ms -> %s", (ms, text) => {
    expect(formatPromDuration(ms)).toBe(text);
  });

  it("turns decimal spec durations into PromQL form", () => {
    expect(formatPromDuration(parseDuration("1.5m"))).toBe("1m30s");
  });
});
