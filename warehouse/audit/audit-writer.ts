import type { Knex } from 'knex';
import type { Clock } from '../core/clock.ts';
import { dialectOf } from '../dialects/index.ts';
import {
  findSqliteTurnWriter,
  type SqliteTurnWriter,
  type TurnWrite,
} from '../dialects/sqlite-turn-writer.ts';
import {
  buildAuditTurnWrite,
  buildDecidedAuditTurnWrite,
  recordAudit,
  type AuditEvent,
  type DecidedEvent,
} from './record-audit.ts';

interface Waiter {
  event: AuditEvent;
  resolve: () => void;
  reject: (err: unknown) => void;
}

const DEFAULT_MAX_GROUP = 500;

/**
 * Group commit for high-rate events: while one flush is in its transaction, new events queue up
 * and go together in the next one, so a loaded API pays one chain append per group instead of
 * one per request, and the chain lock is taken once per group. On SQLite without a gather time,
 * the events of one turn of the event loop go into that turn's one write with the other small
 * writes of the API (SqliteTurnWriter).
 */
export class AuditWriter {
  private readonly knex: Knex;
  private readonly clock: Clock;
  private readonly maxGroup: number;
  private readonly gatherMs: number;
  private pending: Waiter[] = [];
  private flushing: Promise<void> | null = null;
  private scheduled = false;
  private closed = false;
  private readonly turns: {
    writer: SqliteTurnWriter;
    write: TurnWrite<AuditEvent, void>;
    decided: TurnWrite<DecidedEvent<unknown>, unknown>;
  } | null;

  /** gatherMs: how long the first event of an idle writer waits for company (see Dialect.auditGatherMs). */
  constructor(knex: Knex, clock: Clock, options: { maxGroup?: number; gatherMs?: number } = {}) {
    this.knex = knex;
    this.clock = clock;
    this.maxGroup = options.maxGroup ?? DEFAULT_MAX_GROUP;
    this.gatherMs = options.gatherMs ?? 0;
    this.turns =
      this.gatherMs === 0 && dialectOf(knex).name === 'sqlite'
        ? {
            writer: findSqliteTurnWriter(knex),
            write: buildAuditTurnWrite(knex, clock),
            decided: buildDecidedAuditTurnWrite(knex, clock),
          }
        : null;
  }

  /**
   * Resolves once the event is committed to the chain; rejects with the error of its group's
   * flush. The event is stamped now, so its time is when it happened, not when its group is written.
   */
  append(event: AuditEvent): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the audit writer is closed'));
    const stamped = event.at === undefined ? { ...event, at: this.clock.now() } : event;
    if (this.turns !== null) return this.turns.writer.submit(this.turns.write, stamped);
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ event: stamped, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Whether events go into the turns of a SQLite warehouse, where appendDecided is offered. */
  get writesInTurns(): boolean {
    return this.turns !== null;
  }

  /**
   * Resolves with the verdict once the event it picked is committed to the chain, in the same
   * transaction as the decision. Only where writesInTurns: elsewhere the decision and the event
   * would be two transactions, and callers decide first (say, RateLimiter.consume).
   */
  appendDecided<V>(item: DecidedEvent<V>): Promise<V> {
    if (this.closed) return Promise.reject(new Error('the audit writer is closed'));
    if (this.turns === null) return Promise.reject(new Error('decided events need a SQLite warehouse'));
    return this.turns.writer.submit(this.turns.decided, item) as Promise<V>;
  }

  /** Refuses new events, then waits until every queued event is flushed. */
  async close(): Promise<void> {
    this.closed = true;
    await this.turns?.writer.settle();
    while (this.pending.length > 0 || this.flushing !== null) {
      await (this.flushing ?? this.startFlush());
    }
  }

  // Waiting for the end of this turn of the event loop lets the events of the requests answered
  // in it share the first flush, without holding any of them longer than that turn.
  private scheduleFlush(): void {
    if (this.flushing !== null || this.scheduled) return;
    this.scheduled = true;
    const flush = () => {
      this.scheduled = false;
      if (this.flushing === null) void this.startFlush();
    };
    if (this.gatherMs > 0) setTimeout(flush, this.gatherMs);
    else setImmediate(flush);
  }

  private startFlush(): Promise<void> {
    // drain() never rejects: each group's error goes to that group's waiters.
    this.flushing ??= this.drain().then(() => {
      this.flushing = null;
      // Events appended after the last group was taken, while the flush was finishing.
      if (this.pending.length > 0) this.scheduleFlush();
    });
    return this.flushing;
  }

  private async drain(): Promise<void> {
    while (this.pending.length > 0) {
      const group = this.pending.splice(0, this.maxGroup);
      try {
        await recordAudit(
          this.knex,
          this.clock,
          group.map((w) => w.event),
        );
        for (const w of group) w.resolve();
      } catch (err) {
        for (const w of group) w.reject(err);
      }
    }
  }
}
