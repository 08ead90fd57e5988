/** Ports that reconcile's actions need; adapters implement them (never the other way round). */
import type { AIRollout } from "../api/schema.ts";

/** Stands up and tears down a rollout's environments (canary, shadow, previews). */
export interface EnvironmentsPort {
  /** Destroys every environment of the rollout; resolves when nothing is left behind. */
  destroyAll(rollout: AIRollout, reason: string): Promise<void>;
}
