import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { type Clock, isoNow } from './core/clock.ts';
import { conflict } from './core/errors.ts';
import { hasProcessEnded, ownProcessIdentity } from './process-identity.ts';

export interface HeldLock {
  name: string;
  owner: string;
  release(): Promise<void>;
}

export interface LockOptions {
  clock: Clock;
  /** How long the lock lives without a heartbeat; a crashed holder frees it after this. */
  leaseMs?: number;
}

const DEFAULT_LEASE_MS = 120_000;

/** A holder recorded by a process on this machine that has since ended; unknown holders never count as ended. */
const holderHasEnded = (holder: string | null | undefined): boolean =>
  holder != null && hasProcessEnded(holder);

/**
 * A lease in a table of the warehouse, so two hub processes on one warehouse exclude each
 * other, not only two runs in one process. The holder renews the lease at a third of its
 * length; a holder that died loses it when the lease expires, or at once to a process on the
 * same machine that sees it has ended (a run stopped by a signal, a crash, the kernel's
 * out-of-memory killer), so the connector can run again without waiting out the lease.
 */
export async function acquireLock(knex: Knex, name: string, options: LockOptions): Promise<HeldLock> {
  const leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
  const owner = randomUUID();
  const holder = ownProcessIdentity();
  const expiry = () => new Date(options.clock.now().getTime() + leaseMs).toISOString();
  const now = isoNow(options.clock);
  const taking = () => ({ owner, holder, acquired_at: now, expires_at: expiry() });
  const taken = await knex('hub_locks').where('name', name).andWhere('expires_at', '<', now).update(taking());
  if (taken === 0) {
    try {
      await knex('hub_locks').insert({ name, ...taking() });
    } catch {
      const current = await knex('hub_locks')
        .where({ name })
        .first<{ owner: string; holder: string | null; acquired_at: string } | undefined>(
          'owner',
          'holder',
          'acquired_at',
        );
      // Taken from that owner alone: of two processes that see it ended, one takes it.
      const takenOver =
        current !== undefined &&
        holderHasEnded(current.holder) &&
        (await knex('hub_locks').where({ name, owner: current.owner }).update(taking())) === 1;
      if (!takenOver)
        throw conflict(
          'connector_busy',
          `${name} is already running (since ${current?.acquired_at ?? 'just now'})`,
        );
    }
  }
  const heartbeat = setInterval(
    () => {
      knex('hub_locks')
        .where({ name, owner })
        .update({ expires_at: expiry() })
        .catch(() => undefined);
    },
    Math.max(1000, Math.floor(leaseMs / 3)),
  );
  heartbeat.unref();
  return {
    name,
    owner,
    async release() {
      clearInterval(heartbeat);
      await knex('hub_locks').where({ name, owner }).delete();
    },
  };
}

/**
 * When the lock's live holder took it, or null when no one holds it: a lease not yet expired
 * whose holder has not ended, as acquireLock would judge it.
 */
export async function findLockTakenAt(knex: Knex, name: string, clock: Clock): Promise<string | null> {
  const current = await knex('hub_locks')
    .where('name', name)
    .andWhere('expires_at', '>=', isoNow(clock))
    .first<{ holder: string | null; acquired_at: string } | undefined>('holder', 'acquired_at');
  if (current === undefined || holderHasEnded(current.holder)) return null;
  return current.acquired_at;
}
