/**
 * Property-based tests of PromQL templating (fast-check, fixed seed, bounded runs): whatever a
 * value holds (quotes, backslashes, newlines, backticks, `}}`, `#`), it cannot change the shape
 * of the query. Checked two ways: a value in a label matcher reads back exactly as the value
 * through a PromQL string lexer written here from the PromQL (Go) escaping rules, and for random
 * templates the rendered query has the same string/comment/token skeleton as with a harmless
 * value, or rendering is refused with a TemplateError.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileTemplate, renderTemplate, TemplateError, type TemplateVars } from "./template.ts";

const SEED = 20261129;
const opts = { seed: SEED, numRuns: 400 };

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { a: "\x07", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v", "\\": "\\", "'": "'", '"': '"' };

/**
 * Reads the PromQL string literal that opens at `start` (a " or ' quote). Returns its decoded value
 * and the index just past the closing quote, or undefined when it is not a valid literal.
 */
function readPromString(text: string, start: number): { value: string; end: number } | undefined {
  const quote = text[start];
  let value = "";
  let i = start + 1;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === quote) return { value, end: i + 1 };
    if (ch === "\n") return undefined;
    if (ch !== "\\") {
      value += ch;
      i++;
      continue;
    }
    const e = text[i + 1] ?? "";
    if (e in SIMPLE_ESCAPES) {
      value += SIMPLE_ESCAPES[e];
      i += 2;
    } else if (e === "x" && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 2, i + 4))) {
      value += String.fromCharCode(parseInt(text.slice(i + 2, i + 4), 16));
      i += 4;
    } else {
      return undefined;
    }
  }
  return undefined;
}

/**
 * The shape of a query: string literals, backtick strings and comments reduced to a marker,
 * names and numbers to `w`; everything else (operators, brackets, braces) kept.
 */
function skeleton(text: string): string {
  let out = "";
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"' || ch === "'") {
      const s = readPromString(text, i);
      if (!s) return `${out}<unterminated ${ch}>`;
      out += `${ch}S${ch}`;
      i = s.end;
    } else if (ch === "`") {
      const end = text.indexOf("`", i + 1);
      if (end < 0) return `${out}<unterminated \`>`;
      out += "`S`";
      i = end + 1;
    } else if (ch === "#") {
      const end = text.indexOf("\n", i);
      out += "#C";
      i = end < 0 ? text.length : end;
    } else {
      const word = /^[+-]?[A-Za-z0-9_.:]+/.exec(text.slice(i));
      if (word) {
        out += "w";
        i += word[0].length;
      } else {
        out += ch;
        i++;
      }
    }
  }
  return out;
}

// Values that try every trick, and values that pass as bare names or numbers.
const hostile = fc.oneof(
  fc.string({ unit: "binary", maxLength: 24 }),
  fc.array(fc.constantFrom('"', "'", "`", "\\", "}", "}}", "{{", "#", "\n", "\r", "\t", "\x00", "\x7f", ")", "]", " or vector(1)", "a", "\u2028", "é"), { maxLength: 8 }).map((p) => p.join("")),
  fc.constantFrom("-1", "5m", "1e9", "job:rate5m", "or", "bool", "0x1f"),
);
const ARG_NAMES = ["x", "window", "job"];
const vars = (value: fc.Arbitrary<string>): fc.Arbitrary<TemplateVars> =>
  fc.record({
    rollout: value,
    namespace: value,
    stable: value,
    candidate: value,
    interval: value,
    args: fc.record({ x: value, window: value, job: value }),
  });
const benign: TemplateVars = { rollout: "x", namespace: "x", stable: "x", candidate: "x", interval: "x", args: { x: "x", window: "x", job: "x" } };

const PLACEHOLDERS = ["{{rollout}}", "{{namespace}}", "{{candidate}}", "{{interval}}", ...ARG_NAMES.map((a) => `{{ args.${a} }}`)];
const FRAGMENTS = ['sum(rate(m{a="', '"}[5m]))', "{v='", "'}", '"', "'", "`", "#", "\n", " ", "\\", "(", ")", "[", "]", " > ", " offset ", " or ", "==", "m_total"];
const template = fc.array(fc.oneof(fc.constantFrom(...FRAGMENTS), fc.constantFrom(...PLACEHOLDERS)), { maxLength: 14 }).map((parts) => parts.join(""));

function tryRender(t: string, v: TemplateVars): string | TemplateError {
  try {
    return renderTemplate(t, v);
  } catch (err) {
    if (!(err instanceof TemplateError)) throw err;
    return err;
  }
}

describe("templates: properties", () => {
  it("a value in a double- or single-quoted label matcher reads back as exactly that value, and the query goes on as written", () => {
    fc.assert(fc.property(hostile, fc.constantFrom('"', "'"), (value, q) => {
      const head = `sum(rate(airollout_requests_total{rollout=${q}`;
      const tail = `${q},code=~"5.."}[1m]))`;
      const out = renderTemplate(`${head}{{args.x}}${tail}`, { ...benign, args: { x: value } });
      expect(out.startsWith(head)).toBe(true);
      const lit = readPromString(out, head.length - 1);
      expect(lit, out).toBeDefined();
      expect(lit!.value).toBe(value);
      expect(out.slice(lit!.end)).toBe(tail.slice(1));
    }), opts);
  });

  it("outside quotes a value is a single name or number, or it is refused naming the variable", () => {
    fc.assert(fc.property(hostile, (value) => {
      const out = tryRender("rate(m[{{args.window}}]) > 0", { ...benign, args: { window: value } });
      if (out instanceof TemplateError) {
        expect(out.variable).toBe("args.window");
      } else {
        expect(out).toBe(`rate(m[${value}]) > 0`);
        expect(value).toMatch(/^[+-]?[A-Za-z0-9_.:]+$/);
      }
    }), opts);
  });

  it("in a backtick string a value without backticks is kept as is; one with a backtick is refused", () => {
    fc.assert(fc.property(hostile, (value) => {
      const out = tryRender("label_replace(m, `{{args.x}}`)", { ...benign, args: { x: value } });
      if (value.includes("`")) expect(out).toBeInstanceOf(TemplateError);
      else expect(out).toBe(`label_replace(m, \`${value}\`)`);
    }), opts);
  });

  it("no value changes a random template's shape: same skeleton as a harmless value, or a TemplateError", () => {
    fc.assert(fc.property(template, vars(hostile), (t, v) => {
      const safe = tryRender(t, benign);
      const out = tryRender(t, v);
      if (safe instanceof TemplateError) {
        // A template that cannot be compiled fails the same way whatever the values.
        if (!safe.variable) expect(out).toBeInstanceOf(TemplateError);
        return;
      }
      if (out instanceof TemplateError) return;
      expect(skeleton(out), `${JSON.stringify(t)} -> ${JSON.stringify(out)}`).toBe(skeleton(safe));
    }), opts);
  });

  it("compiling any text throws nothing but a TemplateError", () => {
    fc.assert(fc.property(fc.oneof(template, fc.string({ unit: "binary", maxLength: 64 })), (t) => {
      try {
        compileTemplate(t);
      } catch (err) {
        expect(err).toBeInstanceOf(TemplateError);
      }
    }), opts);
  });
});
