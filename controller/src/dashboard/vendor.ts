/**
 * Third-party files the UI loads as `ui/vendor/<file>`: served (and inlined into reports) from
 * the installed npm package, so the library is a pinned dependency rather than a copy in the tree,
 * and the dashboard needs no CDN.
 */
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const UPLOT_DIST = dirname(createRequire(import.meta.url).resolve("uplot"));

/** The files under ui/vendor/ and where each comes from; nothing else is served from there. */
export const VENDOR_FILES: Readonly<Record<string, string>> = {
  "uPlot.iife.min.js": join(UPLOT_DIST, "uPlot.iife.min.js"),
  "uPlot.min.css": join(UPLOT_DIST, "uPlot.min.css"),
};

/** The installed file behind `vendor/<name>`, or undefined when it is not one of VENDOR_FILES. */
export function vendorFile(name: string): string | undefined {
  return Object.hasOwn(VENDOR_FILES, name) ? VENDOR_FILES[name] : undefined;
}
