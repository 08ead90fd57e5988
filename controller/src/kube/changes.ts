/**
 * Which watch events of an AIRollout call for a pass. The controller's own status writes come
 * back through the watch; enqueueing each at once ran the next pass right after a failed one and
 * defeated the queue's backoff (three environment failures 40-60 ms apart, then Stalled). A pass
 * is due when something outside status changed: the spec (generation), the annotations (promote,
 * abort, retry), the finalizers, deletion, or the object itself (a new uid). A status changed by
 * someone else waits for the next timed pass or resync, as in controllers built on
 * controller-runtime's GenerationChangedPredicate (which also lets annotation changes through here).
 */
import { ANNOTATIONS, type AIRollout } from "../api/schema.ts";

const HUMAN_CONTROL: readonly string[] = Object.values(ANNOTATIONS);

/** An object the controller watches (an AIRollout, an AIPreview): only its metadata matters here. */
type Watched = Pick<AIRollout, "metadata">;

/**
 * What of an object, besides status, a pass depends on. Of the annotations only the ones a pass
 * reads (promote, abort, retry): others, such as kubectl's last-applied copy of the spec (which
 * the informer cache drops, so a write's response and its watch event differ in it), are not.
 */
function fingerprint(obj: Watched): string {
  const m = obj.metadata;
  const human = HUMAN_CONTROL.map((k) => m.annotations?.[k] ?? null);
  return JSON.stringify([m.uid ?? null, m.generation ?? null, m.deletionTimestamp ?? null, human, m.finalizers ?? []]);
}

/** Remembers, per key, the last version seen; one entry per object the informer holds. */
export class ChangeFilter {
  private readonly seen = new Map<string, string>();

  /**
   * Whether `obj` differs from the last version seen of `key` in anything but status and
   * resourceVersion (true for a key not seen before). Records it either way.
   */
  changed(key: string, obj: Watched): boolean {
    const f = fingerprint(obj);
    if (this.seen.get(key) === f) return false;
    this.seen.set(key, f);
    return true;
  }

  /**
   * Records a version this process wrote (a finalizer added), so its watch event, which may
   * arrive during a later pass, is not taken for someone else's change.
   */
  observe(key: string, obj: Watched): void {
    this.seen.set(key, fingerprint(obj));
  }

    /** Drops a deleted object's entry. */
  forget(key: string): void {
    this.seen.delete(key);
  }
}
