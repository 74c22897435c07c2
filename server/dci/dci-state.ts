import type { AppContext } from '../context.ts';
import { loadDciMapping, type DciMapping } from './dci-mapping.ts';
import { loadDciSigningKey, type DciSigningKey } from './dci-signing-key.ts';

/** Per-process DCI state: the mapping, the signing key (loaded once) and the callbacks still being sent. */
export class DciState {
  readonly mapping: DciMapping;
  readonly #ctx: AppContext;
  #key: Promise<DciSigningKey> | null = null;
  readonly #pending = new Set<Promise<void>>();

  constructor(ctx: AppContext) {
    this.#ctx = ctx;
    this.mapping = loadDciMapping(ctx.config.dci.mappingFile);
  }

  fetchKey(): Promise<DciSigningKey> {
    this.#key ??= loadDciSigningKey(this.#ctx.config.dci.signingKeyFile).catch((err: unknown) => {
      this.#key = null;
      throw err;
    });
    return this.#key;
  }

  /** Runs work after the answer is sent (async callbacks); errors are logged, never thrown at the caller. */
  runLater(work: () => Promise<void>): void {
    const done: Promise<void> = work()
      .catch((err: unknown) => this.#ctx.logger.warn({ err }, 'DCI callback failed'))
      .finally(() => this.#pending.delete(done));
    this.#pending.add(done);
  }

  /** Waits for the callbacks under way, e.g. before the server stops. */
  async settle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending]);
  }
}
