import type Database from 'better-sqlite3';
import type { Knex } from 'knex';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { WarehouseRow, WarehouseValue } from '../core/warehouse-value.ts';
import type { DialectName } from '../db.ts';
import { encodeCopyRows } from '../dialects/copy-text.ts';
import { withRawConnection } from '../dialects/raw-connection.ts';

const quote = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;

export interface ChangeTarget {
  table: string;
  columns: string[];
  key: string[];
  nationalIdColumn: string;
}

export interface AppliedChanges {
  inserted: number;
  updated: number;
  deleted: number;
}

/**
 * Applies one batch of an incremental run inside the run's transaction: upserts rows (distinct
 * record keys), deletes keys, and keeps the person key right for every national ID the batch
 * touched, including the one a record had before an update moved it to another person.
 * The work is proportional to the batch, never to the table.
 */
export type ChangeApplier = (
  trx: Knex.Transaction,
  target: ChangeTarget,
  batch: { rows: WarehouseRow[]; deletes: WarehouseRow[] },
  seenAt: string,
) => Promise<AppliedChanges>;

const bindable = (v: WarehouseValue | undefined) => (typeof v === 'boolean' ? (v ? 1 : 0) : (v ?? null));

/**
 * SQLite: prepared statements, row by row, on the transaction's own connection. Which tables hold
 * a person is a view there (person-tables-view.ts): only new persons are written to the key.
 */
const applySqliteChanges: ChangeApplier = (trx, target, batch, seenAt) =>
  withRawConnection(trx, (db: Database.Database) => {
    const t = quote(target.table);
    const keyWhere = target.key.map((k) => `${quote(k)} = ?`).join(' AND ');
    const updates = target.columns.filter((c) => !target.key.includes(c));
    const find = db.prepare(`SELECT 1 FROM ${t} WHERE ${keyWhere}`).pluck();
    const upsert = db.prepare(
      `INSERT INTO ${t} (${target.columns.map(quote).join(', ')}) VALUES (${target.columns.map(() => '?').join(', ')}) ` +
        `ON CONFLICT (${target.key.map(quote).join(', ')}) DO ` +
        (updates.length === 0
          ? 'NOTHING'
          : `UPDATE SET ${updates.map((c) => `${quote(c)} = excluded.${quote(c)}`).join(', ')}`),
    );
    const remove = db.prepare(`DELETE FROM ${t} WHERE ${keyWhere}`);
    const addPerson = db.prepare(
      'INSERT INTO hub_persons (national_id, first_seen_at) VALUES (?, ?) ON CONFLICT DO NOTHING',
    );
    const keyIndexes = target.key.map((k) => target.columns.indexOf(k));
    const nidIndex = target.columns.indexOf(target.nationalIdColumn);
    const held = new Set<string>();
    const applied: AppliedChanges = { inserted: 0, updated: 0, deleted: 0 };
    for (const row of batch.rows) {
      if (find.get(keyIndexes.map((i) => bindable(row[i]))) === undefined) applied.inserted++;
      else applied.updated++;
      upsert.run(row.map(bindable));
      held.add(String(row[nidIndex]));
    }
    for (const key of batch.deletes) applied.deleted += remove.run(key.map(bindable)).changes;
    for (const id of held) addPerson.run(id, seenAt);
    return applied;
  });

/**
 * Copies `rows` into a temporary table of the transaction, created by the first batch (`definition`
 * is what follows CREATE TEMP TABLE IF NOT EXISTS) and emptied for each later one.
 */
async function stageRows(
  client: PoolClient,
  definition: string,
  stage: string,
  columns: readonly string[],
  rows: WarehouseRow[],
): Promise<void> {
  await client.query(`CREATE TEMP TABLE IF NOT EXISTS ${definition}`);
  await client.query(`TRUNCATE ${stage}`);
  await pipeline(
    Readable.from([encodeCopyRows(rows)]),
    client.query(copyFrom(`COPY ${stage} (${columns.map(quote).join(', ')}) FROM STDIN`)),
  );
}

/**
 * PostgreSQL: the batch is copied into a temporary table of the transaction, then applied with
 * a few set-based statements (one upsert, one insert of new persons, one delete), instead of a
 * statement per row or a multi-row INSERT built by the client. Table memberships are a view over
 * the registry tables here (person-tables-view.ts): nothing to keep in step.
 */
const applyPostgresChanges: ChangeApplier = (trx, target, batch, seenAt) =>
  withRawConnection(trx, async (client: PoolClient) => {
    const t = quote(target.table);
    const nid = quote(target.nationalIdColumn);
    const stage = quote(`hub_stage_${target.table}`.slice(0, 63));
    const unstage = quote(`hub_unstage_${target.table}`.slice(0, 63));
    const join = target.key.map((k) => `t.${quote(k)} = s.${quote(k)}`).join(' AND ');
    const updates = target.columns.filter((c) => !target.key.includes(c));
    const applied: AppliedChanges = { inserted: 0, updated: 0, deleted: 0 };
    if (batch.rows.length > 0) {
      await stageRows(client, `${stage} (LIKE ${t}) ON COMMIT DROP`, stage, target.columns, batch.rows);
      const before = await client.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${stage} s JOIN ${t} t ON ${join}`,
      );
      applied.updated = Number(before.rows[0]?.n ?? 0);
      applied.inserted = batch.rows.length - applied.updated;
      const columns = target.columns.map(quote).join(', ');
      await client.query(
        `INSERT INTO ${t} (${columns}) SELECT ${columns} FROM ${stage} ON CONFLICT (${target.key.map(quote).join(', ')}) DO ` +
          (updates.length === 0
            ? 'NOTHING'
            : `UPDATE SET ${updates.map((c) => `${quote(c)} = EXCLUDED.${quote(c)}`).join(', ')}`),
      );
      await client.query(
        `INSERT INTO hub_persons (national_id, first_seen_at) SELECT DISTINCT ${nid}, $1 FROM ${stage} ON CONFLICT DO NOTHING`,
        [seenAt],
      );
    }
    if (batch.deletes.length > 0) {
      // The deleted keys are staged too, in columns of the table's own key types: one DELETE
      // for the batch instead of a round trip per key (100,000 deletions took 12 s that way).
      const keys = target.key.map(quote).join(', ');
      await stageRows(
        client,
        `${unstage} ON COMMIT DROP AS SELECT ${keys} FROM ${t} WITH NO DATA`,
        unstage,
        target.key,
        batch.deletes,
      );
      const removed = await client.query(`DELETE FROM ${t} t USING ${unstage} s WHERE ${join}`);
      applied.deleted = removed.rowCount ?? 0;
    }
    return applied;
  });

/** The appliers with a faster path than the portable one in incremental-load.ts. */
export const CHANGE_APPLIERS: Partial<Record<DialectName, ChangeApplier>> = {
  sqlite: applySqliteChanges,
  postgres: applyPostgresChanges,
};
