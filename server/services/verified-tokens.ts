import type { KeyObject } from 'node:crypto';

/** What a verified token said, and the key object it verified with. */
export interface VerifiedToken {
  kid: string;
  key: KeyObject;
  /** Expiry, in seconds since the epoch, as the token's `exp` claim. */
  exp: number;
  payload: { sub?: string; iat_ms?: unknown };
}

/** Far more tokens than the clients of one hub hold at once (one per client per 15 minutes). */
const DEFAULT_MAX_TOKENS = 10_000;

/**
 * Tokens whose signature and claims verified, so that a client sending the same token again
 * pays a map lookup instead of an HMAC and a JSON parse. Only what the token itself proves is
 * kept — never the client's state, which is read on every request. An entry serves only while
 * the keyring still hands out the very key object it verified with (a changed or pruned key file
 * gives another object, or none) and until the token's expiry by the injected clock; otherwise
 * the token is verified again, and refused as it would have been without this cache.
 */
export class VerifiedTokens {
  readonly #tokens = new Map<string, VerifiedToken>();
  readonly #max: number;

  constructor(max = DEFAULT_MAX_TOKENS) {
    this.#max = max;
  }

  find(
    token: string,
    currentKey: (kid: string) => KeyObject | null,
    nowMs: number,
  ): VerifiedToken | undefined {
    const entry = this.#tokens.get(token);
    if (entry === undefined) return undefined;
    // As jose decides expiry: whole seconds, expired at exp itself.
    if (entry.exp <= Math.floor(nowMs / 1000) || currentKey(entry.kid) !== entry.key) {
      this.#tokens.delete(token);
      return undefined;
    }
    return entry;
  }

  save(token: string, entry: VerifiedToken): void {
    // The oldest entry goes first: a Map iterates in insertion order.
    if (this.#tokens.size >= this.#max) this.#tokens.delete(this.#tokens.keys().next().value!);
    this.#tokens.set(token, entry);
  }
}
