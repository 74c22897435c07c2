import { once } from 'node:events';
import type { Knex } from 'knex';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { WarehouseValue } from '../core/warehouse-value.ts';
import { encodeCopyRows } from './copy-text.ts';
import { insertRejectRows, REJECT_ROWS_PER_INSERT, type RejectRow } from '../load/save-rejects.ts';
import { acquireRawConnection } from './raw-connection.ts';
import { toRecord, type BulkTarget, type BulkWriter, type Dialect } from './dialect.ts';

const quote = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;

/**
 * COPY inside a transaction that first truncates the (new, empty) table: PostgreSQL may then
 * write the rows already frozen (COPY FREEZE), so the index build and every later scan do not
 * rewrite each page to set its hint bits. Nothing is visible to others until close() commits,
 * and abort() rolls it all back.
 */
async function openCopyWriter(knex: Knex, target: BulkTarget): Promise<BulkWriter> {
  const { connection, release: releaseConnection } = await acquireRawConnection<PoolClient>(knex);
  let released = false;
  const release = async () => {
    if (released) return;
    released = true;
    await releaseConnection();
  };
  try {
    await connection.query('BEGIN');
    await connection.query(`TRUNCATE ${quote(target.table)}`);
  } catch (err) {
    await connection.query('ROLLBACK').catch(() => undefined);
    await release();
    throw err;
  }
  const stream = connection.query(
    copyFrom(
      `COPY ${quote(target.table)} (${target.columns.map(quote).join(', ')}) FROM STDIN WITH (FREEZE)`,
    ),
  );
  // The stream's error arrives as an event; it is kept here and thrown from the next call. A wait
  // for 'drain' or 'finish' needs no race with 'error': `once` rejects on it by itself, and takes
  // both its listeners off whichever comes. (A race with a second `once` left an 'error' listener
  // behind after every drain: a load that waited more than ten times set off node's leak warning.)
  const state: { failure: Error | null } = { failure: null };
  stream.on('error', (err: Error) => (state.failure = err));
  const throwIfFailed = () => {
    if (state.failure !== null) throw state.failure;
  };
  // Rejects go in on another connection, a round trip the rows wait for: a few per batch, one
  // INSERT per batch was a sixth of a load's time. They are gathered into full statements.
  let pendingRejects: RejectRow[] = [];
  const saveRejects = async (atLeast: number) => {
    if (pendingRejects.length === 0 || pendingRejects.length < atLeast) return;
    const rejects = pendingRejects;
    pendingRejects = [];
    await insertRejectRows(knex, rejects);
  };
  const writeCopyText = async (bytes: Buffer, rejects: RejectRow[] = []) => {
    throwIfFailed();
    if (!stream.write(bytes)) await once(stream, 'drain');
    throwIfFailed();
    for (const reject of rejects) pendingRejects.push(reject);
    await saveRejects(REJECT_ROWS_PER_INSERT);
  };
  return {
    write: (rows, rejects) => writeCopyText(encodeCopyRows(rows), rejects),
    writeCopyText,
    async close() {
      try {
        await saveRejects(0);
        stream.end();
        if (state.failure === null) await once(stream, 'finish');
        throwIfFailed();
        await connection.query('COMMIT');
      } catch (err) {
        await connection.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        await release();
      }
    },
    async abort() {
      // The rejects of a failed run are kept, as the ones already saved are.
      await saveRejects(0).catch(() => undefined);
      // Ending a COPY with an error rolls it back on the server.
      if (state.failure === null) stream.destroy(new Error('load aborted'));
      await once(stream, 'close').catch(() => undefined);
      await connection.query('ROLLBACK').catch(() => undefined);
      await release();
    },
  };
}

export const postgresDialect: Dialect = {
  name: 'postgres',
  maxBindings: 65535,
  maxInsertRows: 10000,
  auditGatherMs: 0,
  openBulkWriter: openCopyWriter,
  takesCopyText: true,

  async removeDuplicateKeys(knex, target) {
    const join = target.key.map((k) => `a.${quote(k)} = b.${quote(k)}`).join(' AND ');
    const result = await knex.raw<{ rows: Array<Record<string, WarehouseValue>> }>(
      `DELETE FROM ${quote(target.table)} a USING ${quote(target.table)} b WHERE ${join} AND a.ctid > b.ctid RETURNING a.*`,
    );
    return result.rows.map((r) => target.columns.map((c) => r[c] ?? null));
  },

  /**
   * The table was written by one COPY (openCopyWriter) in the transaction that truncated it, so
   * PostgreSQL skipped the free-space map (as it does for any COPY into a table created or
   * truncated in the same transaction, the condition FREEZE requires): each row went into the
   * last page or a new one appended after it, never back into an earlier page. Nothing has been
   * updated or deleted since, so ctid order (page, then place in the page) is write order.
   */
  async keepLastVersions(knex, target) {
    const join = target.key.map((k) => `a.${quote(k)} = b.${quote(k)}`).join(' AND ');
    const result = await knex.raw<{ rowCount: number | null }>(
      `DELETE FROM ${quote(target.table)} a USING ${quote(target.table)} b WHERE ${join} AND a.ctid < b.ctid`,
    );
    return result.rowCount ?? 0;
  },

  isUniqueViolation: (error) => (error as { code?: unknown }).code === '23505',

  lockUntilCommit: async (trx, resource) =>
    void (await trx.raw('SELECT pg_advisory_xact_lock(hashtext(?))', [resource])),

  // Without statistics the planner takes a million-row table for an empty one and picks nested loops.
  personTables: 'view',
  // ON CONFLICT waits for a transaction inserting the same national ID, then skips it once committed.
  insertMissingPersons: async (trx, ids, seenAt) =>
    void (await trx.raw(
      'INSERT INTO hub_persons (national_id, first_seen_at) SELECT u.id, ? FROM unnest(?::varchar[]) AS u (id) ON CONFLICT (national_id) DO NOTHING',
      [seenAt, ids],
    )),
  renameIndex: async (trx, from, to) => void (await trx.raw('ALTER INDEX ?? RENAME TO ??', [from, to])),
  analyzeTable: async (knex, table) => void (await knex.raw('ANALYZE ??', [table])),

  async fillWithoutPrimaryKey(trx, table, stillWanted, fill) {
    // The lock is taken in a savepoint: rolling back to it releases the lock, so a table found no
    // longer wanted (another load filled the key first) is not held from every reader until the
    // caller's transaction ends.
    await trx.raw('SAVEPOINT fill_without_primary_key');
    await trx.raw('LOCK TABLE ?? IN ACCESS EXCLUSIVE MODE', [table]);
    const { rows } = await trx.raw<{ rows: Array<{ conname: string; definition: string }> }>(
      'SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint ' +
        "WHERE conrelid = ?::regclass AND contype = 'p'",
      [table],
    );
    const key = rows[0];
    if (key === undefined || !(await stillWanted())) {
      await trx.raw('ROLLBACK TO SAVEPOINT fill_without_primary_key');
      return false;
    }
    await trx.raw('ALTER TABLE ?? DROP CONSTRAINT ??', [table, key.conname]);
    await fill();
    await trx.raw(`ALTER TABLE ?? ADD CONSTRAINT ?? ${key.definition}`, [table, key.conname]);
    await trx.raw('RELEASE SAVEPOINT fill_without_primary_key');
    return true;
  },

  buildUpsert(executor, target, rows) {
    const updates = target.columns.filter((c) => !target.key.includes(c));
    const insert = executor(target.table).insert(rows.map((r) => toRecord(target.columns, r)));
    return updates.length === 0
      ? insert.onConflict(target.key).ignore()
      : insert.onConflict(target.key).merge(updates);
  },
};
