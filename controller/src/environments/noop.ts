/**
 * The environments port for rollouts whose versions are external endpoints: nothing to stand
 * up or tear down. The Pulumi adapter replaces it for image-based versions.
 */
import type { AIRollout } from "../api/schema.ts";
import type { EnvironmentsPort } from "../reconcile/ports.ts";

export class NoopEnvironments implements EnvironmentsPort {
  async destroyAll(_rollout: AIRollout, _reason: string): Promise<void> {}
}
