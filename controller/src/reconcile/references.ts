/**
 * The ConfigMaps and Secrets a version refers to, and how their observed content is looked up.
 * Shared by the candidate's revision (reconcile.ts) and the stable environment's (machine.ts).
 */
import type { Spec, VersionSpec } from "../api/schema.ts";
import type { Reference, World } from "./contract.ts";

/**
 * The ConfigMap and Secret keys one version's answers depend on: its prompt (promptRef) and the
 * env entries with valueFrom. Their content goes into that version's revision. `field` names
 * where the version was read (spec.candidate, spec.stable, status.stable.spec).
 */
export function versionReferencesOf(v: VersionSpec, field: string): Reference[] {
  const refs: Reference[] = [];
  const p = v.config?.promptRef;
  if (p) refs.push({ kind: "ConfigMap", name: p.configMap, key: p.key, field: `${field}.config.promptRef` });
  (v.env ?? []).forEach((e, i) => {
    const s = e.valueFrom?.secretKeyRef;
    if (s) refs.push({ kind: "Secret", name: s.name, key: s.key, field: `${field}.env[${i}].valueFrom.secretKeyRef` });
    const c = e.valueFrom?.configMapKeyRef;
    if (c) refs.push({ kind: "ConfigMap", name: c.name, key: c.key, field: `${field}.env[${i}].valueFrom.configMapKeyRef` });
  });
  return refs;
}

/** The references of spec.stable or spec.candidate; none when the role is not set. */
export function versionReferences(spec: Spec, role: "stable" | "candidate"): Reference[] {
  const v = spec[role];
  return v ? versionReferencesOf(v, `spec.${role}`) : [];
}

/** spec.golden's suite: its content is part of the candidate's revision, like a prompt. */
export function goldenReference(spec: Spec): Reference | undefined {
  const g = spec.golden?.configMapRef;
  return g ? { kind: "ConfigMap", name: g.name, key: g.key, field: "spec.golden.configMapRef" } : undefined;
}

/** The key a reference is looked up by in World.references. */
export function referenceKey(r: Pick<Reference, "kind" | "name">): string {
  return `${r.kind}/${r.name}`;
}

/** The observed content digest of a reference's key; undefined when it was not observed. */
export function referenceDigest(world: Pick<World, "references">, r: Reference): string | undefined {
  return world.references[referenceKey(r)]?.digests?.[r.key];
}
