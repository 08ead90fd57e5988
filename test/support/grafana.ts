/**
 * What Grafana does with a dashboard's Prometheus queries before sending them, for tests that run
 * them against a real Prometheus: walk the panels (rows hold a collapsed row's panels), resolve
 * `label_values(...)` variables, and interpolate variables and the built-in intervals the way
 * Grafana's Prometheus data source does. Written from Grafana's documented behaviour; only the
 * subset this project's dashboard uses is supported, and anything else is an error, never a
 * silent pass-through.
 */

/** One query of one panel. */
export interface PanelTarget {
  /** "Row title / Panel title". */
  panel: string;
  refId: string;
  expr: string;
}

interface Panel {
  type?: string;
  title?: string;
  panels?: Panel[];
  targets?: { refId?: string; expr?: string; hide?: boolean }[];
}

/** A dashboard's template variable as the test needs it. */
export interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  multi?: boolean;
  includeAll?: boolean;
  allValue?: string | null;
}

/** The parts of the dashboard JSON the tests read. */
export interface Dashboard {
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}

/** Panels nest one level (a row's panels); deeper nesting is not Grafana's and is refused. */
const MAX_DEPTH = 2;

/**
 * Every panel's queries, including those of panels inside rows. A panel without a title, a target
 * without an expression, or a nesting deeper than rows is an error naming the panel.
 */
export function panelTargets(d: Dashboard): PanelTarget[] {
  const out: PanelTarget[] = [];
  const walk = (panels: Panel[], parent: string, depth: number): void => {
    if (depth > MAX_DEPTH) throw new Error(`panels nested deeper than rows under "${parent}"`);
    // An open row's panels follow it at the top level; a collapsed row holds its own.
    let row = parent;
    for (const p of panels) {
      if (p.type === "row") {
        row = p.title ?? "(untitled row)";
        walk(p.panels ?? [], row, depth + 1);
        continue;
      }
      if (!p.title) throw new Error(`a panel under "${row}" has no title`);
      const name = `${row} / ${p.title}`;
      if (!p.targets?.length) throw new Error(`panel "${name}" has no query`);
      for (const t of p.targets) {
        if (t.hide) continue;
        if (!t.expr || !t.refId) throw new Error(`panel "${name}" has a target without expr or refId`);
        out.push({ panel: name, refId: t.refId, expr: t.expr });
      }
    }
  };
  walk(d.panels, "(top)", 1);
  return out;
}

/** The `label_values(selector, label)` of a query variable. */
export function labelValuesQuery(v: Variable): { selector: string; label: string } {
  const q = typeof v.query === "string" ? v.query : v.query?.query;
  const m = /^\s*label_values\(\s*(.+?)\s*,\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$/.exec(q ?? "");
  if (!m) throw new Error(`variable ${v.name}: only label_values(selector, label) queries are supported, got ${JSON.stringify(q)}`);
  return { selector: m[1]!, label: m[2]! };
}

/**
 * Grafana's escaping of a value used inside a PromQL regex matcher (`=~"$var"`): regex
 * metacharacters get a backslash, itself doubled because the regex sits in a PromQL string.
 */
export function regexEscape(value: string): string {
  return value.replace(/[\\$^*+?.()|{}[\]]/g, (c) => `\\\\${c}`);
}

/**
 * The text a variable's selected values become in a query: a multi-value or All variable becomes
 * one escaped value, or `(a|b)` for several (All without allValue selects every value); a single
 * variable without multi/All is inserted with only quotes and backslashes escaped.
 */
export function formatValues(v: Variable, selected: readonly string[] | "All", all: readonly string[]): string {
  if (selected === "All") {
    if (!v.includeAll) throw new Error(`variable ${v.name} has no All option`);
    if (v.allValue) return v.allValue;
  }
  const values = selected === "All" ? all : selected;
  if (values.length === 0) throw new Error(`variable ${v.name} has no value to select: its query found nothing`);
  if (!v.multi && !v.includeAll) {
    if (values.length > 1) throw new Error(`variable ${v.name} takes one value`);
    return values[0]!.replace(/\\/g, "\\\\").replace(/"/g, '\\"');
  }
  const escaped = values.map(regexEscape);
  return escaped.length === 1 ? escaped[0]! : `(${escaped.join("|")})`;
}

/** Durations Grafana computes per panel from the time range and the data source's scrape interval. */
export interface Intervals {
  /** $__interval, seconds. */
  interval: number;
  /** $__rate_interval, seconds. */
  rateInterval: number;
}

/**
 * Grafana's panel intervals: $__interval is the time range over the panel's data points, never
 * below the data source's scrape interval (its "Scrape interval" setting); $__rate_interval is the
 * larger of $__interval plus one scrape interval and four scrape intervals, so rate() always
 * has samples to work with.
 */
export function intervals(rangeSeconds: number, scrapeSeconds: number, maxDataPoints = 1000): Intervals {
  if (!(rangeSeconds > 0 && scrapeSeconds > 0 && maxDataPoints > 0)) throw new Error("range, scrape interval and data points must be positive");
  const interval = Math.max(scrapeSeconds, Math.ceil(rangeSeconds / maxDataPoints));
  return { interval, rateInterval: Math.max(interval + scrapeSeconds, 4 * scrapeSeconds) };
}

/**
 * Replaces `$name`, `${name}` and `[[name]]` with `values[name]`; `$__interval`,
 * `$__rate_interval` (and their `_ms` forms for $__interval) with the intervals. A variable
 * without a value, or a `$` left over, is an error naming it.
 */
export function interpolate(expr: string, values: Readonly<Record<string, string>>, iv: Intervals): string {
  const builtins: Record<string, string> = {
    __interval: `${iv.interval}s`,
    __interval_ms: String(iv.interval * 1000),
    __rate_interval: `${iv.rateInterval}s`,
  };
  const lookup = (name: string): string => {
    const v = builtins[name] ?? values[name];
    if (v === undefined) throw new Error(`no value for variable ${name} in ${expr}`);
    return v;
  };
  const out = expr.replace(/\$\{(\w+)\}|\$(\w+)|\[\[(\w+)\]\]/g, (_m, a?: string, b?: string, c?: string) => lookup((a ?? b ?? c)!));
  if (out.includes("$")) throw new Error(`a variable form this test does not interpolate is left in ${out}`);
  return out;
}

/**
 * Names of the metrics a PromQL expression selects: identifiers before a `{` matcher or a `[`
 * range, and every `airollout_` name wherever it stands (a bare `sum(airollout_x)` too).
 */
export function selectedMetrics(expr: string): string[] {
  const before = [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{[]/g)].map((m) => m[1]!);
  const ours = [...expr.matchAll(/\bairollout_[a-zA-Z0-9_:]*/g)].map((m) => m[0]);
  return [...new Set([...before, ...ours])];
}

/**
 * The selected metric names that no registry exports, given the registries' names and types
 * (a histogram's series are its name with _bucket, _count and _sum).
 */
export function unknownMetrics(names: Iterable<string>, exported: readonly { name: string; type: string }[]): string[] {
  const known = new Set<string>();
  for (const m of exported) {
    known.add(m.name);
    if (m.type === "histogram") for (const s of ["_bucket", "_count", "_sum"]) known.add(m.name + s);
  }
  return [...new Set(names)].filter((n) => !known.has(n)).sort();
}
