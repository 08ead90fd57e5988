/** Reading AIPreviews in integration tests. */
import { previewPath, type AIPreview } from "../../controller/src/api/preview-schema.ts";
import { client, waitFor } from "./helpers.ts";

/**
 * The live preview once the controller has written a status of its current generation in
 * `phase` (a status of an older generation does not count: the controller has not seen the edit).
 */
export function previewInPhase(namespace: string, name: string, phase: string, timeoutMs: number): Promise<AIPreview> {
  return waitFor(`${namespace}/${name} ${phase} for its generation`, async () => {
    const p = await client().get<AIPreview>(previewPath(namespace, name));
    return p.status?.phase === phase && p.status.observedGeneration === p.metadata.generation ? p : undefined;
  }, timeoutMs, 250);
}
