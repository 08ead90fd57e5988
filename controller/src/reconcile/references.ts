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

/** The golden suites golden steps name themselves (strategy.steps[i].golden.configMapRef), in step order. */
export function stepGoldenReferences(spec: Spec): Reference[] {
  return spec.strategy.steps.flatMap((s, i): Reference[] => {
    const g = s.golden?.configMapRef;
    return g ? [{ kind: "ConfigMap", name: g.name, key: g.key, field: `spec.strategy.steps[${i}].golden.configMapRef` }] : [];
  });
}

/** Every golden suite the spec names: spec.golden's and the steps' own. All are part of the revision. */
export function goldenReferences(spec: Spec): Reference[] {
  const main = goldenReference(spec);
  return [...(main ? [main] : []), ...stepGoldenReferences(spec)];
}

/**
 * The suite a golden step runs: its own configMapRef, else spec.golden's. `stepIndex` is the index
 * in the resolved steps (status.steps), where spec.golden.gate adds a first step of its own.
 */
export function goldenReferenceOfStep(spec: Spec, stepIndex: number): Reference | undefined {
  const specIndex = stepIndex - (spec.golden?.gate ? 1 : 0);
  const own = spec.strategy.steps[specIndex]?.golden?.configMapRef;
  if (specIndex >= 0 && own) return { kind: "ConfigMap", name: own.name, key: own.key, field: `spec.strategy.steps[${specIndex}].golden.configMapRef` };
  return goldenReference(spec);
}

/**
 * What the golden suites add to the candidate's revision material: spec.golden's digest as
 * `golden` (as before), and the steps' own suites as `goldenSteps` only when there are any, so
 * the revisions of rollouts without them stay what earlier controllers computed.
 */
export function goldenRevisionMaterial(spec: Spec, world: Pick<World, "references">): Record<string, unknown> {
  const main = goldenReference(spec);
  const steps = stepGoldenReferences(spec).map((r) => [r.field, referenceDigest(world, r) ?? null]);
  return { ...(main ? { golden: referenceDigest(world, main) ?? null } : {}), ...(steps.length > 0 ? { goldenSteps: steps } : {}) };
}

/** The key a reference is looked up by in World.references. */
export function referenceKey(r: Pick<Reference, "kind" | "name">): string {
  return `${r.kind}/${r.name}`;
}

/** The observed content digest of a reference's key; undefined when it was not observed. */
export function referenceDigest(world: Pick<World, "references">, r: Reference): string | undefined {
  return world.references[referenceKey(r)]?.digests?.[r.key];
}
