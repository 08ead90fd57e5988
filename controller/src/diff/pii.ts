/**
 * PII masking for stored diff samples. Over-masking is acceptable (a sample loses a detail),
 * under-masking is not (a sample leaks a customer's data), so the number rules lean wide.
 *
 * The built-in expressions are written so each scan is linear: every match may only start at the
 * beginning of a run of its characters (a negative lookbehind), so a long run without a match is
 * not rescanned from every offset.
 *
 * Identifiers are never masked into other values: digits that belong to a token of letters,
 * digits, `-` and `_` holding a letter (`req-5551234567`, the last group of a UUID such as a
 * GitHub delivery id) or shaped like a UUID are part of that identifier, not a phone or card
 * number of their own.
 */

/** Replacement tokens, exported so tests and UIs can recognise them. */
export const MASK = { email: "[EMAIL]", phone: "[PHONE]", card: "[CARD]", custom: "[MASKED]" } as const;

// local@domain.tld; the domain is dot-separated labels with at least one dot.
const EMAIL = /(?<![\w.%+-])[\w.%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+/g;
// 13 to 19 digits, optionally grouped by single spaces or dashes.
const CARD = /(?<![\w.])\d(?:[ -]?\d){12,18}(?![\w])/g;
// An optional +country code, optional (area code), then 2-4 digit groups.
const PHONE = /(?<![\w+.])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,5}(?![\w])/g;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LETTER = /[A-Za-z]/;
/** Characters looked at either side of a number to find the identifier it belongs to. */
const TOKEN_SCAN = 128;

function isTokenChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c === 45;
}

/**
 * Whether the number at text[start, end) is part of an identifier (see the module comment). Looks
 * at most TOKEN_SCAN characters either side, so a long run of matches stays linear.
 */
function insideIdentifier(text: string, start: number, end: number): boolean {
  let a = start;
  while (a > 0 && start - a < TOKEN_SCAN && isTokenChar(text.charCodeAt(a - 1))) a--;
  let b = end;
  while (b < text.length && b - end < TOKEN_SCAN && isTokenChar(text.charCodeAt(b))) b++;
  if (a === start && b === end) return false;
  const token = text.slice(a, b);
  return LETTER.test(token) || UUID.test(token);
}

/** Luhn checksum over a string of digits. */
export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return false;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return digits.length > 0 && sum % 10 === 0;
}

function digitsOf(s: string): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) out += s[i];
  }
  return out;
}

function maskCard(m: string, offset: number, text: string): string {
  if (insideIdentifier(text, offset, offset + m.length)) return m;
  const d = digitsOf(m);
  return d.length >= 13 && d.length <= 19 && luhnValid(d) ? MASK.card : m;
}

function maskPhone(m: string, offset: number, text: string): string {
  if (ISO_DATE.test(m) || insideIdentifier(text, offset, offset + m.length)) return m;
  const n = digitsOf(m).length;
  // A written country code or area code in parentheses marks a phone number even when short;
  // otherwise demand 10+ digits so small numbers and identifiers survive.
  const marked = m.startsWith("+") || m.includes("(");
  return n <= 15 && (n >= 10 || (marked && n >= 7)) ? MASK.phone : m;
}

// Only configured patterns become regular expressions; response data never does.
function compileMask(pattern: string): RegExp {
  try {
    return new RegExp(pattern, "gu");
  } catch {
    // Patterns written for other engines often escape freely (\-, \/), which Unicode mode rejects.
    return new RegExp(pattern, "g");
  }
}

// maskPatterns holds at most 64 entries per rollout; the cap only guards against misuse.
const MASK_CACHE_SIZE = 256;
const maskCache = new Map<string, RegExp>();

function cachedMask(pattern: string): RegExp {
  let re = maskCache.get(pattern);
  if (!re) {
    re = compileMask(pattern);
    if (maskCache.size >= MASK_CACHE_SIZE) maskCache.clear();
    maskCache.set(pattern, re);
  }
  return re;
}

/**
 * Compiles configured mask patterns (from ShadowSchema.maskPatterns) and reports the invalid ones,
 * so a spec error surfaces when the rollout is read rather than when a sample is stored.
 */
export function compileMaskPatterns(patterns: readonly string[]): { patterns: RegExp[]; errors: string[] } {
  const out: RegExp[] = [];
  const errors: string[] = [];
  for (const p of patterns) {
    try {
      out.push(compileMask(p));
    } catch (err) {
      errors.push(`mask pattern ${JSON.stringify(p)}: ${(err as Error).message}`);
    }
  }
  return { patterns: out, errors };
}

function withGlobal(re: RegExp): RegExp {
  return re.global ? re : new RegExp(re.source, `${re.flags}g`);
}

/**
 * Masks emails, phone numbers, Luhn-valid card numbers (13-19 digits) and every match of the
 * extra patterns in a text (typically a serialised diff sample). Extra patterns given as strings
 * are compiled (and cached) here and throw on invalid syntax; validate them up front with
 * compileMaskPatterns. Custom patterns run first so they can claim text the built-ins would split.
 */
export function maskPII(text: string, extraPatterns: readonly (string | RegExp)[] = []): string {
  let out = text;
  for (const p of extraPatterns) {
    const re = typeof p === "string" ? cachedMask(p) : withGlobal(p);
    // A pattern that can match the empty string would insert the token between every character.
    out = out.replace(re, (m) => (m.length === 0 ? m : MASK.custom));
  }
  out = out.replace(EMAIL, MASK.email);
  out = out.replace(CARD, maskCard);
  out = out.replace(PHONE, maskPhone);
  return out;
}
