/** The SQLite stores (idempotency and quarantine) against real files in a temporary directory. */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteIdempotencyStore } from "./idempotency.ts";
import { QuarantineStore, REDACTED } from "./quarantine.ts";

const dir = mkdtempSync(join(tmpdir(), "airollout-gw-stores-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("sqlite idempotency store", () => {
  it("claims once, answers repeats with the stored response, refuses another payload", async () => {
    let now = 1000;
    const s = new SqliteIdempotencyStore(join(dir, "a", "idem.db"), () => now);
    const first = await s.claim("ns/bot/k1", "fp1", 5000);
    expect(first.state).toBe("claimed");
    expect(await s.claim("ns/bot/k1", "fp1", 5000)).toEqual({ state: "pending" });
    await s.complete("ns/bot/k1", (first as { token: string }).token, { status: 201, headers: { "content-type": "application/json" }, body: Buffer.from('{"ok":true}') }, 60_000);
    const again = await s.claim("ns/bot/k1", "fp1", 5000);
    expect(again.state).toBe("done");
    expect(again.state === "done" && again.response.body.toString()).toBe('{"ok":true}');
    expect(again.state === "done" && again.response.status).toBe(201);
    expect(await s.claim("ns/bot/k1", "fp-other", 5000)).toEqual({ state: "mismatch" });
    now += 60_001;
    expect((await s.claim("ns/bot/k1", "fp1", 5000)).state).toBe("claimed");
    await s.close();
  });

  it("a released claim can be claimed again; an expired pending claim too", async () => {
    let now = 0;
    const s = new SqliteIdempotencyStore(join(dir, "b.db"), () => now);
    const c = await s.claim("k", "fp", 1000);
    await s.release("k", (c as { token: string }).token);
    const c2 = await s.claim("k", "fp", 1000);
    expect(c2.state).toBe("claimed");
    now = 1001;
    const c3 = await s.claim("k", "fp", 1000);
    expect(c3.state).toBe("claimed");
    // The expired claim's owner can no longer complete it.
    await s.complete("k", (c2 as { token: string }).token, { status: 200, headers: {}, body: Buffer.alloc(0) }, 1000);
    expect(await s.claim("k", "fp", 1000)).toEqual({ state: "pending" });
    await s.close();
  });

  it("survives a restart (the file is the state)", async () => {
    const file = join(dir, "c.db");
    const s1 = new SqliteIdempotencyStore(file);
    const c = await s1.claim("k", "fp", 10_000);
    await s1.complete("k", (c as { token: string }).token, { status: 200, headers: {}, body: Buffer.from("x") }, 60_000);
    await s1.close();
    const s2 = new SqliteIdempotencyStore(file);
    expect((await s2.claim("k", "fp", 10_000)).state).toBe("done");
    await s2.close();
  });
});

describe("quarantine store", () => {
  it("keeps a masked view (headers and body) and, in a 0600 replay file, the exact bytes; lists newest first; records replays", () => {
    const q = new QuarantineStore(join(dir, "q.db"));
    const body = Buffer.from('{"email":"bob@example.com","phone":"555-123-4567","delivery":"550e8400-e29b-41d4-a716-446655440000"}');
    const headers = { "content-type": "application/json", authorization: "Bearer s3cret", "x-user": "bob@example.com", connection: "keep-alive", "x-request-id": "req-5551234567", "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958", expect: "100-continue" };
    const id1 = q.add({ namespace: "ns", name: "bot", reason: "schema", detail: "$.email: bob@example.com is not allowed", method: "POST", path: "/x", headers, body, requestId: "r1" });
    const id2 = q.add({ namespace: "ns", name: "other", reason: "too_large", detail: "big", method: "POST", path: "/", headers: {}, body: Buffer.from("head"), declaredSize: 10_000, receivedBytes: 4, requestId: "r2" });
    const rows = q.list();
    expect(rows.map((r) => r.id)).toEqual([id2, id1]);
    const row = q.get(id1)!;
    expect(JSON.parse(row.body.toString())).toEqual({ email: "[EMAIL]", phone: "[PHONE]", delivery: "550e8400-e29b-41d4-a716-446655440000" });
    expect(row.headers.authorization).toBe(REDACTED);
    expect(row.headers["x-user"]).toBe("[EMAIL]");
    expect(row.headers["x-request-id"]).toBe("req-5551234567");
    expect(row.headers["x-github-delivery"]).toBe("72d3162e-cc78-11e3-81ab-4c9367dc0958");
    expect(row.headers.connection).toBeUndefined();
    expect(row.detail).toBe("$.email: [EMAIL] is not allowed");
    expect(row).toMatchObject({ truncated: false, viewMasked: true, bodySize: body.length, receivedBytes: body.length, declaredSize: undefined });

    const exact = q.replayCopy(id1)!;
    expect(exact.body.equals(body)).toBe(true);
    expect(exact.headers).toEqual({ "content-type": "application/json", "x-user": "bob@example.com", "x-request-id": "req-5551234567", "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958" });
    for (const f of [q.replayFile, `${q.replayFile}-wal`]) expect(statSync(f).mode & 0o777, f).toBe(0o600);

    expect(q.get(id2)).toMatchObject({ truncated: true, declaredSize: 10_000, receivedBytes: 4, bodySize: 10_000 });
    expect(q.list({ namespace: "ns", name: "bot" }).map((r) => r.id)).toEqual([id1]);
    q.markReplayed(id1, 202);
    expect(q.get(id1)!.replayStatus).toBe(202);
    q.close();
  });

  it("reads rows stored before the replay file existed: their body and headers are the replay copy", () => {
    const file = join(dir, "old.db");
    const db = new DatabaseSync(file);
    db.exec(`CREATE TABLE quarantine (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, headers TEXT NOT NULL, content_type TEXT NOT NULL, body BLOB NOT NULL, body_size INTEGER NOT NULL, truncated INTEGER NOT NULL, request_id TEXT NOT NULL, replayed_at TEXT, replay_status INTEGER)`);
    db.prepare("INSERT INTO quarantine (time, namespace, name, reason, detail, method, path, headers, content_type, body, body_size, truncated, request_id) VALUES ('t', 'ns', 'bot', 'bad_json', 'd', 'POST', '/', ?, 'application/json', ?, 2, 0, 'r')").run(JSON.stringify({ "content-type": "application/json", authorization: REDACTED }), Buffer.from("{x"));
    db.close();
    const q = new QuarantineStore(file);
    const [row] = q.list();
    expect(row).toMatchObject({ viewMasked: false, bodySize: 2, receivedBytes: 2, declaredSize: undefined });
    expect(q.replayCopy(row!.id)).toEqual({ headers: { "content-type": "application/json" }, body: Buffer.from("{x") });
    q.close();
  });

  it("keeps at most maxRows rows, in both files", () => {
    const q = new QuarantineStore(join(dir, "q2.db"), { maxRows: 50 });
    for (let i = 0; i < 200; i++) q.add({ namespace: "ns", name: "bot", reason: "bad_json", detail: "x", method: "POST", path: "/", headers: {}, body: Buffer.from("{"), requestId: String(i) });
    expect(q.count()).toBeLessThanOrEqual(50);
    const replayRows = new DatabaseSync(q.replayFile).prepare("SELECT COUNT(*) AS n FROM replay").get() as { n: number };
    expect(replayRows.n).toBeLessThanOrEqual(50);
    q.close();
  });
});
