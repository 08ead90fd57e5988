/**
 * The GitOps examples (examples/gitops) against the real CRDs. Given Argo CD's and Flux's CRDs at
 * the versions pinned in hack/versions.env (from their Go modules, through the module proxy) and
 * ours installed in the local API server, When every example object, and what the ApplicationSet
 * makes of a sample pull request, is applied with a server-side dry run and strict field
 * validation, Then the API server accepts them; and a copy with a misspelt field is refused.
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, parseAllDocuments, stringify } from "yaml";
import { pinnedGoModuleDir } from "../../controller/src/dev/go-module.ts";
import { PROJECT_ROOT } from "../../controller/src/dev/tools.ts";
import { kubeconfig, kubectl, waitFor } from "./helpers.ts";

const EXAMPLES = join(PROJECT_ROOT, "examples", "gitops");
// Each argocd-cm health key and the chart's file it must equal.
const HEALTH_CHECKS: Record<string, string> = {
  "resource.customizations.health.airollout.dev_AIRollout": join(PROJECT_ROOT, "charts", "airollout", "files", "argocd-health.lua"),
  "resource.customizations.health.airollout.dev_AIPreview": join(PROJECT_ROOT, "charts", "airollout", "files", "argocd-health-aipreview.lua"),
};
// The namespaces the examples name: the dry run of a namespaced object needs its namespace.
const NAMESPACES = ["argocd", "flux-system", "team-triage"];

type Obj = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string } };

let work: string;
let argoModule: string;
const installedCRDs: string[] = [];

/** kubectl with a longer timeout than the helpers' (the ApplicationSet CRD is 1.4 MB). */
function kubectlLong(args: string[]): { code: number; stdout: string; stderr: string } {
  const res = spawnSync(inject("kubectl"), args, { env: { ...process.env, KUBECONFIG: kubeconfig() }, encoding: "utf8", timeout: 300_000 });
  return { code: res.status ?? -1, stdout: res.stdout, stderr: res.stderr };
}

/** The value at a dotted path (`spec.generators.0.pullRequest`); undefined when any step is missing. */
function get(obj: unknown, path: string): unknown {
  let at: unknown = obj;
  for (const key of path.split(".")) at = at !== null && typeof at === "object" ? (at as Record<string, unknown>)[key] : undefined;
  return at;
}

/** Sets the value at a dotted path whose parent exists (a test edit of an example). */
function set(obj: unknown, path: string, value: unknown): void {
  const keys = path.split(".");
  const parent = keys.length === 1 ? obj : get(obj, keys.slice(0, -1).join("."));
  if (parent === null || typeof parent !== "object") throw new Error(`no object at ${keys.slice(0, -1).join(".")}`);
  (parent as Record<string, unknown>)[keys.at(-1)!] = value;
}

/** The CRD files of the pinned Argo CD and Flux releases, and ours. */
async function crdFiles(): Promise<string[]> {
  argoModule = await pinnedGoModuleDir("github.com/argoproj/argo-cd/v3", "ARGOCD_VERSION");
  const argo = join(argoModule, "manifests", "crds");
  const kustomize = join(await pinnedGoModuleDir("github.com/fluxcd/kustomize-controller", "FLUX_KUSTOMIZE_CONTROLLER_VERSION"), "config", "crd", "bases");
  const source = join(await pinnedGoModuleDir("github.com/fluxcd/source-controller", "FLUX_SOURCE_CONTROLLER_VERSION"), "config", "crd", "bases");
  const ours = join(PROJECT_ROOT, "crds");
  return [
    join(argo, "application-crd.yaml"),
    join(argo, "applicationset-crd.yaml"),
    join(argo, "appproject-crd.yaml"),
    join(kustomize, "kustomize.toolkit.fluxcd.io_kustomizations.yaml"),
    join(source, "source.toolkit.fluxcd.io_gitrepositories.yaml"),
    ...readdirSync(ours)
      .filter((f) => f.endsWith(".yaml"))
      .map((f) => join(ours, f)),
  ];
}

/**
 * Applies the CRDs server-side (the ApplicationSet CRD is too large for client-side apply) and
 * waits until each is Established. Polled: `kubectl wait` fails outright when it looks before the
 * API server has written any condition.
 */
async function installCRDs(files: string[]): Promise<void> {
  for (const file of files) {
    if (!existsSync(file)) throw new Error(`CRD file ${file} is missing`);
    const r = kubectlLong(["apply", "--server-side", "--force-conflicts", "-f", file]);
    if (r.code !== 0) throw new Error(`installing ${file} failed: ${r.stderr}`);
    if (!file.startsWith(join(PROJECT_ROOT, "crds"))) installedCRDs.push((parse(readFileSync(file, "utf8")) as Obj).metadata.name);
  }
  for (const file of files) {
    const name = (parse(readFileSync(file, "utf8")) as Obj).metadata.name;
    await waitFor(
      `CRD ${name} Established`,
      // Only the condition: the ApplicationSet CRD as JSON is larger than spawnSync's buffer.
      // Before any condition is written the filter is an error, which reads as not yet.
      () => kubectlLong(["get", "crd", name, "-o", 'jsonpath={.status.conditions[?(@.type=="Established")].status}']).stdout.trim() === "True",
      180_000,
      500,
    );
  }
}

/** Every file under dir, recursively, relative to it. */
function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path).map((p) => join(name, p)) : [name];
  });
}

/** The API objects of a YAML file (kustomize's own kustomization.yaml is not one). */
function objectsOf(file: string): Obj[] {
  return parseAllDocuments(readFileSync(file, "utf8"))
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => !!o && !o.apiVersion.startsWith("kustomize.config.k8s.io/"));
}

/** A server-side dry run of one object with strict field validation (unknown or duplicate fields are errors). */
function dryRun(obj: unknown): { code: number; stdout: string; stderr: string } {
  return kubectl(["apply", "--dry-run=server", "--validate=strict", "-f", "-"], JSON.stringify(obj));
}

/** kustomize build, as Argo CD's repo server and Flux's kustomize-controller run it (kubectl's built-in kustomize). */
function kustomizeBuild(dir: string): Obj[] {
  const r = kubectl(["kustomize", dir]);
  if (r.code !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${r.stderr}`);
  return parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
}

/**
 * Renders an ApplicationSet template as Argo CD does with goTemplate and missingkey=error, for
 * the plain `{{.key}}` expressions the example uses: any other template expression, or a key
 * the generator does not give, is an error rather than text left in the output.
 */
function renderTemplate(template: unknown, params: Record<string, string>): unknown {
  if (typeof template === "string") {
    const out = template.replace(/\{\{\s*\.([A-Za-z_]\w*)\s*\}\}/g, (_m, key: string) => {
      const v = params[key];
      if (v === undefined) throw new Error(`template: map has no entry for key "${key}"`);
      return v;
    });
    if (out.includes("{{")) throw new Error(`template expression this renderer does not support in ${JSON.stringify(template)}`);
    return out;
  }
  if (Array.isArray(template)) return template.map((t) => renderTemplate(t, params));
  if (template && typeof template === "object") return Object.fromEntries(Object.entries(template).map(([k, v]) => [renderTemplate(k, params) as string, renderTemplate(v, params)]));
  return template;
}

/** The example named `Kind` (the only one of its kind) or `Kind/name`. */
function example(which: string): Obj {
  const [kind, name] = which.split("/");
  const found = allExamples().filter((e) => e.obj.kind === kind && (name === undefined || e.obj.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${which} among the examples, found ${found.length}`);
  return structuredClone(found[0]!.obj);
}

/**
 * What Argo CD's repo server and Flux's kustomize-controller do with a kustomize path and their
 * own kustomize edits: the directory copied, the nameSuffix and patches written into its
 * kustomization.yaml, built with kustomize.
 */
function kustomizeWith(path: string, copyName: string, edits: { nameSuffix?: string; patches?: unknown[] }): Obj[] {
  const dir = join(work, copyName);
  cpSync(join(EXAMPLES, path), dir, { recursive: true });
  const file = join(dir, "kustomization.yaml");
  const k = parse(readFileSync(file, "utf8")) as Record<string, unknown>;
  if (edits.nameSuffix) k.nameSuffix = edits.nameSuffix;
  if (edits.patches) k.patches = [...((k.patches as unknown[]) ?? []), ...edits.patches];
  writeFileSync(file, stringify(k));
  return kustomizeBuild(dir);
}

let examplesCache: { from: string; obj: Obj }[] | undefined;

/** Every object of examples/gitops: the files Argo CD and Flux are given, and the kustomize builds they sync (read once). */
function allExamples(): { from: string; obj: Obj }[] {
  if (examplesCache) return examplesCache;
  const files = walk(EXAMPLES).filter((f) => f.endsWith(".yaml") && !f.startsWith("deploy/"));
  const direct = files.flatMap((f) => objectsOf(join(EXAMPLES, f)).map((obj) => ({ from: f, obj })));
  const builds = ["deploy/rollouts", "deploy/preview"].flatMap((d) => kustomizeBuild(join(EXAMPLES, d)).map((obj) => ({ from: `kustomize build ${d}`, obj })));
  examplesCache = [...direct, ...builds];
  return examplesCache;
}

// A sample pull request as the GitHub pull-request generator describes it (Argo CD's parameter names).
const SAMPLE_PR = {
  number: "42",
  branch: "faster-model",
  branch_slug: "faster-model",
  target_branch: "main",
  target_branch_slug: "main",
  head_sha: "0123456789abcdef0123456789abcdef01234567",
  head_short_sha: "01234567",
  head_short_sha_7: "0123456",
  author: "octocat",
};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "airollout-gitops-"));
  // Cold, the three modules download in seconds to a minute; cached, instantly.
  await installCRDs(await crdFiles());
  for (const ns of NAMESPACES) {
    const r = kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "Namespace", metadata: { name: ns } }));
    if (r.code !== 0) throw new Error(`creating namespace ${ns}: ${r.stderr}`);
  }
}, 900_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
  // The Argo CD and Flux CRDs go; the namespaces are empty (dry runs only) and go too.
  if (installedCRDs.length) kubectl(["delete", "crd", "--wait=false", "--ignore-not-found", ...installedCRDs]);
  kubectl(["delete", "namespace", "--wait=false", "--ignore-not-found", ...NAMESPACES]);
});

describe("the GitOps examples against the real Argo CD and Flux CRDs", () => {
  it("applies every example object with a server-side dry run and strict field validation", () => {
    const all = allExamples();
    expect(all.map((e) => e.obj.kind).sort()).toEqual(["AIPreview", "AIRollout", "Application", "ApplicationSet", "ConfigMap", "GitRepository", "GitRepository", "Kustomization", "Kustomization"]);
    for (const { from, obj } of all) {
      const r = dryRun(obj);
      expect(r.stderr, `${from}: ${obj.kind}/${obj.metadata.name}`).toBe("");
      expect(r.code, `${from}: ${obj.kind}/${obj.metadata.name}`).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`/${obj.metadata.name} created \\(server dry run\\)`));
    }
  });

  it.each<[string, string, string, unknown, RegExp]>([
    ["Application", "a misspelt syncPolicy field", "spec.syncPolicy.automated.prunne", true, /unknown field "spec.syncPolicy.automated.prunne"/],
    ["ApplicationSet", "a misspelt pull-request generator field", "spec.generators.0.pullRequest.github.label", ["preview"], /unknown field "spec.generators\[0\].pullRequest.github.label"/],
    ["ApplicationSet", "a misspelt kustomize field in the template", "spec.template.spec.source.kustomize.nameSufix", "-x", /unknown field "spec.template.spec.source.kustomize.nameSufix"/],
    ["ApplicationSet", "a string where the CRD wants an integer", "spec.generators.0.pullRequest.requeueAfterSeconds", "5m", /requeueAfterSeconds: Invalid value: "string"/],
    ["Kustomization/triage-bot-rollouts", "healthCheck for healthChecks", "spec.healthCheck", [], /unknown field "spec.healthCheck"/],
    ["Kustomization/triage-bot-rollouts", "a misspelt health check field", "spec.healthChecks.0.nmae", "x", /unknown field "spec.healthChecks\[0\].nmae"/],
    ["Kustomization/triage-bot-preview-faster-model", "a misspelt nameSuffix", "spec.nameSufix", "-x", /unknown field "spec.nameSufix"/],
    ["GitRepository/triage-bot", "a misspelt ref field", "spec.ref", { brnch: "main" }, /unknown field "spec.ref.brnch"/],
    ["ConfigMap", "a misspelt top-level field", "date", {}, /unknown field "date"/],
    ["AIRollout", "a misspelt spec field", "spec.strategy.stepz", [], /unknown field "spec.strategy.stepz"/],
    ["AIPreview", "a misspelt fixtures field", "spec.fixtures.fromRollut", "triage-bot", /unknown field "spec.fixtures.fromRollut"/],
  ])("refuses a %s with %s", (kind, _what, path, value, message) => {
    const obj = example(kind);
    expect(dryRun(obj).code).toBe(0);
    set(obj, path, value);
    const r = dryRun(obj);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
  });

  it("carries the chart's Argo CD health checks (AIRollout, AIPreview) in argocd-cm word for word", () => {
    const cm = example("ConfigMap");
    expect(cm.metadata).toMatchObject({ name: "argocd-cm", namespace: "argocd" });
    const data = cm.data as Record<string, string>;
    expect(Object.keys(data)).toEqual(Object.keys(HEALTH_CHECKS));
    for (const [key, file] of Object.entries(HEALTH_CHECKS)) expect(data[key], key).toBe(readFileSync(file, "utf8"));
  });

  it("points Argo CD and Flux at directories of the examples, in the same repository", () => {
    const app = example("Application");
    const appset = example("ApplicationSet");
    const repo = example("GitRepository/triage-bot");
    const flux = example("Kustomization/triage-bot-rollouts");
    const sources = [get(app, "spec.source"), get(appset, "spec.template.spec.source")];
    for (const s of sources) expect(get(s, "repoURL")).toBe(get(repo, "spec.url"));
    const paths = [...sources.map((s) => get(s, "path") as string), get(flux, "spec.path") as string];
    expect(paths).toEqual(["deploy/rollouts", "deploy/preview", "./deploy/rollouts"]);
    for (const p of paths) expect(existsSync(join(EXAMPLES, p, "kustomization.yaml")), p).toBe(true);
    // Flux waits for the AIRollout that deploy/rollouts makes.
    const rollout = example("AIRollout");
    // The finalizers are ones the pinned Argo CD acts on.
    const defaults = readFileSync(join(argoModule, "pkg", "apis", "application", "v1alpha1", "application_defaults.go"), "utf8");
    for (const f of [app.metadata, get(appset, "spec.template.metadata")].flatMap((m) => get(m, "finalizers") as string[])) expect(defaults).toContain(`"${f}"`);
    expect(get(flux, "spec.healthChecks")).toEqual([{ apiVersion: rollout.apiVersion, kind: "AIRollout", name: rollout.metadata.name, namespace: rollout.metadata.namespace }]);
  });

  it("the Flux preview builds, with its own kustomize edits, the one AIPreview its healthChecks wait for, which our CRD accepts", () => {
    const source = example("GitRepository/triage-bot-faster-model");
    const flux = example("Kustomization/triage-bot-preview-faster-model");
    // The same repository as the rollouts, at the branch the Kustomization previews.
    expect(get(source, "spec.url")).toBe(get(example("GitRepository/triage-bot"), "spec.url"));
    expect(get(source, "spec.ref")).toEqual({ branch: "faster-model" });
    expect(get(flux, "spec.sourceRef")).toEqual({ kind: "GitRepository", name: source.metadata.name });
    const path = (get(flux, "spec.path") as string).replace(/^\.\//, "");
    expect(path).toBe("deploy/preview");
    const built = kustomizeWith(path, "flux-faster-model", { nameSuffix: get(flux, "spec.nameSuffix") as string, patches: get(flux, "spec.patches") as unknown[] });
    expect(built.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual(["AIPreview/team-triage/triage-bot-faster-model"]);
    const preview = built[0]!;
    expect(get(preview, "spec.version")).toEqual({ version: "faster-model", image: "ghcr.io/acme/triage-bot:faster-model" });
    expect(get(flux, "spec.healthChecks")).toEqual([{ apiVersion: preview.apiVersion, kind: "AIPreview", name: preview.metadata.name, namespace: preview.metadata.namespace }]);
    const r = dryRun(preview);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("aipreview.airollout.dev/triage-bot-faster-model created (server dry run)");
  });
});

describe("what the ApplicationSet makes of a sample pull request", () => {
  let app: Obj;
  let rendered: Obj[];

  beforeAll(() => {
    const appset = example("ApplicationSet");
    const template = get(appset, "spec.template");
    app = { apiVersion: "argoproj.io/v1alpha1", kind: "Application", ...(renderTemplate(template, SAMPLE_PR) as { metadata: Obj["metadata"]; spec: unknown }) };
    app.metadata.namespace = appset.metadata.namespace;
    rendered = renderPreview(app);
  });

  /**
   * What Argo CD's repo server does with a kustomize source: the path at the pull request's
   * commit, with the Application's nameSuffix and patches written into its kustomization.yaml,
   * built with kustomize.
   */
  function renderPreview(application: Obj): Obj[] {
    const source = get(application, "spec.source") as { path: string; kustomize: { nameSuffix?: string; patches?: unknown[] } };
    return kustomizeWith(source.path, `pr-${SAMPLE_PR.number}`, source.kustomize);
  }

  it("is an Application the Argo CD CRD accepts, at the pull request's head commit", () => {
    expect(app.metadata.name).toBe("triage-bot-pr-42");
    expect(get(app, "spec.source.targetRevision")).toBe(SAMPLE_PR.head_sha);
    const r = dryRun(app);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("syncs one AIPreview for the pull request's image that our CRD accepts", () => {
    expect(rendered.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual(["AIPreview/triage-bot-pr-42"]);
    const preview = rendered[0]!;
    expect(preview.apiVersion).toBe("airollout.dev/v1alpha1");
    expect(preview.metadata.namespace).toBe("team-triage");
    expect(preview.spec).toEqual({
      rolloutRef: { name: "triage-bot" },
      version: { version: "pr-42", image: `ghcr.io/acme/triage-bot:${SAMPLE_PR.head_sha}` },
      ttl: "48h",
      fixtures: { fromRollout: "triage-bot", count: 100 },
    });
    const r = dryRun(preview);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe("aipreview.airollout.dev/triage-bot-pr-42 created (server dry run)");
  });

  it("refuses a template key the generator does not give, as missingkey=error does", () => {
    const appset = example("ApplicationSet");
    expect(get(appset, "spec.goTemplateOptions")).toEqual(["missingkey=error"]);
    const { number: _omitted, ...withoutNumber } = SAMPLE_PR;
    expect(() => renderTemplate(get(appset, "spec.template"), withoutNumber)).toThrow(/no entry for key "number"/);
  });
});
