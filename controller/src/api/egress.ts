/**
 * The egress policy a cluster admin sets (controller and gateway flags, Helm values `egress.*`):
 * which addresses an AIRollout's author may make airollout dial. Without it, anyone allowed to
 * write an AIRollout could point an endpoint at the cloud metadata service, another namespace's
 * services or the API server, and have the gateway (or the controller) fetch it for them.
 *
 * Rules, first match wins, for a URL written in a spec field of a rollout in namespace N:
 * 1. A host in `allowHosts` (exact, or `*.suffix`), or an IP literal in `allowCidrs`: allowed.
 * 2. Always denied: link-local addresses (169.254.0.0/16, fe80::/10, where the cloud metadata
 *    services answer), the metadata addresses and names elsewhere (fd00:ec2::254,
 *    100.100.100.200, metadata.google.internal, ...), "this network" (0.0.0.0/8, which dials the
 *    local host), unspecified, multicast and broadcast addresses. IPv4 written in other forms
 *    (decimal, hex, octal, IPv4-mapped or NAT64 IPv6) is read as the address it dials.
 * 3. Loopback (127.0.0.0/8, ::1, localhost): allowed unless `denyLoopback` (the Helm chart
 *    denies it: in a Pod, loopback is the gateway's own ports; locally it is where the tests and
 *    the quick start run their backends).
 * 4. Kubernetes service and pod names (`<svc>.<ns>.svc[.<domain>]`, `<ip>.<ns>.pod.<domain>`, and
 *    inside a cluster the search-path forms `<svc>`, `<svc>.<ns>` and `<pod>.<svc>.<ns>`, the
 *    first in the dialer's own namespace): allowed in namespace N and in `allowNamespaces`,
 *    denied in any other. Inside a cluster an external name of up to three labels is read this
 *    way too (the search path tries it first): list it in allowHosts, or end it with a dot.
 * 5. Anything else (external names, other IP literals): `defaultAction` (allow at the CLI; the
 *    Helm chart sets deny, making the lists an allowlist).
 *
 * A name is checked when it is written; the gateway checks the addresses a name resolves to
 * again at dial time (checkAddress), so a DNS name pointing at a metadata address is refused too.
 * Pure: no I/O. A policy is plain data, so it crosses to the gateway's shadow worker threads.
 */

/** One CIDR block, as bytes (4 for IPv4, 16 for IPv6) and a prefix length. */
export interface Cidr {
  text: string;
  bytes: number[];
  prefix: number;
}

/** The policy as the flags give it, already validated (parseEgressPolicy). */
export interface EgressPolicy {
  /** Hosts always allowed: exact names, or `*.example.com` for the names below it. */
  allowHosts: string[];
  /** IP blocks always allowed, even inside a denied range (an admin's explicit choice). */
  allowCidrs: Cidr[];
  /** Namespaces whose service names any rollout may dial (`*`: every namespace). */
  allowNamespaces: string[];
  denyLoopback: boolean;
  /** What a host or IP literal matched by no other rule gets. */
  defaultAction: "allow" | "deny";
  /**
   * The namespace the dialing Pod runs in (POD_NAMESPACE), where single-label names resolve.
   * Set only inside a cluster; outside one there is no search path, and `a` or `a.b` are plain names.
   */
  ownNamespace: string | undefined;
}

/** The flag values a policy is built from; lists may hold comma-separated entries. */
export interface EgressFlags {
  allowHosts?: readonly string[];
  allowCidrs?: readonly string[];
  allowNamespaces?: readonly string[];
  denyLoopback?: boolean;
  defaultAction?: string;
  ownNamespace?: string;
}

/** The outcome of a check: allowed by a rule, or refused with a message naming the field and the rule. */
export type EgressDecision = { allowed: true; rule: string } | { allowed: false; rule: string; host: string; detail: string; message: string };

/** Flag and Helm names, for refusal messages that say how to allow what was refused. */
const HOW_TO_ALLOW = {
  hosts: "--egress-allow-hosts (Helm egress.allowHosts)",
  cidrs: "--egress-allow-cidrs (Helm egress.allowCidrs)",
  namespaces: "--egress-allow-namespaces (Helm egress.allowNamespaces)",
  loopback: "leaving out --egress-deny-loopback (Helm egress.denyLoopback: false)",
};

/** Longest list a flag may carry: a policy is read on every dial. */
const MAX_ENTRIES = 1000;

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Addresses no rollout may dial unless allowCidrs names them, each with why. */
const ALWAYS_DENIED: readonly { cidr: Cidr; why: string }[] = [
  ["169.254.0.0/16", "a link-local address (the cloud metadata services answer at 169.254.169.254)"],
  ["fe80::/10", "an IPv6 link-local address"],
  ["fd00:ec2::254/128", "the AWS instance metadata service's IPv6 address"],
  ["100.100.100.200/32", "the Alibaba Cloud metadata service's address"],
  ["0.0.0.0/8", "a \"this network\" address (0.0.0.0 dials the local host)"],
  ["::/128", "the unspecified IPv6 address"],
  ["224.0.0.0/4", "a multicast address"],
  ["255.255.255.255/32", "the broadcast address"],
  ["ff00::/8", "an IPv6 multicast address"],
].map(([text, why]) => ({ cidr: parseCidr(text!), why: why! }));

const LOOPBACK: readonly Cidr[] = [parseCidr("127.0.0.0/8"), parseCidr("::1/128")];

/** Names of cloud metadata services (they resolve to link-local addresses; refused by name too). */
const METADATA_NAMES = new Set(["metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal", "metadata.azure.internal"]);

/** IPv6 prefixes (96 bits) that carry an IPv4 address in their last 32 bits and reach it. */
const IPV4_EMBEDDING: readonly number[][] = [
  [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff], // IPv4-mapped ::ffff:a.b.c.d
  [0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0], // NAT64 64:ff9b::a.b.c.d
  [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], // IPv4-compatible ::a.b.c.d (deprecated, still parsed)
];

/** Splits comma-separated flag values into trimmed, non-empty entries. */
function entries(values: readonly string[] | undefined): string[] {
  return (values ?? []).flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v !== "");
}

function bounded(flag: string, list: string[]): string[] {
  if (list.length > MAX_ENTRIES) throw new Error(`${flag}: ${list.length} entries; at most ${MAX_ENTRIES}`);
  return list;
}

/**
 * Builds a policy from flag values; throws naming the flag and the entry that does not parse.
 * No flags: loopback and external hosts allowed, the always-denied addresses and other
 * namespaces' services refused.
 */
export function parseEgressPolicy(flags: EgressFlags = {}): EgressPolicy {
  const allowHosts = bounded("--egress-allow-hosts", entries(flags.allowHosts)).map((h) => {
    const host = h.toLowerCase().replace(/\.$/, "");
    const name = host.startsWith("*.") ? host.slice(2) : host;
    if (name === "" || !name.split(".").every((l) => DNS_LABEL.test(l))) throw new Error(`--egress-allow-hosts: ${JSON.stringify(h)} is not a host name (or *.suffix)`);
    return host;
  });
  const allowCidrs = bounded("--egress-allow-cidrs", entries(flags.allowCidrs)).map((c) => {
    try {
      return parseCidr(c);
    } catch (err) {
      throw new Error(`--egress-allow-cidrs: ${(err as Error).message}`);
    }
  });
  const allowNamespaces = bounded("--egress-allow-namespaces", entries(flags.allowNamespaces)).map((n) => {
    if (n !== "*" && !DNS_LABEL.test(n)) throw new Error(`--egress-allow-namespaces: ${JSON.stringify(n)} is not a namespace name (or *)`);
    return n;
  });
  const defaultAction = flags.defaultAction ?? "allow";
  if (defaultAction !== "allow" && defaultAction !== "deny") throw new Error(`--egress-default: ${JSON.stringify(defaultAction)} must be allow or deny`);
  const own = flags.ownNamespace === undefined || flags.ownNamespace === "" ? undefined : flags.ownNamespace;
  if (own !== undefined && !DNS_LABEL.test(own)) throw new Error(`POD_NAMESPACE: ${JSON.stringify(own)} is not a namespace name`);
  return { allowHosts, allowCidrs, allowNamespaces, denyLoopback: flags.denyLoopback === true, defaultAction, ownNamespace: own };
}

/** Parses `a.b.c.d/n`, `x::y/n` or a single address; throws naming the text. */
export function parseCidr(text: string): Cidr {
  const [addr, len, extra] = text.trim().split("/");
  const bytes = addr === undefined ? undefined : parseIp(addr);
  if (!bytes || extra !== undefined) throw new Error(`${JSON.stringify(text)} is not an IP address or CIDR block`);
  const max = bytes.length * 8;
  const prefix = len === undefined ? max : /^[0-9]{1,3}$/.test(len) ? Number(len) : NaN;
  if (!(prefix >= 0 && prefix <= max)) throw new Error(`${JSON.stringify(text)}: the prefix length must be 0 to ${max}`);
  return { text: text.trim(), bytes, prefix };
}

/**
 * Parses an IP address in its canonical text forms (dotted IPv4; IPv6 with `::` and an optional
 * trailing dotted IPv4), as URL hostnames and resolvers give them. Undefined for anything else.
 */
export function parseIp(text: string): number[] | undefined {
  const t = text.replace(/^\[|\]$/g, "");
  if (t.includes(":")) return parseIpv6(t);
  return parseIpv4(t);
}

function parseIpv4(t: string): number[] | undefined {
  const parts = t.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255)) return undefined;
  return parts.map(Number);
}

function parseIpv6(t: string): number[] | undefined {
  if (!/^[0-9a-fA-F:.]{2,45}$/.test(t)) return undefined;
  const halves = t.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    const parts = s.split(":");
    for (const [i, p] of parts.entries()) {
      if (i === parts.length - 1 && p.includes(".")) {
        const v4 = parseIpv4(p);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(p)) out.push(parseInt(p, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

/**
 * The address a dial actually reaches: an IPv6 address embedding an IPv4 one (mapped, NAT64,
 * compatible) is judged as that IPv4 address, so `[::ffff:169.254.169.254]` is link-local.
 */
function effective(bytes: number[]): number[] {
  if (bytes.length !== 16) return bytes;
  const v4 = bytes.slice(12);
  // :: and ::1 are not IPv4-compatible addresses: they keep their IPv6 meaning.
  if (bytes.slice(0, 15).every((b) => b === 0) && bytes[15]! <= 1) return bytes;
  return IPV4_EMBEDDING.some((p) => p.every((b, i) => bytes[i] === b)) ? v4 : bytes;
}

function inCidr(bytes: number[], c: Cidr): boolean {
  if (bytes.length !== c.bytes.length) return false;
  for (let bit = 0; bit < c.prefix; bit += 8) {
    const n = Math.min(8, c.prefix - bit);
    const mask = (0xff << (8 - n)) & 0xff;
    if ((bytes[bit / 8]! & mask) !== (c.bytes[bit / 8]! & mask)) return false;
  }
  return true;
}

function denied(host: string, rule: string, why: string, allowWith: string): EgressDecision {
  const detail = `${why}; a cluster admin can allow it with ${allowWith}`;
  return { allowed: false, rule, host, detail, message: `egress to ${host} is denied: ${detail}` };
}

/**
 * Judges an IP address (a URL's IP literal, or what a name resolved to at dial time): explicit
 * allowCidrs first, then the always-denied ranges and loopback. `whenUnmatched` is what an
 * address matched by no rule gets: the default action for a literal, allowed for an address a
 * name resolved to (the name itself was judged when it was written).
 */
export function checkAddress(address: string, policy: EgressPolicy, whenUnmatched: "default" | "allow" = "allow"): EgressDecision {
  const raw = parseIp(address);
  if (!raw) return denied(address, "not-an-address", "it is not an IP address", HOW_TO_ALLOW.hosts);
  const bytes = effective(raw);
  const allowedBy = policy.allowCidrs.find((c) => inCidr(bytes, c) || inCidr(raw, c));
  if (allowedBy) return { allowed: true, rule: `allowCidrs ${allowedBy.text}` };
  const hard = ALWAYS_DENIED.find((d) => inCidr(bytes, d.cidr));
  if (hard) return denied(address, `always-denied ${hard.cidr.text}`, hard.why, HOW_TO_ALLOW.cidrs);
  if (LOOPBACK.some((c) => inCidr(bytes, c))) {
    return policy.denyLoopback ? denied(address, "denyLoopback", "a loopback address, and loopback is denied", HOW_TO_ALLOW.loopback) : { allowed: true, rule: "loopback" };
  }
  if (whenUnmatched === "allow" || policy.defaultAction === "allow") return { allowed: true, rule: "default allow" };
  return denied(address, "default deny", "an IP address outside the allowed CIDRs (the default action is deny)", HOW_TO_ALLOW.cidrs);
}

/**
 * The Kubernetes namespace a host name is a service or pod name in, or undefined for a name
 * that is not one. `<x>.<ns>.svc[...]` and `<x>.<ns>.pod[...]` always are. Inside a cluster
 * (ownNamespace set) the resolver's search path (ndots 5) tries a relative name below
 * `svc.<domain>` before the name itself, so there `<svc>` is a service in the dialer's own
 * namespace, `<svc>.<ns>` a service in <ns>, and `<pod>.<svc>.<ns>` a StatefulSet's pod in <ns>;
 * a name written with a trailing dot is absolute and skips the search path.
 */
export function kubernetesNamespace(host: string, ownNamespace: string | undefined, absolute = false): string | undefined {
  const labels = host.split(".");
  for (let i = labels.length - 1; i >= 2; i--) {
    if (labels[i] === "svc" || labels[i] === "pod") return labels[i - 1];
  }
  if (ownNamespace === undefined || absolute) return undefined;
  if (labels.length === 1) return ownNamespace;
  if (labels.length <= 3) return labels[labels.length - 1];
  return undefined;
}

function hostAllowed(host: string, policy: EgressPolicy): string | undefined {
  return policy.allowHosts.find((h) => (h.startsWith("*.") ? host.endsWith(h.slice(1)) : host === h));
}

/**
 * The host a URL dials, the way the dialer reads it: lower case, no trailing dot, IPv4 in any
 * form (2852039166, 0xA9FEA9FE, 0251.0376.0251.0376) as dotted decimal, IPv6 without brackets.
 * Non-http schemes (redis://) keep their host verbatim in a URL, so it is re-read as http's.
 */
function dialHost(url: string): { host: string; absolute: boolean } | undefined {
  let u: URL;
  try {
    u = new URL(url);
    u = new URL(`http://${u.host}`);
  } catch {
    return undefined;
  }
  const host = u.hostname.replace(/^\[|\]$/g, "");
  return { host: host.replace(/\.$/, ""), absolute: host.endsWith(".") };
}

/**
 * Judges one URL written in a spec field of a rollout in `namespace` (module comment has the
 * rules). A refusal's message starts with the field, says which rule refused and how an admin
 * allows it; it names the host, never the whole URL (which may carry a password).
 */
export function checkEndpoint(url: string, namespace: string, policy: EgressPolicy, field = "endpoint"): EgressDecision {
  const decision = judgeHost(dialHost(url), namespace, policy);
  return decision.allowed ? decision : { ...decision, message: `${field}: ${decision.message}` };
}

function judgeHost(dialed: { host: string; absolute: boolean } | undefined, namespace: string, policy: EgressPolicy): EgressDecision {
  if (dialed === undefined || dialed.host === "") return denied("(no host)", "unparsable", "the URL has no host that parses", HOW_TO_ALLOW.hosts);
  const { host, absolute } = dialed;
  const listed = hostAllowed(host, policy);
  if (listed) return { allowed: true, rule: `allowHosts ${listed}` };
  if (parseIp(host)) return checkAddress(host, policy, "default");
  if (host === "localhost" || host.endsWith(".localhost")) return policy.denyLoopback ? denied(host, "denyLoopback", "a loopback name, and loopback is denied", HOW_TO_ALLOW.loopback) : { allowed: true, rule: "loopback" };
  if (METADATA_NAMES.has(host)) return denied(host, "metadata-name", "the name of a cloud metadata service", HOW_TO_ALLOW.hosts);
  const ns = kubernetesNamespace(host, policy.ownNamespace, absolute);
  if (ns !== undefined) {
    if (ns === namespace) return { allowed: true, rule: "own namespace" };
    if (policy.allowNamespaces.includes(ns) || policy.allowNamespaces.includes("*")) return { allowed: true, rule: `allowNamespaces ${ns}` };
    return denied(host, "cross-namespace", `it names a service in namespace "${ns}", not the rollout's namespace "${namespace}"`, `${HOW_TO_ALLOW.namespaces} or ${HOW_TO_ALLOW.hosts}`);
  }
  if (policy.defaultAction === "allow") return { allowed: true, rule: "default allow" };
  return denied(host, "default deny", "a host outside the allowed hosts and namespaces (the default action is deny)", HOW_TO_ALLOW.hosts);
}

/** A spec field that holds an address airollout dials, and the URL in it. */
export interface DialedField {
  field: string;
  url: string;
}

/** The spec's fields airollout dials (shape kept loose: callers hold a parsed Spec). */
interface DialingSpec {
  stable?: { endpoint?: string | undefined } | undefined;
  candidate: { endpoint?: string | undefined };
  shadow?: { noiseBaseline?: { endpoint?: string | undefined } | undefined } | undefined;
  analysis?: { prometheus?: { address: string } | undefined } | undefined;
  traffic?: { idempotency?: { redisUrl?: string | undefined } | undefined } | undefined;
  environments?: { pulumi: { backend?: string | undefined } } | undefined;
}

/**
 * The addresses a spec makes the gateway or the controller dial: the versions' endpoints, the
 * noise baseline, Prometheus, Redis, and a Pulumi backend reached over http(s).
 */
export function dialedFields(spec: DialingSpec): DialedField[] {
  const out: DialedField[] = [];
  const add = (field: string, url: string | undefined) => {
    if (url !== undefined) out.push({ field, url });
  };
  add("spec.stable.endpoint", spec.stable?.endpoint);
  add("spec.candidate.endpoint", spec.candidate.endpoint);
  add("spec.shadow.noiseBaseline.endpoint", spec.shadow?.noiseBaseline?.endpoint);
  add("spec.analysis.prometheus.address", spec.analysis?.prometheus?.address);
  add("spec.traffic.idempotency.redisUrl", spec.traffic?.idempotency?.redisUrl);
  const backend = spec.environments?.pulumi.backend;
  if (backend !== undefined && /^https?:\/\//i.test(backend)) add("spec.environments.pulumi.backend", backend);
  return out;
}

/** Refusals of a spec's dialed fields under a policy (empty when every one is allowed, or there is no policy). */
export function egressProblems(spec: DialingSpec, namespace: string, policy: EgressPolicy | undefined): string[] {
  const out: string[] = [];
  if (!policy) return out;
  for (const f of dialedFields(spec)) {
    const d = checkEndpoint(f.url, namespace, policy, f.field);
    if (!d.allowed) out.push(d.message);
  }
  return out;
}
