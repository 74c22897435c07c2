import knexFactory, { type Knex } from 'knex';
import { HubError } from './core/errors.ts';
import { describeConnectionError, redactUrl } from './db.ts';

export type ReplicaStatus = 'starting' | 'ok' | 'lagging' | 'down';

export interface ReplicaState {
  status: ReplicaStatus;
  /** How far behind the primary the replica was at the last check, in milliseconds; null when unknown. */
  lagMs: number | null;
  /** Why it is not used, for the log: never shown to callers. */
  reason: string | null;
}

export interface ReplicaOptions {
  url: string;
  maxLagMs: number;
  /** The primary's reads, for its WAL position. */
  primary: Knex;
  onChange?: (state: ReplicaState, displayUrl: string) => void;
}

/** The replica's own connection name, so `pg_stat_activity` on the replica shows the hub's reads. */
export const REPLICA_APPLICATION_NAME = 'registry-hub-reads';
const CONNECT_TIMEOUT_MS = 2_000;
/** Primary WAL positions kept to date the replica's replay position by. */
const MAX_SAMPLES = 600;

interface Sample {
  at: number;
  lsn: bigint;
}

/** '16/B374D848' → 0x16B374D848. */
function parseLsn(text: string): bigint {
  const [high, low] = text.split('/');
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

/**
 * A PostgreSQL streaming replica for registry reads (person lookups, saved-query runs, DCI
 * searches). Every probe interval it reads the primary's WAL position, then the replica's replay
 * position; the replica's lag is the time since the newest primary position it has replayed (0
 * when it has replayed everything the primary had written at the probe). A replica within
 * `maxLagMs` serves; one further behind, paused, not in recovery or not answering does not, and
 * reads go to the primary until a probe finds it caught up again. Measuring by positions rather
 * than by `pg_last_xact_replay_timestamp()` keeps an idle primary from looking like lag, and a
 * replica cut off from its primary from looking current. Time here is the machine's, not the
 * hub's injectable clock: replication lag is physical.
 */
export class ReadReplica {
  readonly knex: Knex;
  readonly displayUrl: string;
  readonly #options: ReplicaOptions;
  readonly #probeMs: number;
  #samples: Sample[] = [];
  #state: ReplicaState = { status: 'starting', lagMs: null, reason: null };
  #timer: NodeJS.Timeout | null = null;
  #probing: Promise<void> | null = null;
  #closed = false;

  constructor(options: ReplicaOptions) {
    if (!/^postgres(ql)?:\/\//.test(options.url)) {
      throw new HubError('invalid_database_url', 400, 'HUB_DB_READ must be a postgres:// URL');
    }
    this.#options = options;
    this.displayUrl = redactUrl(options.url);
    // Half the allowed lag, within 0.1 to 1 s: a replica past the limit is noticed before it is twice past it.
    this.#probeMs = Math.max(100, Math.min(1_000, Math.floor(options.maxLagMs / 2)));
    this.knex = knexFactory({
      client: 'pg',
      connection: {
        connectionString: options.url,
        application_name: REPLICA_APPLICATION_NAME,
        connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      },
      pool: { min: 0, max: 10 },
      acquireConnectionTimeout: CONNECT_TIMEOUT_MS,
      log: {
        warn: () => undefined,
        error: () => undefined,
        deprecate: () => undefined,
        debug: () => undefined,
      },
    });
    // A request that finds the replica gone takes it out of use at once, not at the next probe.
    this.knex.on('query-error', (err: unknown) => {
      const reason = describeConnectionError(err);
      if (reason !== null) this.#set({ status: 'down', lagMs: null, reason });
    });
  }

  /** The replica's connections when it may serve a read now, else null (read from the primary). */
  pick(): Knex | null {
    this.#start();
    return this.#state.status === 'ok' ? this.knex : null;
  }

  /** The state as of the last probe; the first call waits for one. */
  async describe(): Promise<ReplicaState> {
    this.#start();
    if (this.#state.status === 'starting') await this.#probing;
    return { ...this.#state };
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    await this.#probing?.catch(() => undefined);
    await this.knex.destroy();
  }

  #start(): void {
    if (this.#timer !== null || this.#closed) return;
    this.#timer = setInterval(() => this.#probeOnce(), this.#probeMs);
    this.#timer.unref();
    this.#probeOnce();
  }

  #probeOnce(): void {
    if (this.#probing !== null) return;
    this.#probing = this.#probe().finally(() => {
      this.#probing = null;
    });
  }

  async #probe(): Promise<void> {
    const at = Date.now();
    let primaryLsn: bigint;
    try {
      const { rows } = await this.#options.primary.raw<{ rows: Array<{ lsn: string }> }>(
        'select pg_current_wal_lsn()::text as lsn',
      );
      primaryLsn = parseLsn(rows[0]!.lsn);
    } catch {
      // Without the primary's position the lag is unknown; the primary's own trouble is reported elsewhere.
      this.#set({ status: 'down', lagMs: null, reason: 'the primary did not give its WAL position' });
      return;
    }
    this.#samples.push({ at, lsn: primaryLsn });
    if (this.#samples.length > MAX_SAMPLES) this.#samples.shift();
    let replay: { standby: boolean; lsn: string | null };
    try {
      const { rows } = await this.knex.raw<{ rows: Array<{ standby: boolean; lsn: string | null }> }>(
        'select pg_is_in_recovery() as standby, pg_last_wal_replay_lsn()::text as lsn',
      );
      replay = rows[0]!;
    } catch (err) {
      this.#set({
        status: 'down',
        lagMs: null,
        reason: describeConnectionError(err) ?? (err as Error).message,
      });
      return;
    }
    if (!replay.standby || replay.lsn === null) {
      this.#set({ status: 'down', lagMs: null, reason: 'it is not a streaming replica (not in recovery)' });
      return;
    }
    const replayed = parseLsn(replay.lsn);
    // The newest primary position the replica has replayed: everything committed before that moment is there.
    let caughtUp: Sample | undefined;
    for (const sample of this.#samples) if (sample.lsn <= replayed) caughtUp = sample;
    if (caughtUp !== undefined) this.#samples = this.#samples.filter((s) => s.at >= caughtUp.at);
    const lagMs = caughtUp === undefined ? at - this.#samples[0]!.at : at - caughtUp.at;
    const within = caughtUp !== undefined && lagMs <= this.#options.maxLagMs;
    this.#set({
      status: within ? 'ok' : 'lagging',
      lagMs,
      reason: within ? null : `replay is ${lagMs} ms behind the primary (limit ${this.#options.maxLagMs} ms)`,
    });
  }

  #set(state: ReplicaState): void {
    if (this.#closed) return;
    const changed = state.status !== this.#state.status;
    this.#state = state;
    if (changed) this.#options.onChange?.(state, this.displayUrl);
  }
}
