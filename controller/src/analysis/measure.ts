/**
 * The controller's MeasurementsPort: runs the queries a reconcile pass asked for, in parallel, one
 * PrometheusProvider per address (reused across passes).
 */
import type { MeasurementsPort } from "../reconcile/contract.ts";
import type { MeasureRequest } from "../reconcile/contract.ts";
import type { QueryOutcome } from "./provider.ts";
import { PrometheusProvider } from "./prometheus.ts";
import type { MetricsProvider } from "./provider.ts";

export class PrometheusMeasurements implements MeasurementsPort {
  private readonly providers = new Map<string, MetricsProvider>();
  private readonly factory: (address: string) => MetricsProvider;

  constructor(factory: (address: string) => MetricsProvider = (a) => new PrometheusProvider(a)) {
    this.factory = factory;
  }

  private provider(address: string): MetricsProvider {
    let p = this.providers.get(address);
    if (!p) {
      p = this.factory(address);
      this.providers.set(address, p);
    }
    return p;
  }

  async measure(requests: readonly MeasureRequest[]): Promise<Record<string, QueryOutcome>> {
    const entries = await Promise.all(
      requests.map(async (r): Promise<[string, QueryOutcome]> => {
        try {
          return [r.key, await this.provider(r.address).query(r.query, { timeoutMs: r.timeoutMs })];
        } catch (err) {
          return [r.key, { kind: "error", message: `querying ${r.address}: ${(err as Error).message}` }];
        }
      }),
    );
    return Object.fromEntries(entries);
  }
}
