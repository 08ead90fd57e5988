/**
 * The dial-time half of the egress policy (egress.ts judges what a spec writes): a resolver
 * hook for node:net that checks every address a name resolves to before a connection is made.
 * Shared by the gateway's backend agents, the controller's Prometheus client and the fixtures
 * replay (fixtures/replay.ts); its only I/O is the system resolver.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions } from "node:dns";
import type { LookupFunction } from "node:net";
import { checkAddress, type EgressPolicy } from "./egress.ts";

/** The error code of a dial the egress policy refused. */
export const EGRESS_DENIED = "EGRESS_DENIED";

/** A resolver answering every address of a name, as dns.lookup does with `all: true`. */
export type ResolveAll = (hostname: string, options: LookupAllOptions, callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

/**
 * dns.lookup (or `o.resolve`: a test's resolver), then the policy over every address the name
 * resolved to: one refused address refuses the dial (a resolver answering several may hand any
 * of them to the connection). Use it as an http(s).Agent's `lookup` option: connections to IP
 * literals skip it (those are judged as written).
 */
export function egressLookup(policy: EgressPolicy, o: { resolve?: ResolveAll } = {}): LookupFunction {
  const resolve: ResolveAll = o.resolve ?? dnsLookup;
  return (hostname, options, callback) => {
    const all: LookupAllOptions = { ...options, all: true };
    resolve(hostname, all, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, "", 0);
      const refused = addresses.map((a) => checkAddress(a.address, policy)).find((d) => !d.allowed);
      if (refused && !refused.allowed) {
        const e: NodeJS.ErrnoException = new Error(`egress to ${hostname} is denied at dial time: it resolves to ${refused.host}, ${refused.detail}`);
        e.code = EGRESS_DENIED;
        return callback(e, "", 0);
      }
      if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname}: no addresses`), { code: "ENOTFOUND" }), "", 0);
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      callback(null, addresses[0]!.address, addresses[0]!.family);
    });
  };
}
