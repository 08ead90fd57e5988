import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { stringify } from "yaml";
import { KubeConfigError, kubeTarget, loadKubeConfig, type KubeEnv } from "./kubeconfig.ts";

const dir = mkdtempSync(join(tmpdir(), "kubeconfig-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Ctx {
  name: string;
  cluster: string;
  namespace?: string;
}

/** Writes a kubeconfig with one cluster per distinct server name, one user, and the contexts given. */
function kubeconfig(file: string, opts: { current?: string; contexts: Ctx[]; user?: string }): string {
  const clusters = [...new Set(opts.contexts.map((c) => c.cluster))];
  const user = opts.user ?? "me";
  const doc = {
    apiVersion: "v1",
    kind: "Config",
    ...(opts.current ? { "current-context": opts.current } : {}),
    clusters: clusters.map((c) => ({ name: c, cluster: { server: `https://${c}.example:6443`, "certificate-authority": "ca.crt" } })),
    users: [{ name: user, user: { token: `token-of-${file}` } }],
    contexts: opts.contexts.map((c) => ({ name: c.name, context: { cluster: c.cluster, user, ...(c.namespace ? { namespace: c.namespace } : {}) } })),
  };
  const path = join(dir, file);
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, stringify(doc));
  return path;
}

// One file with two contexts on two clusters, each with its own default namespace.
const TWO = kubeconfig("two.yaml", {
  current: "alpha",
  contexts: [
    { name: "alpha", cluster: "alpha", namespace: "team-a" },
    { name: "beta", cluster: "beta", namespace: "team-b" },
  ],
});
// A second file: its own current context, a context that shadows one of TWO's names, and one of its own.
const OTHER = kubeconfig("other.yaml", {
  current: "gamma",
  user: "other",
  contexts: [
    { name: "beta", cluster: "shadowed", namespace: "shadowed" },
    { name: "gamma", cluster: "gamma" },
  ],
});
const HOME = join(dir, "home");
const HOME_CONFIG = kubeconfig("home/.kube/config", { current: "home", contexts: [{ name: "home", cluster: "home", namespace: "home-ns" }] });
const NO_CURRENT = kubeconfig("no-current.yaml", { contexts: [{ name: "delta", cluster: "delta", namespace: "team-d" }] });

const env = (e: Partial<KubeEnv>): KubeEnv => ({ home: HOME, inCluster: false, ...e });
const server = (t: { kc: { getCurrentCluster(): { server: string } | null } }) => t.kc.getCurrentCluster()?.server;

describe("kubectl's precedence: --kubeconfig > $KUBECONFIG > ~/.kube/config", () => {
  it("uses ~/.kube/config when neither the flag nor $KUBECONFIG is given", () => {
    const t = kubeTarget({}, env({}));
    expect(t.files).toEqual([HOME_CONFIG]);
    expect([t.context, t.namespace, server(t)]).toEqual(["home", "home-ns", "https://home.example:6443"]);
  });

  it("$KUBECONFIG replaces ~/.kube/config", () => {
    const t = kubeTarget({}, env({ KUBECONFIG: TWO }));
    expect(t.files).toEqual([TWO]);
    expect([t.context, t.namespace, server(t)]).toEqual(["alpha", "team-a", "https://alpha.example:6443"]);
  });

  it("--kubeconfig replaces $KUBECONFIG and ~/.kube/config, and an empty one counts as not given", () => {
    const t = kubeTarget({ kubeconfig: OTHER }, env({ KUBECONFIG: TWO }));
    expect(t.files).toEqual([OTHER]);
    expect([t.context, t.namespace, server(t)]).toEqual(["gamma", "default", "https://gamma.example:6443"]);
    expect(kubeTarget({ kubeconfig: "" }, env({ KUBECONFIG: TWO })).files).toEqual([TWO]);
  });

  it("a missing --kubeconfig file is an error naming the flag, never a fallback", () => {
    expect(() => kubeTarget({ kubeconfig: join(dir, "absent.yaml") }, env({ KUBECONFIG: TWO }))).toThrow(/--kubeconfig: .*absent\.yaml does not exist/);
  });
});

describe("$KUBECONFIG as a list, merged as kubectl merges", () => {
  it("the first file's current-context wins, and the first file to name a context keeps it", () => {
    const t = kubeTarget({ context: "beta" }, env({ KUBECONFIG: [TWO, OTHER].join(delimiter) }));
    expect(t.files).toEqual([TWO, OTHER]);
    expect([t.context, t.namespace, server(t)]).toEqual(["beta", "team-b", "https://beta.example:6443"]);
    expect(kubeTarget({}, env({ KUBECONFIG: [TWO, OTHER].join(delimiter) })).context).toBe("alpha");
    // In the other order the other file's wins, both for the current context and for "beta".
    const swapped = kubeTarget({ context: "beta" }, env({ KUBECONFIG: [OTHER, TWO].join(delimiter) }));
    expect([swapped.namespace, server(swapped)]).toEqual(["shadowed", "https://shadowed.example:6443"]);
    expect(kubeTarget({}, env({ KUBECONFIG: [OTHER, TWO].join(delimiter) })).context).toBe("gamma");
  });

  it("every file's contexts, clusters and users are reachable; a file without current-context leaves it to the next", () => {
    const list = [NO_CURRENT, TWO, OTHER].join(delimiter);
    expect(kubeTarget({}, env({ KUBECONFIG: list })).context).toBe("alpha");
    const gamma = kubeTarget({ context: "gamma" }, env({ KUBECONFIG: list }));
    expect(gamma.kc.getCurrentUser()?.name).toBe("other");
    expect(server(kubeTarget({ context: "delta" }, env({ KUBECONFIG: list })))).toBe("https://delta.example:6443");
  });

  it("skips missing and empty entries; none left is a clear error, not ~/.kube/config", () => {
    const t = kubeTarget({}, env({ KUBECONFIG: ["", join(dir, "absent.yaml"), TWO, ""].join(delimiter) }));
    expect(t.files).toEqual([TWO]);
    expect(() => kubeTarget({}, env({ KUBECONFIG: join(dir, "absent.yaml") }))).toThrow(/no kubeconfig: none of \$KUBECONFIG's files/);
  });

  it("paths inside a file are taken relative to that file's directory", () => {
    const kc = loadKubeConfig(undefined, undefined, env({ KUBECONFIG: [NO_CURRENT, OTHER].join(delimiter) }));
    expect(kc.getCluster("gamma")?.caFile).toBe(join(dir, "ca.crt"));
  });
});

describe("--context and --namespace", () => {
  it("--context selects a context and its namespace; --namespace overrides it", () => {
    const e = env({ KUBECONFIG: TWO });
    expect(kubeTarget({ context: "beta" }, e).namespace).toBe("team-b");
    expect(kubeTarget({ context: "beta", namespace: "mine" }, e).namespace).toBe("mine");
    expect(kubeTarget({ namespace: "mine" }, e)).toMatchObject({ context: "alpha", namespace: "mine" });
  });

  it("a context without a namespace means default", () => {
    expect(kubeTarget({ kubeconfig: OTHER, context: "gamma" }, env({})).namespace).toBe("default");
  });

  it("an unknown context is an error naming the flag and the contexts there are", () => {
    expect(() => kubeTarget({ context: "nope" }, env({ KUBECONFIG: TWO }))).toThrow(KubeConfigError);
    expect(() => kubeTarget({ context: "nope" }, env({ KUBECONFIG: TWO }))).toThrow(/--context: no context "nope" .*\(contexts: alpha, beta\)/);
  });

  it("no current-context and no --context is an error, not the first context", () => {
    expect(() => kubeTarget({}, env({ KUBECONFIG: NO_CURRENT }))).toThrow(/no current-context in .*give --context/);
    expect(kubeTarget({ context: "delta" }, env({ KUBECONFIG: NO_CURRENT })).namespace).toBe("team-d");
  });

  it("a namespace that is no namespace name is refused, naming the flag", () => {
    for (const bad of ["", "Team", "a/b", "-x", "x".repeat(64)]) {
      expect(() => kubeTarget({ namespace: bad }, env({ KUBECONFIG: TWO })), bad).toThrow(/--namespace: .* is not a namespace name/);
    }
  });
});

describe("names defined in several files", () => {
  it("the first file to name a cluster or a user keeps it (server and token), as kubectl merges", () => {
    const first = kubeconfig("same-names-1.yaml", { current: "one", user: "shared", contexts: [{ name: "one", cluster: "shared" }] });
    const second = join(dir, "same-names-2.yaml");
    writeFileSync(
      second,
      stringify({
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "shared", cluster: { server: "https://second.example:6443" } }],
        users: [{ name: "shared", user: { token: "second-token" } }],
        contexts: [{ name: "two", context: { cluster: "shared", user: "shared", namespace: "from-second" } }],
      }),
    );
    for (const context of ["one", "two"]) {
      const t = kubeTarget({ context }, env({ KUBECONFIG: [first, second].join(delimiter) }));
      expect(server(t)).toBe("https://shared.example:6443");
      expect(t.kc.getCurrentUser()?.token).toBe(`token-of-same-names-1.yaml`);
    }
    expect(server(kubeTarget({ context: "two" }, env({ KUBECONFIG: [second, first].join(delimiter) })))).toBe("https://second.example:6443");
  });
});

describe("in a Pod", () => {
  it("without any file: the service account (in-cluster configuration), the server from KUBERNETES_SERVICE_HOST/PORT", () => {
    vi.stubEnv("KUBERNETES_SERVICE_HOST", "10.96.0.1");
    vi.stubEnv("KUBERNETES_SERVICE_PORT", "443");
    try {
      const t = kubeTarget({ namespace: "pods-ns" }, { home: join(dir, "nowhere"), inCluster: true });
      expect([server(t), t.context, t.namespace, t.files]).toEqual(["https://10.96.0.1:443", "inClusterContext", "pods-ns", []]);
      // A kubeconfig file still comes first, as for kubectl.
      expect(kubeTarget({}, env({ KUBECONFIG: TWO, inCluster: true })).context).toBe("alpha");
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe("without any kubeconfig", () => {
  it("outside a Pod: a clear error that says what was tried", () => {
    expect(() => loadKubeConfig(undefined, undefined, { home: join(dir, "nowhere"), inCluster: false })).toThrow(/\$KUBECONFIG is not set and .*nowhere\/\.kube\/config does not exist.*give --kubeconfig/);
  });
});
