/**
 * A circuit breaker per backend: closed -> (N consecutive failures) -> open -> (openDuration)
 * -> half-open, which lets exactly one probe through: its success closes the circuit, its
 * failure opens it for another openDuration. Time is passed in, so the machine is pure.
 */

/** Circuit states; the numbers are the values of the airollout_circuit_state gauge. */
export const CIRCUIT_STATE_VALUE = { closed: 0, "half-open": 1, open: 2 } as const;
export type CircuitState = keyof typeof CIRCUIT_STATE_VALUE;

export interface CircuitOptions {
  /** Consecutive failures that open the circuit. */
  consecutiveFailures: number;
  /** How long an open circuit rejects before a half-open probe. */
  openDurationMs: number;
  /** Called on every state change. */
  onChange?: (state: CircuitState) => void;
}

/** The verdict of allow(): whether to send, and whether this request is the half-open probe. */
export interface CircuitPermit {
  allowed: boolean;
  probe: boolean;
  /** Milliseconds until a probe may be tried (when not allowed). */
  retryInMs: number;
}

export class CircuitBreaker {
  readonly consecutiveFailures: number;
  readonly openDurationMs: number;
  #onChange: ((state: CircuitState) => void) | undefined;
  #state: CircuitState = "closed";
  #failures = 0;
  #openedAt = 0;
  #probeInFlight = false;

  constructor(o: CircuitOptions) {
    if (!(o.consecutiveFailures >= 1)) throw new Error(`consecutiveFailures must be at least 1, got ${o.consecutiveFailures}`);
    this.consecutiveFailures = o.consecutiveFailures;
    this.openDurationMs = Math.max(0, o.openDurationMs);
    this.#onChange = o.onChange;
  }

  /** The state at nowMs: an open circuit whose time is up reads as half-open. */
  state(nowMs: number): CircuitState {
    if (this.#state === "open" && nowMs - this.#openedAt >= this.openDurationMs) this.#set("half-open");
    return this.#state;
  }

  /** Consecutive failures counted so far in the closed state. */
  get failures(): number {
    return this.#failures;
  }

  /** Asks to send one request; a half-open circuit admits one probe at a time. */
  allow(nowMs: number): CircuitPermit {
    const s = this.state(nowMs);
    if (s === "closed") return { allowed: true, probe: false, retryInMs: 0 };
    if (s === "half-open" && !this.#probeInFlight) {
      this.#probeInFlight = true;
      return { allowed: true, probe: true, retryInMs: 0 };
    }
    const left = s === "open" ? this.openDurationMs - (nowMs - this.#openedAt) : this.openDurationMs;
    return { allowed: false, probe: false, retryInMs: Math.max(0, left) };
  }

  /** Reports a successful request (a probe's success closes the circuit). */
  onSuccess(probe = false): void {
    this.#failures = 0;
    if (probe) this.#probeInFlight = false;
    if (this.#state !== "closed" && (probe || this.#state === "half-open")) this.#set("closed");
  }

  /** Reports a failed request: a network error, a timeout or a 5xx. */
  onFailure(nowMs: number, probe = false): void {
    if (probe) this.#probeInFlight = false;
    if (this.#state === "half-open" && probe) {
      this.#open(nowMs);
      return;
    }
    if (this.#state !== "closed") return;
    this.#failures++;
    if (this.#failures >= this.consecutiveFailures) this.#open(nowMs);
  }

  /** Releases a probe permit that was never used (the request was not sent after all). */
  release(probe: boolean): void {
    if (probe) this.#probeInFlight = false;
  }

  #open(nowMs: number): void {
    this.#openedAt = nowMs;
    this.#failures = 0;
    this.#set("open");
  }

  #set(s: CircuitState): void {
    if (this.#state === s) return;
    this.#state = s;
    this.#onChange?.(s);
  }
}
