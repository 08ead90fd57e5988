import { describe, expect, it } from "vitest";
import { checkAddress, checkEndpoint, egressProblems, kubernetesNamespace, parseCidr, parseEgressPolicy, parseIp } from "./egress.ts";

const open = parseEgressPolicy();
const inCluster = parseEgressPolicy({ ownNamespace: "airollout-system" });
const strict = parseEgressPolicy({ defaultAction: "deny", denyLoopback: true, ownNamespace: "airollout-system" });

describe("checkEndpoint: always-denied addresses, in every written form", () => {
  it.each([
    ["http://169.254.169.254/latest/meta-data/", "always-denied 169.254.0.0/16"],
    ["http://169.254.170.2/v2/credentials", "always-denied 169.254.0.0/16"],
    ["http://2852039166/", "always-denied 169.254.0.0/16"],
    ["http://0xA9FEA9FE/", "always-denied 169.254.0.0/16"],
    ["http://0251.0376.0251.0376/", "always-denied 169.254.0.0/16"],
    ["http://169.254.43518/", "always-denied 169.254.0.0/16"],
    ["http://169.254.169.254./", "always-denied 169.254.0.0/16"],
    ["http://169.254.169.254%2e/", "always-denied 169.254.0.0/16"],
    ["http://%31%36%39.254.169.254/", "always-denied 169.254.0.0/16"],
    ["http://proxy.example@169.254.169.254/", "always-denied 169.254.0.0/16"],
    ["http://[::ffff:0:0]/", "always-denied 0.0.0.0/8"],
    ["http://[::ffff:169.254.169.254]/", "always-denied 169.254.0.0/16"],
    ["http://[::ffff:a9fe:a9fe]/", "always-denied 169.254.0.0/16"],
    ["http://[64:ff9b::169.254.169.254]/", "always-denied 169.254.0.0/16"],
    ["http://[::169.254.169.254]/", "always-denied 169.254.0.0/16"],
    ["http://[fd00:ec2::254]/latest/meta-data/", "always-denied fd00:ec2::254/128"],
    ["http://[fe80::1]:8080/", "always-denied fe80::/10"],
    ["http://100.100.100.200/", "always-denied 100.100.100.200/32"],
    ["http://0.0.0.0:8080/", "always-denied 0.0.0.0/8"],
    ["http://0/", "always-denied 0.0.0.0/8"],
    ["http://[::]/", "always-denied ::/128"],
    ["http://224.0.0.1/", "always-denied 224.0.0.0/4"],
    ["http://metadata.google.internal/computeMetadata/v1/", "metadata-name"],
    ["http://METADATA.Google.Internal./", "metadata-name"],
    ["redis://2852039166:6379/0", "always-denied 169.254.0.0/16"],
    ["rediss://:secret@[::ffff:169.254.169.254]:6379", "always-denied 169.254.0.0/16"],
  ])("%s is denied (%s) under the most open policy", (url, rule) => {
    const d = checkEndpoint(url, "team-a", open, "spec.candidate.endpoint");
    expect(d).toMatchObject({ allowed: false, rule });
    if (!d.allowed) {
      expect(d.message).toMatch(/^spec\.candidate\.endpoint: egress to \S+ is denied: /);
      expect(d.message).toContain("a cluster admin can allow it with");
    }
  });

  it("names the host but never the URL's password or path", () => {
    const d = checkEndpoint("redis://:hunter2@169.254.169.254:6379/0", "team-a", open, "spec.traffic.idempotency.redisUrl");
    expect(d.allowed).toBe(false);
    if (!d.allowed) {
      expect(d.message).not.toContain("hunter2");
      expect(d.message).toContain("169.254.169.254");
    }
  });

  it("lets an admin allow a denied block explicitly with allowCidrs (IPv4-mapped IPv6 included)", () => {
    const p = parseEgressPolicy({ allowCidrs: ["169.254.20.10/32"] });
    expect(checkEndpoint("http://169.254.20.10:53/", "team-a", p)).toEqual({ allowed: true, rule: "allowCidrs 169.254.20.10/32" });
    expect(checkEndpoint("http://[::ffff:169.254.20.10]/", "team-a", p)).toEqual({ allowed: true, rule: "allowCidrs 169.254.20.10/32" });
    expect(checkEndpoint("http://169.254.169.254/", "team-a", p).allowed).toBe(false);
  });
});

describe("checkEndpoint: loopback", () => {
  it.each(["http://127.0.0.1:8080/", "http://127.9.9.9/", "http://[::1]:9/", "http://localhost:3000/", "http://api.localhost/", "http://2130706433/", "http://[::ffff:127.0.0.1]/"])("%s is allowed by default and denied with denyLoopback", (url) => {
    expect(checkEndpoint(url, "team-a", open)).toEqual({ allowed: true, rule: "loopback" });
    expect(checkEndpoint(url, "team-a", parseEgressPolicy({ denyLoopback: true }))).toMatchObject({ allowed: false, rule: "denyLoopback" });
  });
});

describe("checkEndpoint: namespaces", () => {
  it.each([
    ["http://triage.team-a.svc.cluster.local:8080/", "outside a cluster", true],
    ["http://triage.team-b.svc.cluster.local:8080/", "outside a cluster", false],
    ["http://triage.team-b.svc.cluster.local.:8080/", "outside a cluster", false],
    ["http://triage.team-b.svc:8080/", "outside a cluster", false],
    ["http://triage.team-b.svc.corp.example:8080/", "outside a cluster", false],
    ["http://10-0-0-7.team-b.pod.cluster.local/", "outside a cluster", false],
    ["http://web-0.web.team-b.svc.cluster.local/", "outside a cluster", false],
    ["https://kubernetes.default.svc/api", "outside a cluster", false],
    // Search-path forms only inside a cluster (ownNamespace known).
    ["http://triage.team-b:8080/", "outside a cluster", true],
    ["http://triage.team-b:8080/", "in a cluster", false],
    ["http://triage.team-a:8080/", "in a cluster", true],
    ["http://redis-0.redis.team-b:6379/", "in a cluster", false],
    ["https://kubernetes.default/", "in a cluster", false],
    ["http://prometheus:9090/", "in a cluster", false],
    ["http://prometheus:9090/", "outside a cluster", true],
    // An absolute name skips the search path.
    ["https://api.vendor.example./v1", "in a cluster", true],
    ["https://api.vendor.example/v1", "in a cluster", false],
    ["https://models.api.vendor.example/v1", "in a cluster", true],
  ] as const)("%s from namespace team-a, %s: allowed=%s", (url, where, allowed) => {
    expect(checkEndpoint(url, "team-a", where === "in a cluster" ? inCluster : open).allowed).toBe(allowed);
  });

  it("says which namespace a refused name is in, and how to allow it", () => {
    const d = checkEndpoint("http://triage.team-b.svc.cluster.local:8080/", "team-a", open, "spec.stable.endpoint");
    expect(d).toMatchObject({ allowed: false, rule: "cross-namespace", host: "triage.team-b.svc.cluster.local" });
    if (!d.allowed) expect(d.message).toBe('spec.stable.endpoint: egress to triage.team-b.svc.cluster.local is denied: it names a service in namespace "team-b", not the rollout\'s namespace "team-a"; a cluster admin can allow it with --egress-allow-namespaces (Helm egress.allowNamespaces) or --egress-allow-hosts (Helm egress.allowHosts)');
  });

  it("allows a namespace the admin listed, or every namespace with *", () => {
    const p = parseEgressPolicy({ allowNamespaces: ["monitoring,shared"], ownNamespace: "airollout-system" });
    expect(checkEndpoint("http://prometheus.monitoring:9090", "team-a", p)).toEqual({ allowed: true, rule: "allowNamespaces monitoring" });
    expect(checkEndpoint("http://cache.shared.svc.cluster.local", "team-a", p).allowed).toBe(true);
    expect(checkEndpoint("http://triage.team-b.svc", "team-a", p).allowed).toBe(false);
    expect(checkEndpoint("http://triage.team-b.svc", "team-a", parseEgressPolicy({ allowNamespaces: ["*"] })).allowed).toBe(true);
  });

  it("reads the Kubernetes namespace of a name the way the resolver would", () => {
    expect(kubernetesNamespace("a.b.svc.cluster.local", undefined)).toBe("b");
    expect(kubernetesNamespace("a.b.c.svc.cluster.local", undefined)).toBe("c");
    expect(kubernetesNamespace("svc.example.com", undefined)).toBeUndefined();
    expect(kubernetesNamespace("a", "own")).toBe("own");
    expect(kubernetesNamespace("a.b", "own")).toBe("b");
    expect(kubernetesNamespace("a.b.c", "own")).toBe("c");
    expect(kubernetesNamespace("a.b.c.d", "own")).toBeUndefined();
    expect(kubernetesNamespace("a.b", "own", true)).toBeUndefined();
  });
});

describe("checkEndpoint: hosts, CIDRs and the default action", () => {
  it("allows external names and other addresses by default, denies them with defaultAction deny", () => {
    expect(checkEndpoint("https://models.vendor.example/v1", "team-a", open)).toEqual({ allowed: true, rule: "default allow" });
    expect(checkEndpoint("http://10.96.0.1/", "team-a", open)).toEqual({ allowed: true, rule: "default allow" });
    expect(checkEndpoint("https://api.models.vendor.example/v1", "team-a", strict)).toMatchObject({ allowed: false, rule: "default deny" });
    expect(checkEndpoint("http://10.96.0.1/", "team-a", strict)).toMatchObject({ allowed: false, rule: "default deny" });
    // The rollout's own namespace stays reachable under deny.
    expect(checkEndpoint("http://triage.team-a.svc.cluster.local/", "team-a", strict)).toEqual({ allowed: true, rule: "own namespace" });
  });

  it("matches allowHosts exactly or as *.suffix, before every other rule but the dial-time check", () => {
    const p = parseEgressPolicy({ defaultAction: "deny", allowHosts: ["*.vendor.example", "prometheus.monitoring"], ownNamespace: "x" });
    expect(checkEndpoint("https://api.vendor.example/", "team-a", p)).toEqual({ allowed: true, rule: "allowHosts *.vendor.example" });
    expect(checkEndpoint("https://vendor.example/", "team-a", p).allowed).toBe(false);
    expect(checkEndpoint("https://evilvendor.example/", "team-a", p).allowed).toBe(false);
    expect(checkEndpoint("http://prometheus.monitoring:9090/", "team-a", p)).toEqual({ allowed: true, rule: "allowHosts prometheus.monitoring" });
  });

  it("allows IP literals in allowCidrs under deny, v4 and v6", () => {
    const p = parseEgressPolicy({ defaultAction: "deny", allowCidrs: ["10.20.0.0/16", "2001:db8::/32"] });
    expect(checkEndpoint("http://10.20.3.4:8080/", "team-a", p)).toEqual({ allowed: true, rule: "allowCidrs 10.20.0.0/16" });
    expect(checkEndpoint("http://10.21.3.4:8080/", "team-a", p).allowed).toBe(false);
    expect(checkEndpoint("http://[2001:db8:1::5]/", "team-a", p).allowed).toBe(true);
    expect(checkEndpoint("http://[2001:db9::5]/", "team-a", p).allowed).toBe(false);
  });

  it("refuses a URL without a host that parses", () => {
    expect(checkEndpoint("http://", "team-a", open).allowed).toBe(false);
    expect(checkEndpoint("not a url", "team-a", open)).toMatchObject({ allowed: false, rule: "unparsable" });
  });
});

describe("checkAddress (dial time)", () => {
  it("refuses resolved metadata, link-local and mapped addresses, allows a resolved private address", () => {
    for (const a of ["169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "fe80::abcd"]) expect(checkAddress(a, strict).allowed, a).toBe(false);
    expect(checkAddress("10.96.12.4", strict)).toEqual({ allowed: true, rule: "default allow" });
    expect(checkAddress("127.0.0.1", strict)).toMatchObject({ allowed: false, rule: "denyLoopback" });
    expect(checkAddress("127.0.0.1", open)).toEqual({ allowed: true, rule: "loopback" });
  });
});

describe("parseEgressPolicy", () => {
  it("reads comma-separated flags and names the flag of a bad entry", () => {
    const p = parseEgressPolicy({ allowHosts: ["a.example, *.b.example"], allowCidrs: ["10.0.0.0/8", "fd00::/8"], allowNamespaces: ["x"] });
    expect(p.allowHosts).toEqual(["a.example", "*.b.example"]);
    expect(p.allowCidrs.map((c) => c.text)).toEqual(["10.0.0.0/8", "fd00::/8"]);
    expect(() => parseEgressPolicy({ allowCidrs: ["10.0.0.0/33"] })).toThrow(/--egress-allow-cidrs: "10.0.0.0\/33": the prefix length must be 0 to 32/);
    expect(() => parseEgressPolicy({ allowCidrs: ["example.com"] })).toThrow(/--egress-allow-cidrs: "example.com" is not an IP address/);
    expect(() => parseEgressPolicy({ allowHosts: ["http://x"] })).toThrow(/--egress-allow-hosts/);
    expect(() => parseEgressPolicy({ allowNamespaces: ["Team_A"] })).toThrow(/--egress-allow-namespaces/);
    expect(() => parseEgressPolicy({ defaultAction: "maybe" })).toThrow(/--egress-default: "maybe" must be allow or deny/);
    expect(() => parseEgressPolicy({ allowHosts: [Array.from({ length: 1001 }, (_, i) => `h${i}.example`).join(",")] })).toThrow(/at most 1000/);
  });

  it("parses IP addresses strictly (no legacy forms in the flags)", () => {
    expect(parseIp("169.254.169.254")).toEqual([169, 254, 169, 254]);
    expect(parseIp("::ffff:1.2.3.4")).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 1, 2, 3, 4]);
    expect(parseIp("1:2:3:4:5:6:7:8")).toHaveLength(16);
    for (const bad of ["2852039166", "0xA9FEA9FE", "01.2.3.4", "1.2.3", "1::2::3", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", "::g", ""]) expect(parseIp(bad), bad).toBeUndefined();
    expect(parseCidr("::/0").prefix).toBe(0);
  });
});

describe("egressProblems", () => {
  it("checks every field airollout dials and names each refused one", () => {
    const spec = {
      stable: { endpoint: "http://127.0.0.1:8080" },
      candidate: { endpoint: "http://169.254.169.254/" },
      shadow: { noiseBaseline: { endpoint: "http://stable2.team-b.svc:8080" } },
      analysis: { prometheus: { address: "http://[fd00:ec2::254]:9090" } },
      traffic: { idempotency: { redisUrl: "redis://0xA9FEA9FE:6379" } },
      environments: { pulumi: { backend: "https://169.254.169.254/state" } },
    };
    const problems = egressProblems(spec, "team-a", open);
    expect(problems.map((p) => p.split(":")[0])).toEqual(["spec.candidate.endpoint", "spec.shadow.noiseBaseline.endpoint", "spec.analysis.prometheus.address", "spec.traffic.idempotency.redisUrl", "spec.environments.pulumi.backend"]);
    expect(egressProblems({ candidate: { endpoint: "http://127.0.0.1:1" }, environments: { pulumi: { backend: "file:///var/lib/state" } } }, "team-a", open)).toEqual([]);
  });
});
