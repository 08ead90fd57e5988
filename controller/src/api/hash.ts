/** The one short-hash idiom of the project: revisions, Event names, dedupe keys, stack names. */
import { createHash } from "node:crypto";

/** The first `length` hex digits of the SHA-256 of `text` (16 by default: 64 bits). */
export function shortHash(text: string, length = 16): string {
  return createHash("sha256").update(text).digest("hex").slice(0, length);
}
