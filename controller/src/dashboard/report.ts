/**
 * `airollout report NAME`: the dashboard's views of one rollout frozen into one HTML file, for a
 * pull request or a post-mortem. The UI's scripts and stylesheets are inlined and the data
 * embedded in the bootstrap (`report`), so the page needs no server and no network.
 */
import { readFile } from "node:fs/promises";
import { resolve, sep } from "node:path";
import { bootstrapScript, injectBootstrap, readIndex, type Bootstrap } from "./server.ts";
import { vendorFile } from "./vendor.ts";

/** Largest single asset inlined: a bundle past this is a mistake, not a report. */
const MAX_ASSET_BYTES = 16 << 20;

/** Reads a UI file named by index.html, refusing anything outside the UI directory. */
async function readAsset(uiDir: string, ref: string): Promise<string> {
  const rel = ref.replace(/^\.?\//, "").replace(/^ui\//, "");
  const vendor = rel.startsWith("vendor/") ? vendorFile(rel.slice("vendor/".length)) : undefined;
  const path = vendor ?? resolve(uiDir, rel);
  if (!vendor && !path.startsWith(resolve(uiDir) + sep)) throw new Error(`report: index.html names ${ref}, outside the UI directory`);
  const text = await readFile(path, "utf8");
  if (text.length > MAX_ASSET_BYTES) throw new Error(`report: ${ref} is over ${MAX_ASSET_BYTES} bytes`);
  return text;
}

/** A value for a URL attribute that points off the page (scheme or protocol-relative). */
const EXTERNAL = /^(?:[a-z][a-z0-9+.-]*:|\/\/)/i;

/**
 * index.html with every `<script src>` and `<link rel=stylesheet href>` replaced by the file's
 * content. Fails on any other reference that would need the network (a URL with a scheme other
 * than data:, or protocol-relative).
 */
export async function inlineAssets(html: string, uiDir: string): Promise<string> {
  let out = "";
  let last = 0;
  const tags = /<script\b([^>]*)\bsrc\s*=\s*["']([^"']+)["']([^>]*)>\s*<\/script\s*>|<link\b([^>]*)\bhref\s*=\s*["']([^"']+)["']([^>]*)>/gi;
  for (const m of html.matchAll(tags)) {
    out += html.slice(last, m.index);
    last = m.index + m[0].length;
    if (m[2] !== undefined) {
      if (EXTERNAL.test(m[2])) throw new Error(`report: index.html loads the script ${m[2]} from the network`);
      const code = (await readAsset(uiDir, m[2])).replace(/<\/script/gi, "<\\/script");
      out += `<script${m[1]}${m[3]}>${code}</script>`;
      continue;
    }
    const attrs = `${m[4]} ${m[6]}`;
    if (!/\brel\s*=\s*["']?stylesheet/i.test(attrs)) {
      // A link that is no stylesheet (an icon): dropped unless it is inline already.
      if (m[5]!.startsWith("data:")) out += m[0];
      continue;
    }
    if (EXTERNAL.test(m[5]!)) throw new Error(`report: index.html loads the stylesheet ${m[5]} from the network`);
    const css = (await readAsset(uiDir, m[5]!)).replace(/<\/style/gi, "<\\/style");
    out += `<style>${css}</style>`;
  }
  return out + html.slice(last);
}

/** The URLs of src= and href= attributes that would leave the page (what a report must not have). */
export function externalReferences(html: string): string[] {
  const refs: string[] = [];
  for (const m of html.matchAll(/\b(?:src|href)\s*=\s*["']([^"']*)["']/gi)) if (EXTERNAL.test(m[1]!) && !m[1]!.startsWith("data:")) refs.push(m[1]!);
  return refs;
}

/** Renders the report page of one rollout from its frozen data. */
export async function renderReport(data: NonNullable<Bootstrap["report"]>, uiDir: string): Promise<string> {
  const boot: Bootstrap = { csrfToken: null, readOnly: true, namespace: data.data.detail.row.namespace, allNamespaces: false, gateway: data.data.diffs !== null, report: data };
  const index = await readIndex(uiDir);
  // Checked on the page's own markup: the inlined bundles may quote URLs in strings (an SVG namespace).
  const external = externalReferences(index);
  if (external.length) throw new Error(`report: index.html would load ${external.slice(0, 3).join(", ")} from the network`);
  return injectBootstrap(await inlineAssets(index, uiDir), bootstrapScript(boot));
}
