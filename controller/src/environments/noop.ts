/**
 * The environments port of a controller run with `--environments none` (cli/controller.ts
 * chooses it per process; otherwise the Pulumi adapter serves every rollout): an external
 * endpoint needs nothing stood up or torn down, and an image version is a permanent
 * EnvironmentsDisabled failure.
 */
import type { AIRollout, VersionSpec } from "../api/schema.ts";
import type { EnsureOptions, EnvironmentFailure, EnvironmentRole, EnvironmentStatus, EnvironmentSummary, EnvironmentsPort } from "../reconcile/contract.ts";
import { Reason } from "../reconcile/reasons.ts";

export class NoopEnvironments implements EnvironmentsPort {
  async destroyAll(_rollout: AIRollout, _reason: string): Promise<void> {}

  /**
   * An external endpoint is its own environment: Ready at once, at its URL. An image version has
   * nothing serving it here: that is a failure that no retry clears, never a Ready environment.
   */
  async ensure(rollout: AIRollout, role: EnvironmentRole, version: VersionSpec, opts: EnsureOptions = {}): Promise<EnvironmentStatus> {
    const stack = `${rollout.metadata.namespace}-${rollout.metadata.name}-${role}`;
    if (version.image) {
      const message = `version ${version.version} is an image version (${version.image}), but this controller runs with --environments none and stands nothing up: use endpoint versions, or run the controller with --environments pulumi`;
      throw Object.assign(new Error(message), { transient: false, permanent: true, reason: Reason.EnvironmentsDisabled, message, stackName: stack, role } satisfies EnvironmentFailure);
    }
    return {
      stack,
      phase: "Ready",
      ...(version.endpoint ? { url: version.endpoint } : {}),
      version: version.version,
      ...(opts.revision ? { revision: opts.revision } : {}),
      message: "no environment: the version is an external endpoint",
    };
  }

  async destroy(_rollout: AIRollout, _role: EnvironmentRole, _reason: string): Promise<void> {}

  async list(_rollout?: AIRollout): Promise<EnvironmentSummary[]> {
    return [];
  }

  async collectExpired(_now: Date): Promise<EnvironmentSummary[]> {
    return [];
  }
}
