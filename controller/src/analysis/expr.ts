/**
 * A small, safe expression language for successCondition / failureCondition.
 *
 * Conditions come from users' YAML, so they are never handed to eval or Function: a tokenizer
 * and a recursive-descent parser build an AST once (when the spec is read), a type check runs
 * over it, and evaluation walks the AST. The only name in scope is `result`; there is no member
 * access, so `constructor`, `process` or `__proto__` cannot be reached: they are simply unknown
 * identifiers and rejected at compile time, so a bad condition is a spec error reported once,
 * not an Error at every measurement.
 *
 * Grammar (lowest precedence first):
 *   or      := and (("||" | "or") and)*
 *   and     := eq (("&&" | "and") eq)*
 *   eq      := cmp (("==" | "!=") cmp)*
 *   cmp     := add (("<" | "<=" | ">" | ">=") add)*
 *   add     := mul (("+" | "-") mul)*
 *   mul     := unary (("*" | "/") unary)*
 *   unary   := ("!" | "not" | "-" | "+") unary | postfix
 *   postfix := primary ("[" or "]")*
 *   primary := number | "true" | "false" | "result" | fn "(" [or ("," or)*] ")" | "(" or ")"
 *   fn      := isNaN | abs | min | max | len
 *
 * NaN follows three-valued logic: a comparison with a NaN operand is *unknown*, `!unknown` is
 * unknown, `unknown || true` is true and `unknown && false` is false. A condition that ends up
 * unknown has not matched, so arithmetic that produces NaN (0/0) can never turn
 * `!(result > 1)` into a success. Use isNaN() to decide about NaN explicitly.
 */

/** What `result` holds: a scalar, or the values of an instant vector in series order. */
export type ResultValue = number | readonly number[];

/** A compile or evaluation error. `column` is 1-based and set for errors tied to a position. */
export class ExprError extends Error {
  readonly column: number | undefined;

  /** `hint` follows the column so the position stays next to the problem it locates. */
  constructor(message: string, column?: number, hint?: string) {
    super(`${message}${column === undefined ? "" : ` at column ${column}`}${hint ? `; ${hint}` : ""}`);
    this.name = "ExprError";
    this.column = column;
  }
}

const FUNCTIONS = ["isNaN", "abs", "min", "max", "len"] as const;
type FnName = (typeof FUNCTIONS)[number];
const KNOWN_NAMES = ["result", "true", "false", "and", "or", "not", ...FUNCTIONS].join(", ");
const MAX_DEPTH = 64;
const MAX_LENGTH = 4096;

type BinaryOp = "||" | "&&" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "+" | "-" | "*" | "/";

/**
 * Static types: `num` is a scalar, `series` is what `result` is (a scalar or a vector, known
 * only at run time), `bool` is a truth value.
 */
type Type = "num" | "series" | "bool";

/** A node of a checked condition's syntax tree. */
export type ExprNode =
  | { kind: "num"; value: number; col: number }
  | { kind: "bool"; value: boolean; col: number }
  | { kind: "result"; col: number }
  | { kind: "index"; target: ExprNode; index: ExprNode; col: number }
  | { kind: "unary"; op: "!" | "-" | "+"; operand: ExprNode; col: number }
  | { kind: "binary"; op: BinaryOp; left: ExprNode; right: ExprNode; col: number }
  | { kind: "call"; fn: FnName; args: ExprNode[]; col: number };

// A "bad" token carries a lexical error; the parser raises it only when it gets there, so errors
// are reported in reading order (`process.exit` names "process", not the ".").
type TokenKind = "num" | "ident" | "op" | "bad" | "end";
interface Token {
  kind: TokenKind;
  text: string;
  col: number;
}

/** A condition compiled once; evaluate it with {@link evaluateCondition}. */
export interface CompiledCondition {
  readonly source: string;
  /** The checked AST; opaque to callers. */
  readonly ast: ExprNode;
}

const NUMBER = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/;
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*/;
const OPERATORS = ["&&", "||", "==", "!=", "<=", ">=", "<", ">", "!", "+", "-", "*", "/", "(", ")", "[", "]", ","];

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  lex(source, tokens);
  tokens.push({ kind: "end", text: "end of input", col: source.length + 1 });
  return tokens;
}

function lex(source: string, tokens: Token[]): void {
  const bad = (text: string, col: number): void => {
    tokens.push({ kind: "bad", text, col });
  };
  let i = 0;
  while (i < source.length) {
    const ch = source[i] ?? "";
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const col = i + 1;
    const rest = source.slice(i);
    const num = NUMBER.exec(rest);
    if (num) {
      // `1.5.2` or `2x` would otherwise tokenize into two valid-looking tokens.
      const after = rest[num[0].length];
      if (after !== undefined && /[A-Za-z0-9_.]/.test(after)) {
        return bad(`malformed number "${rest.slice(0, num[0].length + 1)}"`, col);
      }
      tokens.push({ kind: "num", text: num[0], col });
      i += num[0].length;
      continue;
    }
    const ident = IDENT.exec(rest);
    if (ident) {
      tokens.push({ kind: "ident", text: ident[0], col });
      i += ident[0].length;
      continue;
    }
    const op = OPERATORS.find((o) => rest.startsWith(o));
    if (op) {
      tokens.push({ kind: "op", text: op, col });
      i += op.length;
      continue;
    }
    if (ch === "=") return bad(`unexpected "=" (use == to compare)`, col);
    if (ch === "&" || ch === "|") return bad(`unexpected "${ch}" (use ${ch}${ch})`, col);
    if (ch === '"' || ch === "'" || ch === "`") return bad("strings are not supported", col);
    return bad(`unexpected character "${ch}"`, col);
  }
}

function describe(t: Token): string {
  return t.kind === "end" ? "end of input" : `"${t.text}"`;
}

class Parser {
  private readonly tokens: Token[];
  private pos = 0;
  private depth = 0;

  constructor(tokens: Token[]) {
    this.tokens = tokens;
  }

  parse(): ExprNode {
    const node = this.or();
    const t = this.peek();
    if (t.kind !== "end") throw new ExprError(`unexpected ${describe(t)} after a complete expression`, t.col);
    return node;
  }

  private peek(): Token {
    // The tokenizer always appends an end token, so the last element exists.
    const t = this.tokens[Math.min(this.pos, this.tokens.length - 1)] as Token;
    if (t.kind === "bad") throw new ExprError(t.text, t.col);
    return t;
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== "end") this.pos++;
    return t;
  }

  private isOp(...ops: string[]): boolean {
    const t = this.peek();
    return t.kind === "op" && ops.includes(t.text);
  }

  private isWord(word: string): boolean {
    const t = this.peek();
    return t.kind === "ident" && t.text === word;
  }

  private expect(op: string): Token {
    const t = this.peek();
    if (t.kind !== "op" || t.text !== op) throw new ExprError(`expected "${op}" but found ${describe(t)}`, t.col);
    return this.next();
  }

  private or(): ExprNode {
    let left = this.and();
    while (this.isOp("||") || this.isWord("or")) {
      const t = this.next();
      left = { kind: "binary", op: "||", left, right: this.and(), col: t.col };
    }
    return left;
  }

  private and(): ExprNode {
    let left = this.eq();
    while (this.isOp("&&") || this.isWord("and")) {
      const t = this.next();
      left = { kind: "binary", op: "&&", left, right: this.eq(), col: t.col };
    }
    return left;
  }

  private eq(): ExprNode {
    let left = this.cmp();
    while (this.isOp("==", "!=")) {
      const t = this.next();
      left = { kind: "binary", op: t.text as BinaryOp, left, right: this.cmp(), col: t.col };
    }
    return left;
  }

  private cmp(): ExprNode {
    let left = this.add();
    while (this.isOp("<", "<=", ">", ">=")) {
      const t = this.next();
      left = { kind: "binary", op: t.text as BinaryOp, left, right: this.add(), col: t.col };
    }
    return left;
  }

  private add(): ExprNode {
    let left = this.mul();
    while (this.isOp("+", "-")) {
      const t = this.next();
      left = { kind: "binary", op: t.text as BinaryOp, left, right: this.mul(), col: t.col };
    }
    return left;
  }

  private mul(): ExprNode {
    let left = this.unary();
    while (this.isOp("*", "/")) {
      const t = this.next();
      left = { kind: "binary", op: t.text as BinaryOp, left, right: this.unary(), col: t.col };
    }
    return left;
  }

  private unary(): ExprNode {
    // Nesting is bounded so a hostile condition cannot exhaust the stack.
    if (++this.depth > MAX_DEPTH) throw new ExprError(`nested more than ${MAX_DEPTH} levels deep`, this.peek().col);
    try {
      if (this.isOp("!", "-", "+") || this.isWord("not")) {
        const t = this.next();
        const op = t.text === "not" ? "!" : (t.text as "!" | "-" | "+");
        return { kind: "unary", op, operand: this.unary(), col: t.col };
      }
      return this.postfix();
    } finally {
      this.depth--;
    }
  }

  private postfix(): ExprNode {
    let node = this.primary();
    while (this.isOp("[")) {
      const t = this.next();
      const index = this.or();
      this.expect("]");
      node = { kind: "index", target: node, index, col: t.col };
    }
    return node;
  }

  private primary(): ExprNode {
    const t = this.next();
    if (t.kind === "num") return { kind: "num", value: Number(t.text), col: t.col };
    if (t.kind === "op" && t.text === "(") {
      const inner = this.or();
      this.expect(")");
      return inner;
    }
    if (t.kind === "ident") {
      if (t.text === "true" || t.text === "false") return { kind: "bool", value: t.text === "true", col: t.col };
      if (t.text === "result") {
        if (this.isOp("(")) throw new ExprError(`"result" is not a function`, this.peek().col);
        return { kind: "result", col: t.col };
      }
      const fn = FUNCTIONS.find((f) => f === t.text);
      if (fn) {
        if (!this.isOp("(")) throw new ExprError(`${fn} is a function; call it as ${fn}(...)`, t.col);
        this.next();
        const args: ExprNode[] = [];
        if (!this.isOp(")")) {
          args.push(this.or());
          while (this.isOp(",")) {
            this.next();
            args.push(this.or());
          }
        }
        this.expect(")");
        return { kind: "call", fn, args, col: t.col };
      }
      throw new ExprError(`unknown identifier "${t.text}"`, t.col, `known names: ${KNOWN_NAMES}`);
    }
    throw new ExprError(`expected a value but found ${describe(t)}`, t.col);
  }
}

const isNumeric = (t: Type): boolean => t === "num" || t === "series";
const typeName = (t: Type): string => (t === "bool" ? "a boolean" : "a number");

function check(node: ExprNode): Type {
  switch (node.kind) {
    case "num":
      return "num";
    case "bool":
      return "bool";
    case "result":
      return "series";
    case "index": {
      if (!isNumeric(check(node.target))) throw new ExprError("only result or a number can be indexed", node.col);
      if (check(node.index) !== "num") throw new ExprError("an index must be a number", node.col);
      return "num";
    }
    case "unary": {
      const t = check(node.operand);
      if (node.op === "!") {
        if (t !== "bool") throw new ExprError(`"!" needs a boolean but got ${typeName(t)}`, node.col, "write !(result < 1)");
        return "bool";
      }
      if (!isNumeric(t)) throw new ExprError(`"${node.op}" needs a number but got ${typeName(t)}`, node.col);
      return "num";
    }
    case "binary": {
      const l = check(node.left);
      const r = check(node.right);
      switch (node.op) {
        case "||":
        case "&&":
          if (l !== "bool" || r !== "bool") {
            throw new ExprError(`"${node.op}" needs booleans but got ${typeName(l)} and ${typeName(r)}`, node.col);
          }
          return "bool";
        case "==":
        case "!=":
          if ((l === "bool") !== (r === "bool")) {
            throw new ExprError(`"${node.op}" compares ${typeName(l)} with ${typeName(r)}`, node.col);
          }
          return "bool";
        default:
          if (!isNumeric(l) || !isNumeric(r)) {
            throw new ExprError(`"${node.op}" needs numbers but got ${typeName(l)} and ${typeName(r)}`, node.col);
          }
          return ["<", "<=", ">", ">="].includes(node.op) ? "bool" : "num";
      }
    }
    case "call": {
      const types = node.args.map(check);
      const variadic = node.fn === "min" || node.fn === "max";
      if (variadic ? node.args.length < 1 : node.args.length !== 1) {
        const arity = variadic ? "at least 1 argument" : "exactly 1 argument";
        throw new ExprError(`${node.fn}() takes ${arity}, got ${node.args.length}`, node.col);
      }
      if (!types.every(isNumeric)) throw new ExprError(`${node.fn}() needs numbers`, node.col);
      return node.fn === "isNaN" ? "bool" : "num";
    }
  }
}

/**
 * Compiles a condition: tokenize, parse, type-check. The condition must produce a boolean.
 * @throws ExprError with the 1-based column of the problem; unknown identifiers are rejected.
 */
export function compileCondition(source: string): CompiledCondition {
  if (source.length > MAX_LENGTH) throw new ExprError(`condition is longer than ${MAX_LENGTH} characters`);
  if (source.trim() === "") throw new ExprError("condition is empty");
  const ast = new Parser(tokenize(source)).parse();
  const type = check(ast);
  if (type !== "bool") {
    throw new ExprError(`a condition must be true or false, but this is ${typeName(type)}`, ast.col, "compare it, e.g. result < 1");
  }
  return { source, ast };
}

// Run-time values. `null` is the unknown truth value of three-valued logic.
type Truth = boolean | null;
type Val = number | Truth | readonly number[];

function scalar(v: Val, col: number): number {
  if (typeof v === "number") return v;
  if (Array.isArray(v)) {
    // A one-series vector is the common case (sum(...)); treat it as its value.
    if (v.length === 1) return v[0] as number;
    if (v.length === 0) return NaN;
    throw new ExprError(`result has ${v.length} values`, col, "judge all of them (min(result), max(result)) or reduce the query to one series");
  }
  throw new ExprError("expected a number", col);
}

function elements(v: Val, col: number): readonly number[] {
  if (Array.isArray(v)) return v;
  return [scalar(v, col)];
}

function truth(v: Val, col: number): Truth {
  if (typeof v === "boolean" || v === null) return v;
  throw new ExprError("expected a boolean", col);
}

function compare(op: BinaryOp, a: number, b: number): Truth {
  if (Number.isNaN(a) || Number.isNaN(b)) return null;
  switch (op) {
    case "<":
      return a < b;
    case "<=":
      return a <= b;
    case ">":
      return a > b;
    case ">=":
      return a >= b;
    case "==":
      return a === b;
    default:
      return a !== b;
  }
}

function evalNode(node: ExprNode, result: ResultValue): Val {
  switch (node.kind) {
    case "num":
    case "bool":
      return node.value;
    case "result":
      return result;
    case "index": {
      const target = evalNode(node.target, result);
      const i = scalar(evalNode(node.index, result), node.index.col);
      if (Number.isNaN(i)) return NaN;
      if (!Number.isInteger(i)) throw new ExprError(`index ${i} is not a whole number`, node.col);
      const list = Array.isArray(target) ? target : [scalar(target, node.col)];
      // A missing series is missing data, not a spec error: series counts vary with traffic.
      return i >= 0 && i < list.length ? (list[i] as number) : NaN;
    }
    case "unary": {
      const v = evalNode(node.operand, result);
      if (node.op === "!") {
        const t = truth(v, node.col);
        return t === null ? null : !t;
      }
      const n = scalar(v, node.col);
      return node.op === "-" ? -n : n;
    }
    case "binary": {
      if (node.op === "&&" || node.op === "||") {
        const stop = node.op === "||";
        const l = truth(evalNode(node.left, result), node.left.col);
        if (l === stop) return stop;
        const r = truth(evalNode(node.right, result), node.right.col);
        if (r === stop) return stop;
        return l === null || r === null ? null : !stop;
      }
      const lv = evalNode(node.left, result);
      const rv = evalNode(node.right, result);
      if ((node.op === "==" || node.op === "!=") && (typeof lv === "boolean" || lv === null)) {
        const l = truth(lv, node.left.col);
        const r = truth(rv, node.right.col);
        if (l === null || r === null) return null;
        return node.op === "==" ? l === r : l !== r;
      }
      const a = scalar(lv, node.left.col);
      const b = scalar(rv, node.right.col);
      switch (node.op) {
        case "+":
          return a + b;
        case "-":
          return a - b;
        case "*":
          return a * b;
        case "/":
          return a / b;
        default:
          return compare(node.op, a, b);
      }
    }
    case "call": {
      const args = node.args.map((a) => evalNode(a, result));
      switch (node.fn) {
        case "isNaN":
          return Number.isNaN(scalar(args[0] as Val, node.col));
        case "abs":
          return Math.abs(scalar(args[0] as Val, node.col));
        case "len":
          return elements(args[0] as Val, node.col).length;
        case "min":
        case "max": {
          const all = args.flatMap((a) => elements(a, node.col));
          if (all.length === 0) return NaN;
          return node.fn === "min" ? Math.min(...all) : Math.max(...all);
        }
      }
    }
  }
}

// Functions that read every series of `result` when given it whole.
const ALL_SERIES_FNS: ReadonlySet<FnName> = new Set(["min", "max", "len"]);

function readsOne(node: ExprNode, wholeAllowed: boolean): boolean {
  switch (node.kind) {
    case "num":
    case "bool":
      return false;
    case "result":
      return !wholeAllowed;
    case "index":
      // result[i] picks one series by its position in label order: which one depends on labels.
      return node.target.kind === "result" || readsOne(node.target, false) || readsOne(node.index, false);
    case "unary":
      return readsOne(node.operand, false);
    case "binary":
      return readsOne(node.left, false) || readsOne(node.right, false);
    case "call":
      return node.args.some((a) => readsOne(a, ALL_SERIES_FNS.has(node.fn)));
  }
}

/**
 * Whether a condition reads `result` as one series: indexed (`result[0]`) or as a scalar
 * (`result < 1`, `abs(result)`). Only `min(result)`, `max(result)` and `len(result)` read every
 * series. Over a vector of several series such a condition judges whichever series sorts at
 * that position, so the caller must not trust it.
 */
export function readsOneSeries(condition: CompiledCondition): boolean {
  return readsOne(condition.ast, false);
}

/**
 * Evaluates a compiled condition against a measurement.
 * @returns true or false, or undefined when NaN made the outcome unknown (treat as not matched).
 * @throws ExprError for data-dependent type errors, such as a multi-series result used as a
 *   scalar or a fractional index.
 */
export function evaluateCondition(condition: CompiledCondition, result: ResultValue): boolean | undefined {
  const v = truth(evalNode(condition.ast, result), condition.ast.col);
  return v === null ? undefined : v;
}
