/**
 * Query templating: `{{rollout}}`, `{{namespace}}`, `{{stable}}`, `{{candidate}}`,
 * `{{interval}}` and `{{args.<name>}}` in PromQL.
 *
 * Values come from object names and users' args, so they must not be able to change the query's
 * shape. The template is scanned once to learn where each placeholder sits: inside a
 * double- or single-quoted PromQL string the value is escaped; inside a backtick string (which
 * has no escapes) a value with a backtick is refused; outside any string the value must be a
 * plain number, duration or name, so `{{args.window}}` in `[{{args.window}}]` cannot smuggle in
 * `1m]) or vector(1`.
 */

/** The variables a query may use. */
export interface TemplateVars {
  rollout: string;
  namespace: string;
  stable: string;
  candidate: string;
  /** PromQL duration, for example `30s` or `1m30s`. */
  interval: string;
  args: Readonly<Record<string, string>>;
}

/** A template that cannot be parsed or rendered. `variable` names the culprit when there is one. */
export class TemplateError extends Error {
  readonly variable: string | undefined;

  constructor(message: string, variable?: string) {
    super(message);
    this.name = "TemplateError";
    this.variable = variable;
  }
}

/** Where a placeholder sits in the PromQL text, which decides how its value is made safe. */
type Context = "double" | "single" | "backtick" | "bare";

type Part = { kind: "text"; text: string } | { kind: "var"; name: string; context: Context };

/** A parsed template; render it with {@link renderTemplate}. */
export interface CompiledTemplate {
  readonly source: string;
  readonly parts: readonly Part[];
  /** Distinct variable names in order of first use, such as `rollout` or `args.window`. */
  readonly variables: readonly string[];
}

/** The fixed (non-args) variable names. */
export const BUILTIN_VARIABLES = ["rollout", "namespace", "stable", "candidate", "interval"] as const;

const NAME = /^\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_-]*)?)\s*$/;
const BARE_SAFE = /^(?:[A-Za-z0-9_.:]+|[+-]?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)$/;

/**
 * Parses a query template.
 * @throws TemplateError for an unclosed `{{` or a placeholder that is not a variable name.
 */
export function compileTemplate(source: string): CompiledTemplate {
  const parts: Part[] = [];
  const variables: string[] = [];
  let state: Context | "comment" = "bare";
  let text = "";
  let i = 0;
  while (i < source.length) {
    if (source.startsWith("{{", i)) {
      const end = source.indexOf("}}", i + 2);
      if (end < 0) throw new TemplateError(`unclosed "{{" at offset ${i}`);
      const inner = source.slice(i + 2, end);
      const m = NAME.exec(inner);
      if (!m?.[1]) throw new TemplateError(`"{{${inner}}}" is not a variable such as {{rollout}} or {{args.name}}`);
      const name = m[1];
      if (text) parts.push({ kind: "text", text });
      text = "";
      parts.push({ kind: "var", name, context: state === "comment" ? "bare" : state });
      if (!variables.includes(name)) variables.push(name);
      i = end + 2;
      continue;
    }
    const ch = source[i] as string;
    text += ch;
    i++;
    switch (state) {
      case "bare":
        if (ch === '"') state = "double";
        else if (ch === "'") state = "single";
        else if (ch === "`") state = "backtick";
        else if (ch === "#") state = "comment";
        break;
      case "double":
      case "single":
        if (ch === "\\" && i < source.length) {
          text += source[i];
          i++;
        } else if (ch === (state === "double" ? '"' : "'")) {
          state = "bare";
        }
        break;
      case "backtick":
        if (ch === "`") state = "bare";
        break;
      case "comment":
        if (ch === "\n") state = "bare";
        break;
    }
  }
  if (text) parts.push({ kind: "text", text });
  return { source, parts, variables };
}

function isKnown(name: string, argNames: ReadonlySet<string>): boolean {
  if ((BUILTIN_VARIABLES as readonly string[]).includes(name)) return true;
  return name.startsWith("args.") && argNames.has(name.slice(5));
}

/**
 * Lists the template's variables that the given args do not define, so a spec error can name
 * them before any query is sent.
 */
export function unknownVariables(template: CompiledTemplate, argNames: Iterable<string>): string[] {
  const known = new Set(argNames);
  return template.variables.filter((v) => !isKnown(v, known));
}

/**
 * Escapes a value for a PromQL string literal (Go escaping rules), for example inside a label
 * matcher `{version="..."}`.
 */
export function escapePromQLString(value: string, quote: '"' | "'" = '"'): string {
  let out = "";
  for (const ch of value) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === "\\" || ch === quote) out += `\\${ch}`;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else out += ch;
  }
  return out;
}

function lookup(name: string, vars: TemplateVars): string | undefined {
  if (name.startsWith("args.")) {
    const key = name.slice(5);
    // Own properties only: `{{args.constructor}}` must not reach Object.prototype.
    return Object.hasOwn(vars.args, key) ? vars.args[key] : undefined;
  }
  switch (name) {
    case "rollout":
      return vars.rollout;
    case "namespace":
      return vars.namespace;
    case "stable":
      return vars.stable;
    case "candidate":
      return vars.candidate;
    case "interval":
      return vars.interval;
    default:
      return undefined;
  }
}

/**
 * Renders a query template. Every variable must be known; values are escaped for the string
 * they sit in, and values outside strings must be plain numbers, durations or names.
 * @throws TemplateError naming the first unknown or unsafe variable.
 */
export function renderTemplate(template: CompiledTemplate | string, vars: TemplateVars): string {
  const t = typeof template === "string" ? compileTemplate(template) : template;
  const unknown = unknownVariables(t, Object.keys(vars.args));
  if (unknown.length > 0) {
    const list = unknown.map((v) => `{{${v}}}`).join(", ");
    throw new TemplateError(`unknown template variable${unknown.length > 1 ? "s" : ""} ${list}`, unknown[0]);
  }
  let out = "";
  for (const part of t.parts) {
    if (part.kind === "text") {
      out += part.text;
      continue;
    }
    const value = lookup(part.name, vars) ?? "";
    switch (part.context) {
      case "double":
        out += escapePromQLString(value, '"');
        break;
      case "single":
        out += escapePromQLString(value, "'");
        break;
      case "backtick":
        if (value.includes("`")) {
          throw new TemplateError(`{{${part.name}}} sits in a backtick string but its value contains a backtick`, part.name);
        }
        out += value;
        break;
      case "bare":
        if (!BARE_SAFE.test(value)) {
          throw new TemplateError(
            `{{${part.name}}} is used outside a quoted string, so its value must be a number, duration or name; got ${JSON.stringify(value)}`,
            part.name,
          );
        }
        if (SIGNED.test(value) && afterOperand(out)) {
          throw new TemplateError(
            `{{${part.name}}} follows an operand, so its signed value ${JSON.stringify(value)} would turn into a subtraction or addition; write the sign in the query`,
            part.name,
          );
        }
        out += value;
        break;
    }
  }
  return out;
}

const SIGNED = /^[+-]/;
// Words after which a sign is unary in PromQL (`offset -5m`, `x > bool -1`, `a or -1`).
const OPERATOR_WORDS = new Set(["offset", "bool", "and", "or", "unless", "atan2"]);

/**
 * Whether the query so far ends with an operand (a name, number, closing bracket or string), so a
 * signed value placed next would be read as a binary `+`/`-`: `x {{args.t}}` with `-1` is `x - 1`.
 */
function afterOperand(rendered: string): boolean {
  const text = rendered.trimEnd();
  if (text === "") return false;
  const word = /[A-Za-z0-9_.:]+$/.exec(text);
  if (word) return !OPERATOR_WORDS.has(word[0].toLowerCase());
  return /[)\]}"'`]$/.test(text);
}

/**
 * Formats milliseconds as a PromQL duration for `{{interval}}`: `1h30m`, `45s`, `1500ms`.
 * The spec accepts decimals such as `1.5m` that PromQL range selectors do not, and sub-second
 * remainders stay exact in milliseconds rather than being rounded to whole seconds.
 */
export function formatPromDuration(ms: number): string {
  const whole = Math.max(0, Math.round(ms));
  if (whole === 0) return "0s";
  if (whole % 1000 !== 0) return `${whole}ms`;
  let seconds = whole / 1000;
  const h = Math.floor(seconds / 3600);
  seconds -= h * 3600;
  const m = Math.floor(seconds / 60);
  seconds -= m * 60;
  return `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${seconds ? `${seconds}s` : ""}`;
}
