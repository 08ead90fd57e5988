/**
 * A stand-in for an AI-backed webhook service (a support-ticket triage bot), for the demo and for
 * trying airollout without a model: it answers like an LLM would, a little differently each time
 * (confidence jitter, reworded summaries, fresh ids), and reports token usage and cost.
 *
 *   node examples/triage-service.ts --port 8081 --version v1 --model small
 *   node examples/triage-service.ts --port 8083 --version v2 --model large [--regress 0.2]
 *
 * --regress P makes that share of answers pick a wrong intent: a candidate that should fail.
 */
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "8081" },
    version: { type: "string", default: "v1" },
    model: { type: "string", default: "small" },
    regress: { type: "string", default: "0" },
    "latency-ms": { type: "string", default: "15" },
  },
});
const regress = Number(values.regress);
const latencyMs = Number(values["latency-ms"]);
const INTENTS = ["billing", "bug", "account", "feature-request", "other"] as const;

function classify(text: string): { intent: (typeof INTENTS)[number]; urgency: "low" | "high" } {
  const t = text.toLowerCase();
  const intent = /invoice|refund|charge|bill/.test(t) ? "billing" : /error|crash|broken|bug/.test(t) ? "bug" : /password|login|account/.test(t) ? "account" : /please add|would love|feature/.test(t) ? "feature-request" : "other";
  return { intent, urgency: /urgent|asap|down|cannot/.test(t) ? "high" : "low" };
}

const OPENERS = ["Customer reports", "The customer says", "User reports", "Ticket describes"];

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    let body: { ticket?: { text?: string } } = {};
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
    } catch {
      res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ error: "body is not JSON" }));
      return;
    }
    const text = body.ticket?.text ?? "";
    const { intent: right, urgency } = classify(text);
    const intent = Math.random() < regress ? INTENTS[(INTENTS.indexOf(right) + 1) % INTENTS.length]! : right;
    const opener = OPENERS[Math.floor(Math.random() * OPENERS.length)]!;
    const tokens = 180 + Math.floor(Math.random() * 40) + (values.model === "large" ? 60 : 0);
    const answer = {
      id: randomUUID(),
      created: new Date().toISOString(),
      intent,
      urgency,
      confidence: Number((0.9 + (Math.random() - 0.5) * 0.02).toFixed(4)),
      summary: `${opener} ${text.slice(0, 80).toLowerCase()}`,
      model: values.model,
      usage: { total_tokens: tokens, cost: Number((tokens * (values.model === "large" ? 0.000004 : 0.000002)).toFixed(6)) },
    };
    setTimeout(() => {
      res.writeHead(200, { "content-type": "application/json", "x-served-by": values.version! });
      res.end(JSON.stringify(answer));
    }, latencyMs * (0.5 + Math.random()));
  });
});
server.listen(Number(values.port), "127.0.0.1", () => {
  process.stdout.write(`triage-service ${values.version} (model ${values.model}) on http://127.0.0.1:${values.port}/\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
