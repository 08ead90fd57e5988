/**
 * Property-based tests of the condition language and of the measurement judgement around it
 * (fast-check, fixed seed, bounded runs): compiling or evaluating any text throws nothing but an
 * ExprError, NaN can never decide a condition the other way than a real number would, and a
 * measurement holding NaN or an infinity is never Successful unless the metric says so.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { judgeMeasurement, type Judge } from "./assess.ts";
import { compileCondition, evaluateCondition, ExprError, type CompiledCondition, type ResultValue } from "./expr.ts";

const SEED = 20261129;
const opts = { seed: SEED, numRuns: 400 };

/** Only ExprError may escape; anything else (a TypeError, a stack overflow) is a bug. */
function tryCompile(source: string): CompiledCondition | ExprError {
  try {
    return compileCondition(source);
  } catch (err) {
    if (!(err instanceof ExprError)) throw err;
    return err;
  }
}

function tryEvaluate(c: CompiledCondition, result: ResultValue): boolean | undefined | ExprError {
  try {
    return evaluateCondition(c, result);
  } catch (err) {
    if (!(err instanceof ExprError)) throw err;
    return err;
  }
}

// Token soup: mostly the language's own words, so the parser gets past the first token often.
const TOKENS = ["result", "result[0]", "(", ")", "[", "]", "!", "not", "-", "+", "*", "/", "&&", "||", "and", "or", "<", "<=", ">", ">=", "==", "!=",
  "0", "1", "0.5", "1e309", "1e-9", ".5", "isNaN", "abs", "min", "max", "len", ",", "true", "false", " ", "=", "&", "\"", "__proto__", "constructor", "1.2.3", "2x"];
const soup = fc.array(fc.constantFrom(...TOKENS), { maxLength: 30 }).map((t) => t.join(" "));
const anyText = fc.oneof(soup, fc.string({ unit: "binary", maxLength: 64 }), fc.string({ unit: "grapheme", maxLength: 64 }));

// Well-typed conditions, generated from the grammar, so evaluation is reached every time.
const num: fc.Arbitrary<string> = fc.letrec<{ num: string; bool: string }>((tie) => ({
  num: fc.oneof(
    { depthSize: "small" },
    fc.constantFrom("result", "1", "0", "0.01", "100", "len(result)"),
    fc.tuple(tie("num"), fc.constantFrom("+", "-", "*", "/"), tie("num")).map(([a, op, b]) => `(${a} ${op} ${b})`),
    fc.tuple(fc.constantFrom("abs", "min", "max"), tie("num")).map(([f, a]) => `${f}(${a})`),
    fc.tuple(fc.constantFrom("min", "max"), tie("num"), tie("num")).map(([f, a, b]) => `${f}(${a}, ${b})`),
    tie("num").map((a) => `-${a}`),
    fc.tuple(fc.constantFrom("result", "(result * 2)"), fc.constantFrom("0", "1", "(1 - 1)")).map(([t, i]) => `${t}[${i}]`),
  ),
  bool: fc.oneof(
    { depthSize: "small" },
    fc.tuple(tie("num"), fc.constantFrom("<", "<=", ">", ">=", "==", "!="), tie("num")).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.tuple(tie("bool"), fc.constantFrom("&&", "||", "and", "or", "==", "!="), tie("bool")).map(([a, op, b]) => `(${a}) ${op} (${b})`),
    tie("bool").map((a) => `!(${a})`),
    fc.constantFrom("true", "false"),
  ),
})).bool;
const condition = num.filter((s) => s.length <= 4096);

const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
const anyNumber = fc.oneof(finite, fc.constantFrom(NaN, Infinity, -Infinity, 0, -0));
const result: fc.Arbitrary<ResultValue> = fc.oneof(anyNumber, fc.array(anyNumber, { maxLength: 4 }));

describe("conditions: properties", () => {
  it("compiling any text either succeeds or throws an ExprError, never anything else", () => {
    fc.assert(fc.property(anyText, (s) => {
      const c = tryCompile(s);
      if (c instanceof ExprError) expect(c.message.length).toBeGreaterThan(0);
    }), opts);
  });

  it("nesting past the limit is an ExprError, not a stack overflow", () => {
    fc.assert(fc.property(fc.integer({ min: 65, max: 2000 }), fc.constantFrom("(", "!", "-", "abs(", "result["), (n, open) => {
      expect(tryCompile(`${open.repeat(n)}1`)).toBeInstanceOf(ExprError);
    }), { seed: SEED, numRuns: 50 });
  });

  it("every generated condition compiles, and evaluating it on any result gives a truth value or an ExprError", () => {
    fc.assert(fc.property(condition, result, (src, r) => {
      const c = compileCondition(src);
      const v = tryEvaluate(c, r);
      expect(v === true || v === false || v === undefined || v instanceof ExprError).toBe(true);
    }), opts);
  });

  it("NaN never decides a condition: when NaN gives true or false, every real number gives the same (or an ExprError)", () => {
    // isNaN() exists to decide about NaN explicitly, so it is left out here.
    fc.assert(fc.property(condition, fc.array(finite, { minLength: 1, maxLength: 5 }), (src, xs) => {
      const c = compileCondition(src);
      const withNaN = tryEvaluate(c, NaN);
      if (withNaN === undefined || withNaN instanceof ExprError) return;
      for (const x of xs) {
        const v = tryEvaluate(c, x);
        if (!(v instanceof ExprError)) expect(v, `${src} with ${x}`).toBe(withNaN);
      }
    }), opts);
  });
});

describe("judgeMeasurement: NaN and infinities are never a pass", () => {
  const judge = fc.record({
    successCondition: fc.option(condition.map(compileCondition), { nil: undefined }),
    failureCondition: fc.option(condition.map(compileCondition), { nil: undefined }),
    min: fc.option(finite, { nil: undefined }),
    max: fc.option(finite, { nil: undefined }),
    onEmpty: fc.constantFrom("Inconclusive" as const, "Failed" as const, "Successful" as const),
    nonFinite: fc.constant("Inconclusive" as const),
  }) satisfies fc.Arbitrary<Judge>;
  const withNonFinite = fc.tuple(fc.array(finite, { maxLength: 3 }), fc.constantFrom(NaN, Infinity, -Infinity), fc.nat({ max: 3 })).map(([xs, bad, at]) => {
    const values = [...xs];
    values.splice(Math.min(at, values.length), 0, bad);
    return values;
  });

  it("a value holding +Inf or -Inf is never Successful; NaN only when onEmpty says Successful", () => {
    fc.assert(fc.property(judge, withNonFinite, fc.boolean(), (j, values, scalar) => {
      const value = scalar ? values.find((v) => !Number.isFinite(v))! : values;
      const m = judgeMeasurement(j, { kind: "value", value }, new Date(0));
      const infinite = values.some((v) => Math.abs(v) === Infinity) && (!scalar || Math.abs(value as number) === Infinity);
      if (infinite) expect(m.phase).not.toBe("Successful");
      else if (m.phase === "Successful") expect(j.onEmpty).toBe("Successful");
      expect(m.message?.length).toBeGreaterThan(0);
    }), opts);
  });

  it("an empty result is never Successful unless onEmpty says so", () => {
    fc.assert(fc.property(judge, fc.boolean(), (j, emptyVector) => {
      const m = judgeMeasurement(j, emptyVector ? { kind: "value", value: [] } : { kind: "empty" }, new Date(0));
      expect(m.phase).toBe(j.onEmpty);
    }), { seed: SEED, numRuns: 100 });
  });
});
