/**
 * Field paths: the `$.a.b`, `$.items[*].score`, `$.items[0]` syntax of FIELD_PATH_PATTERN in
 * api/schema.ts, parsed by hand so no regular expression is ever built from a path.
 */

/** One step of a field path. `any` is the `[*]` wildcard and matches every array index. */
export type PathSegment =
  | { readonly kind: "key"; readonly key: string }
  | { readonly kind: "index"; readonly index: number }
  | { readonly kind: "any" };

/** The path of the whole body. */
export const ROOT_PATH = "$";

const MAX_KEY_CHARS = 64;

function isPlainKeyChar(c: number): boolean {
  return (
    (c >= 48 && c <= 57) || // 0-9
    (c >= 65 && c <= 90) || // A-Z
    (c >= 97 && c <= 122) || // a-z
    c === 95 || // _
    c === 45 // -
  );
}

/**
 * Parses a rule field path into segments. Throws on anything FIELD_PATH_PATTERN would reject, so
 * rules that did not pass through the zod schema still fail loudly rather than never matching.
 */
export function parseFieldPath(path: string): PathSegment[] {
  if (path.length === 0 || path.charCodeAt(0) !== 36 /* $ */) {
    throw new Error(`invalid field path ${JSON.stringify(path)}: must start with $`);
  }
  const segments: PathSegment[] = [];
  let i = 1;
  while (i < path.length) {
    const c = path.charCodeAt(i);
    if (c === 46 /* . */) {
      let j = i + 1;
      while (j < path.length && isPlainKeyChar(path.charCodeAt(j))) j++;
      if (j === i + 1) throw new Error(`invalid field path ${JSON.stringify(path)}: empty key at offset ${i}`);
      segments.push({ kind: "key", key: path.slice(i + 1, j) });
      i = j;
    } else if (c === 91 /* [ */) {
      const close = path.indexOf("]", i);
      if (close < 0) throw new Error(`invalid field path ${JSON.stringify(path)}: unclosed [`);
      const inner = path.slice(i + 1, close);
      if (inner === "*") {
        segments.push({ kind: "any" });
      } else if (/^[0-9]{1,15}$/.test(inner)) {
        segments.push({ kind: "index", index: Number(inner) });
      } else {
        throw new Error(`invalid field path ${JSON.stringify(path)}: index must be a number or *`);
      }
      i = close + 1;
    } else {
      throw new Error(`invalid field path ${JSON.stringify(path)}: unexpected ${JSON.stringify(path[i])} at offset ${i}`);
    }
  }
  return segments;
}

/**
 * Renders one object key as a path segment. Keys outside the rule-path alphabet are quoted so
 * reported paths stay unambiguous, and very long keys are cut so hostile keys cannot bloat paths.
 */
export function keySegment(key: string): string {
  const cached = segmentCache.get(key);
  if (cached !== undefined) return cached;
  const seg = formatKeySegment(key);
  // Bounded: hostile bodies with endless distinct keys only churn the cache, never grow it.
  if (segmentCache.size >= SEGMENT_CACHE_SIZE) segmentCache.clear();
  if (key.length <= MAX_KEY_CHARS) segmentCache.set(key, seg);
  return seg;
}

const SEGMENT_CACHE_SIZE = 4096;
const segmentCache = new Map<string, string>();

function formatKeySegment(key: string): string {
  let plain = key.length > 0 && key.length <= MAX_KEY_CHARS;
  for (let i = 0; plain && i < key.length; i++) plain = isPlainKeyChar(key.charCodeAt(i));
  if (plain) return `.${key}`;
  const shown = key.length > MAX_KEY_CHARS ? `${key.slice(0, MAX_KEY_CHARS)}…(${key.length} chars)` : key;
  return `[${JSON.stringify(shown)}]`;
}
