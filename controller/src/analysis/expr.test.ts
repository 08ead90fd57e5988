import { describe, expect, it } from "vitest";
import { compileCondition, evaluateCondition, ExprError, readsOneSeries, type ResultValue } from "./expr.ts";

const run = (source: string, result: ResultValue): boolean | undefined => evaluateCondition(compileCondition(source), result);

describe("evaluateCondition", () => {
  it.each<[string, ResultValue, boolean | undefined]>([
    // comparisons
    ["result < 0.01", 0.005, true],
    ["result < 0.01", 0.01, false],
    ["result <= 0.01", 0.01, true],
    ["result > 1", 2, true],
    ["result >= 2", 2, true],
    ["result == 3", 3, true],
    ["result != 3", 3, false],
    ["result < 1e-2", 0.005, true],
    ["result < .5", 0.4, true],
    // precedence: * before +, + before comparison, comparison before && before ||
    ["1 + 2 * 3 == 7", 0, true],
    ["(1 + 2) * 3 == 9", 0, true],
    ["10 - 4 - 3 == 3", 0, true],
    ["12 / 2 / 3 == 2", 0, true],
    ["-2 * 3 == -6", 0, true],
    ["- -2 == 2", 0, true],
    ["+result == 4", 4, true],
    ["result * 100 < 5", 0.04, true],
    ["true || false && false", 0, true],
    ["(true || false) && false", 0, false],
    ["!false && false", 0, false],
    ["!(result < 1)", 2, true],
    ["result > 1 == true", 2, true],
    ["result > 0 and result < 1 or false", 0.5, true],
    ["not (result > 1)", 0.5, true],
    ["true", 0, true],
    ["false", 0, false],
    ["true != false", 0, true],
    // functions
    ["abs(result) < 1", -0.5, true],
    ["abs(result - 10) <= 0.5", 10.4, true],
    ["min(result, 5) == 2", 2, true],
    ["max(1, 7, 3) == 7", 0, true],
    ["isNaN(result)", NaN, true],
    ["isNaN(result)", 1, false],
    ["len(result) == 1", 1, true],
    // vectors
    ["result[0] < 1 && result[1] < 1", [0.5, 0.2], true],
    ["result[1] > 1", [0.5, 2], true],
    ["len(result) == 3", [1, 2, 3], true],
    ["max(result) < 4", [1, 2, 3], true],
    ["min(result) > 1", [1, 2, 3], false],
    ["result[len(result) - 1] == 3", [1, 2, 3], true],
    ["result < 1", [0.5], true],
    ["result[0] < 1", 0.5, true],
    ["isNaN(result[5])", [1], true],
    ["isNaN(result[-1])", [1], true],
    ["max(result) > 0", [], undefined],
    ["result[0] / result[1] < 2", [3, 2], true],
    // NaN: three-valued logic, unknown never becomes a match
    ["result < 1", NaN, undefined],
    ["result == result", NaN, undefined],
    ["result != 1", NaN, undefined],
    ["!(result > 1)", NaN, undefined],
    ["result < 1 || true", NaN, true],
    ["result < 1 && false", NaN, false],
    ["result < 1 || false", NaN, undefined],
    ["result < 1 && true", NaN, undefined],
    ["(result < 1) == true", NaN, undefined],
    ["isNaN(result) || result < 1", NaN, true],
    ["!isNaN(result) && result < 1", NaN, false],
    ["result[0] / result[1] < 2", [0, 0], undefined],
    ["!(result[0] / result[1] > 2)", [0, 0], undefined],
    ["result[1] < 1", [0.5], undefined],
    // infinities are values, not missing data
    ["result > 1000", Infinity, true],
    ["result / 0 > 1", 1, true],
  ])("%s with %j -> %s", (source, result, expected) => {
    expect(run(source, result)).toBe(expected);
  });

  it.each<[string, ResultValue, RegExp]>([
    ["result < 1", [1, 2], /result has 2 values at column 1; judge all of them \(min\(result\), max\(result\)\) or reduce the query/],
    ["abs(result) < 1", [1, 2], /result has 2 values/],
    ["result[0.5] < 1", [1, 2], /index 0.5 is not a whole number/],
  ])("%s with %j throws at run time", (source, result, message) => {
    expect(() => run(source, result)).toThrow(message);
  });
});

describe("compileCondition errors", () => {
  it.each<[string, number | undefined, RegExp]>([
    ["result <", 9, /expected a value but found end of input at column 9/],
    ["result < 1)", 11, /unexpected "\)" after a complete expression at column 11/],
    ["(result < 1", 12, /expected "\)" but found end of input at column 12/],
    ["result = 1", 8, /use == to compare/],
    ["result & 1", 8, /use &&/],
    ["result | 1", 8, /use \|\|/],
    ['result == "a"', 11, /strings are not supported/],
    ["result < 1.2.3", 10, /malformed number/],
    ["result < 2x", 10, /malformed number/],
    ["result < 1e", 10, /malformed number/],
    ["result ? 1 : 2", 8, /unexpected character "\?"/],
    ["result.length > 1", 7, /unexpected character "\."/],
    ["result[0", 9, /expected "\]"/],
    ["min() < 1", 1, /min\(\) takes at least 1 argument, got 0/],
    ["abs(1, 2) < 1", 1, /abs\(\) takes exactly 1 argument, got 2/],
    ["isNaN < 1", 1, /isNaN is a function/],
    ["result(1)", 7, /"result" is not a function/],
    ["", undefined, /condition is empty/],
    ["   ", undefined, /condition is empty/],
    // type errors are spec errors too
    ["result", 1, /must be true or false/],
    ["result + 1", 8, /must be true or false/],
    ["!result", 1, /"!" needs a boolean/],
    ["result && true", 8, /"&&" needs booleans/],
    ["result < true", 8, /"<" needs numbers/],
    ["true == 1", 6, /"==" compares a boolean with a number/],
    ["1 < 2 < 3", 7, /"<" needs numbers but got a boolean/],
    ["-true", 1, /"-" needs a number/],
    ["abs(true) < 1", 1, /abs\(\) needs numbers/],
    ["result[true] < 1", 7, /an index must be a number/],
    ["result[result] < 1", 7, /an index must be a number/],
    ["true[0] < 1", 5, /only result or a number can be indexed/],
  ])("%j -> column %s", (source, column, message) => {
    let error: unknown;
    try {
      compileCondition(source);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ExprError);
    expect((error as ExprError).message).toMatch(message);
    expect((error as ExprError).column).toBe(column);
  });

  it.each([
    ["foo < 1", "foo", 1],
    ["result < limit", "limit", 10],
    ["constructor", "constructor", 1],
    ["process.exit(1)", "process", 1],
    ["globalThis < 1", "globalThis", 1],
    ["__proto__ < 1", "__proto__", 1],
    ["toString(result) < 1", "toString", 1],
    ["eval(1) < 1", "eval", 1],
    ["Function(1) < 1", "Function", 1],
    ["Math < 1", "Math", 1],
    ["NaN < 1", "NaN", 1],
    ["Result < 1", "Result", 1],
    ["isnan(result)", "isnan", 1],
  ])("rejects unknown identifier in %j", (source, name, column) => {
    expect(() => compileCondition(source)).toThrow(new RegExp(`unknown identifier "${name}" at column ${column}`));
  });

  it("bounds nesting so a hostile condition cannot exhaust the stack", () => {
    expect(() => compileCondition(`${"(".repeat(200)}true${")".repeat(200)}`)).toThrow(/nested more than 64 levels/);
    expect(() => compileCondition(`${"!".repeat(100)}true`)).toThrow(/nested more than 64 levels/);
    expect(run(`${"(".repeat(30)}result < 1${")".repeat(30)}`, 0)).toBe(true);
  });

  it("rejects very long input", () => {
    expect(() => compileCondition(`result < ${"1".repeat(5000)}`)).toThrow(/longer than 4096/);
  });

  it("compiles once and evaluates many times", () => {
    const c = compileCondition("result < 0.01");
    expect(c.source).toBe("result < 0.01");
    expect([0.001, 0.02, NaN].map((v) => evaluateCondition(c, v))).toEqual([true, false, undefined]);
  });
});

describe("readsOneSeries", () => {
  it.each<[string, boolean]>([
    // one series: by position or as a scalar
    ["result[0] >= 0.95", true],
    ["(result)[1] < 1", true],
    ["result < 1", true],
    ["abs(result) < 1", true],
    ["isNaN(result)", true],
    ["-result < 0", true],
    ["min(result[0]) < 1", true],
    ["min(-result) < 1", true],
    ["max(result) < 1 && result[0] > 0", true],
    ["len(result) == 2 && result[1] > 0.9", true],
    // every series
    ["min(result) >= 0.95", false],
    ["max(result) < 0.01", false],
    ["len(result) == 1", false],
    ["min(result, 0.5) > 0 || max(result) < 2", false],
    ["min(result, 2)[0] < 1", false],
    ["true", false],
    ["1 < 2", false],
  ])("%s -> %s", (source, expected) => {
    expect(readsOneSeries(compileCondition(source))).toBe(expected);
  });
});
