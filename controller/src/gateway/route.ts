/**
 * The webhook route, parsed by hand: POST /hooks/<namespace>/<rollout>[/<path...>][?query].
 * The gateway dispatches these before express (see Gateway.handle): express's router and its
 * request/response decoration cost about as much CPU per request as a whole minimal proxy, and
 * every webhook pays it; the other endpoints stay on express.
 */

const PREFIX = "/hooks/";

export interface HookRoute {
  namespace: string;
  name: string;
  /** Path forwarded to the backend: each segment decoded then re-encoded, query kept as sent. */
  path: string;
}

/**
 * Parses a request URL. `undefined` when it is not a webhook URL (no namespace or name);
 * `{ error }` when a segment has a malformed %-escape.
 */
export function parseHookUrl(url: string): HookRoute | { error: string } | undefined {
  if (!url.startsWith(PREFIX)) return undefined;
  const q = url.indexOf("?");
  const pathname = q >= 0 ? url.slice(PREFIX.length, q) : url.slice(PREFIX.length);
  const segments = pathname.split("/");
  if (segments.length < 2 || segments[0] === "" || segments[1] === "") return undefined;
  try {
    const namespace = decodeURIComponent(segments[0]!);
    const name = decodeURIComponent(segments[1]!);
    let path = "";
    for (let i = 2; i < segments.length; i++) path += `/${encodeURIComponent(decodeURIComponent(segments[i]!))}`;
    return { namespace, name, path: (path || "/") + (q >= 0 ? url.slice(q) : "") };
  } catch {
    return { error: `the URL ${JSON.stringify(url.length > 200 ? `${url.slice(0, 200)}...` : url)} has a malformed %-escape` };
  }
}
