import { Store, type SessionData } from 'express-session';
import type { Knex } from 'knex';
import type { Clock } from '../../warehouse/core/clock.ts';

type Callback<T = void> = (err?: unknown, value?: T) => void;

/** How often, at most, a write also sweeps expired sessions. */
const SWEEP_EVERY_MS = 10 * 60_000;

/**
 * Portal sessions in the warehouse (`hub_sessions`), so every hub process on one warehouse
 * knows them and a restart signs nobody out. A session expires when idle: each request moves
 * its expiry (`rolling` cookies; see buildSaveSessionFirst for when), and an expired row reads as no
 * session at all, whatever the cookie says, so the server decides, not the browser.
 */
export class KnexSessionStore extends Store {
  readonly #knex: Knex;
  readonly #clock: Clock;
  readonly #idleMs: number;
  #lastSweep = 0;

  constructor(knex: Knex, clock: Clock, idleMs: number) {
    super();
    this.#knex = knex;
    this.#clock = clock;
    this.#idleMs = idleMs;
  }

  override get(sid: string, callback: Callback<SessionData | null>): void {
    this.#run(callback, async () => {
      const row = await this.#knex('hub_sessions')
        .where({ sid })
        .first<{ data: string; expires_at: string } | undefined>('data', 'expires_at');
      if (row === undefined || row.expires_at <= this.#clock.now().toISOString()) return null;
      return JSON.parse(row.data) as SessionData;
    });
  }

  override set(sid: string, session: SessionData, callback?: Callback): void {
    this.#run(callback, async () => {
      const values = { data: JSON.stringify(session), expires_at: this.#expiry() };
      const updated = await this.#knex('hub_sessions').where({ sid }).update(values);
      if (updated === 0) {
        try {
          await this.#knex('hub_sessions').insert({ sid, ...values });
        } catch (err) {
          // Two requests of one new session saved at once: the other inserted it first.
          if (Number(await this.#knex('hub_sessions').where({ sid }).update(values)) === 0) throw err;
        }
      }
      await this.#sweep();
    });
  }

  /**
   * Moves an unchanged session's idle expiry. Deliberately not express-session's `touch`, which
   * it calls after the response head has gone out: saveSessionFirst calls this before the head,
   * so a failure can still be the answer.
   */
  async extendSession(sid: string): Promise<void> {
    await this.#knex('hub_sessions').where({ sid }).update({ expires_at: this.#expiry() });
  }

  override destroy(sid: string, callback?: Callback): void {
    this.#run(callback, async () => {
      await this.#knex('hub_sessions').where({ sid }).delete();
    });
  }

  #expiry(): string {
    return new Date(this.#clock.now().getTime() + this.#idleMs).toISOString();
  }

  async #sweep(): Promise<void> {
    const now = this.#clock.now();
    if (now.getTime() - this.#lastSweep < SWEEP_EVERY_MS) return;
    this.#lastSweep = now.getTime();
    await this.#knex('hub_sessions').where('expires_at', '<=', now.toISOString()).delete();
  }

  #run<T>(callback: Callback<T> | undefined, work: () => Promise<T>): void {
    work().then(
      (value) => callback?.(undefined, value),
      (err: unknown) => callback?.(err),
    );
  }
}
