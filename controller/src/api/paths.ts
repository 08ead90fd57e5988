/** Where AIRollouts live in the Kubernetes API: one place for the paths every client uses. */
import { GROUP, PLURAL, VERSION } from "./schema.ts";

/** Base path of AIRollouts in a namespace, or cluster-wide when namespace is undefined. */
export function rolloutsPath(namespace?: string): string {
  return namespace ? `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/${PLURAL}`;
}

/** Path of one AIRollout. */
export function rolloutPath(namespace: string, name: string): string {
  return `${rolloutsPath(namespace)}/${name}`;
}
