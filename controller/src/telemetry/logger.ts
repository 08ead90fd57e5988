/** pino JSON logging. Every line about a rollout carries `namespace`, `name` and `rollout` (see forRollout). */
import { pino, type Logger } from "pino";

export type { Logger };

/** The process logger; LOG_LEVEL sets the level (default info). */
export function createLogger(component: string, level = process.env.LOG_LEVEL ?? "info"): Logger {
  return pino({
    level,
    base: { component, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

/** A child logger for one rollout. */
export function forRollout(log: Logger, namespace: string, name: string): Logger {
  return log.child({ namespace, name, rollout: `${namespace}/${name}` });
}
