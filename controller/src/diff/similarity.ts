/**
 * Text similarity measures, both normalised to 0..1 where 1 means identical.
 */

// Letters and digits in any script; punctuation and whitespace separate tokens.
const TOKEN = /[\p{L}\p{N}]+/gu;

/** Lower-cased word tokens of a text, as a set. */
export function tokenSet(text: string): Set<string> {
  const out = new Set<string>();
  const lower = text.toLowerCase();
  // ASCII text (most answers) is split by hand; the Unicode regex is several times slower.
  let start = -1;
  for (let i = 0; i < lower.length; i++) {
    const c = lower.charCodeAt(i);
    if (c > 127) return tokenSetUnicode(lower);
    const word = (c >= 48 && c <= 57) || (c >= 97 && c <= 122);
    if (word) {
      if (start < 0) start = i;
    } else if (start >= 0) {
      out.add(lower.slice(start, i));
      start = -1;
    }
  }
  if (start >= 0) out.add(lower.slice(start));
  return out;
}

function tokenSetUnicode(lower: string): Set<string> {
  const out = new Set<string>();
  for (const m of lower.matchAll(TOKEN)) out.add(m[0]);
  return out;
}

/**
 * Token Jaccard similarity: |A ∩ B| / |A ∪ B| over lower-cased word tokens. Two texts without
 * any tokens are identical (1), so empty answers from both sides are not a mismatch.
 */
export function jaccardSimilarity(a: string, b: string): number {
  if (a === b) return 1;
  const ta = tokenSet(a);
  const tb = tokenSet(b);
  if (ta.size === 0 && tb.size === 0) return 1;
  let inter = 0;
  const [small, large] = ta.size <= tb.size ? [ta, tb] : [tb, ta];
  for (const t of small) if (large.has(t)) inter++;
  return inter / (ta.size + tb.size - inter);
}

/**
 * Levenshtein edit distance (UTF-16 code units), computed only inside a band of width maxDistance
 * around the diagonal. Returns maxDistance + 1 as soon as the distance is known to exceed it, which
 * keeps the cost at O(n * maxDistance) instead of O(n * m) for long, clearly different texts.
 */
export function levenshteinDistance(a: string, b: string, maxDistance = Math.max(a.length, b.length)): number {
  if (a === b) return 0;
  const k = Math.max(0, Math.floor(maxDistance));
  let s = a;
  let t = b;
  if (s.length > t.length) [s, t] = [t, s];
  // Common prefixes and suffixes never cost anything; trimming them shrinks the table.
  let start = 0;
  while (start < s.length && s.charCodeAt(start) === t.charCodeAt(start)) start++;
  let endS = s.length;
  let endT = t.length;
  while (endS > start && s.charCodeAt(endS - 1) === t.charCodeAt(endT - 1)) {
    endS--;
    endT--;
  }
  const n = endS - start;
  const m = endT - start;
  if (m - n > k) return k + 1;
  if (n === 0) return m;
  const big = k + 1;
  let prev = new Int32Array(m + 1);
  let cur = new Int32Array(m + 1);
  for (let j = 0; j <= m; j++) prev[j] = j <= k ? j : big;
  for (let i = 1; i <= n; i++) {
    const lo = Math.max(1, i - k);
    const hi = Math.min(m, i + k);
    cur[0] = i <= k ? i : big;
    let rowMin = cur[0]!;
    if (lo > 1) cur[lo - 1] = big;
    const sc = s.charCodeAt(start + i - 1);
    for (let j = lo; j <= hi; j++) {
      const cost = sc === t.charCodeAt(start + j - 1) ? 0 : 1;
      let v = prev[j - 1]! + cost;
      const del = prev[j]! + 1;
      if (del < v) v = del;
      const ins = cur[j - 1]! + 1;
      if (ins < v) v = ins;
      if (v > big) v = big;
      cur[j] = v;
      if (v < rowMin) rowMin = v;
    }
    // Cells right of the band must read as "too far" when the next row looks at them.
    if (hi < m) cur[hi + 1] = big;
    if (rowMin > k) return big;
    [prev, cur] = [cur, prev];
  }
  const d = prev[m]!;
  return d > k ? big : d;
}

/** Normalised Levenshtein similarity: 1 - distance / length of the longer text (1 for two empty texts). */
export function levenshteinSimilarity(a: string, b: string): number {
  const longest = Math.max(a.length, b.length);
  if (longest === 0) return 1;
  return 1 - levenshteinDistance(a, b) / longest;
}

/**
 * The largest edit distance that still reaches minSimilarity for texts whose longer one has
 * `longest` code units. The epsilon absorbs float error such as (1 - 0.8) * 10 = 1.9999999999999996.
 */
export function maxDistanceFor(minSimilarity: number, longest: number): number {
  return Math.floor((1 - minSimilarity) * longest + 1e-9);
}
