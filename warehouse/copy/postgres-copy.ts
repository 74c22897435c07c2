import { once } from 'node:events';
import type { PoolClient } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import QueryStream from 'pg-query-stream';
import { withRawConnection } from '../dialects/raw-connection.ts';
import { quoteIdentifier as q, type CopyDialect, type CopyRow, type CopyValue } from './copy-dialect.ts';
import { inBatches } from '../core/in-batches.ts';

const SOURCE_LOCK = 'hub_copy_source';
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** COPY text format: tab-separated, \N for NULL, backslash escapes; every value exactly as written. */
function encodeCopyValue(value: CopyValue): string {
  if (value === null) return '\\N';
  switch (typeof value) {
    case 'boolean':
      return value ? 't' : 'f';
    case 'bigint':
      return String(value);
    case 'number':
      // String(-0) is "0"; the shortest text that reads back as the same double otherwise.
      return Object.is(value, -0) ? '-0' : String(value);
    case 'string':
      return value.replace(/[\\\t\n\r]/g, (c) => ESCAPES[c]!);
  }
  if (value instanceof Date) return value.toISOString();
  return `\\\\x${value.toString('hex')}`;
}

function encodeCopyRows(rows: CopyRow[]): string {
  let text = '';
  for (const row of rows) text += `${row.map(encodeCopyValue).join('\t')}\n`;
  return text;
}

export const postgresCopy: CopyDialect = {
  async fetchTableNames(executor) {
    const result = await executor.raw<{ rows: Array<{ table_name: string }> }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
    );
    return result.rows.map((r) => r.table_name);
  },

  async fetchColumns(executor, table) {
    const result = await executor.raw<{
      rows: Array<{ column_name: string; data_type: string; character_maximum_length: number | null }>;
    }>(
      'SELECT column_name, data_type, character_maximum_length FROM information_schema.columns ' +
        'WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position',
      [table],
    );
    return result.rows.map((r) => ({
      name: r.column_name,
      declaredType: r.data_type.toLowerCase(),
      maxLength: r.character_maximum_length,
    }));
  },

  async fetchReferences(executor) {
    const result = await executor.raw<{ rows: Array<{ child: string; parent: string }> }>(
      "SELECT c.conrelid::regclass::text AS child, c.confrelid::regclass::text AS parent FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 'f' AND n.nspname = current_schema()",
    );
    return result.rows.map((r) => ({
      table: r.child.replace(/^"|"$/g, ''),
      references: r.parent.replace(/^"|"$/g, ''),
    }));
  },

  async *readRows(trx, table, columns, batchRows) {
    // A cursor inside the snapshot transaction: batches arrive as they are read, never the whole table.
    const client = await withRawConnection(trx, (connection: PoolClient) => connection);
    const stream = client.query(
      new QueryStream(`SELECT ${columns.map(q).join(', ')} FROM ${q(table)}`, [], {
        batchSize: batchRows,
        rowMode: 'array',
      }),
    );
    yield* inBatches(stream as AsyncIterable<CopyRow>, batchRows);
  },

  async openRowWriter(trx, table, columns) {
    const client = await withRawConnection(trx, (connection: PoolClient) => connection);
    const stream = client.query(copyFrom(`COPY ${q(table)} (${columns.map(q).join(', ')}) FROM STDIN`));
    // The stream's error arrives as an event; it is kept and thrown from the next call. `once`
    // rejects on 'error' by itself: the waits below need no race with it (see openCopyWriter).
    const state: { failure: Error | null } = { failure: null };
    stream.on('error', (err: Error) => (state.failure = err));
    const throwIfFailed = () => {
      if (state.failure !== null) throw state.failure;
    };
    return {
      async write(rows) {
        throwIfFailed();
        if (!stream.write(encodeCopyRows(rows))) await once(stream, 'drain');
        throwIfFailed();
      },
      async close() {
        stream.end();
        if (state.failure === null) await once(stream, 'finish');
        throwIfFailed();
      },
      async abort() {
        // Ending a COPY with an error makes the server drop its rows; a COPY the server refused is over already.
        if (!stream.destroyed) stream.destroy(new Error('copy aborted'));
        if (!stream.closed) await once(stream, 'close').catch(() => undefined);
      },
    };
  },

  async resetSequences(trx, tables) {
    const result = await trx.raw<{
      rows: Array<{ table_name: string; column_name: string; sequence: string }>;
    }>(
      'SELECT table_name, column_name, pg_get_serial_sequence(quote_ident(table_name), column_name) AS sequence ' +
        'FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ANY(?) ' +
        'AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL ORDER BY table_name, column_name',
      [tables],
    );
    for (const r of result.rows) {
      // The next id is one past the largest copied, or 1 for an empty table.
      await trx.raw(
        `SELECT setval(?, COALESCE((SELECT max(${q(r.column_name)}) FROM ${q(r.table_name)}), 0) + 1, false)`,
        [r.sequence],
      );
    }
    return result.rows.map((r) => `${r.table_name}.${r.column_name}`);
  },

  // Advisory locks belong to one database: the target can take this one exclusively only if no
  // copy holds it shared there as its source, whatever URL named the database.
  holdAsSource: async (snapshot) =>
    void (await snapshot.raw('SELECT pg_advisory_xact_lock_shared(hashtext(?))', [SOURCE_LOCK])),

  async isHeldAsSource(trx) {
    const result = await trx.raw<{ rows: Array<{ free: boolean }> }>(
      'SELECT pg_try_advisory_xact_lock(hashtext(?)) AS free',
      [SOURCE_LOCK],
    );
    return result.rows[0]?.free !== true;
  },

  readSnapshot(knex, work) {
    return knex.transaction(work, { isolationLevel: 'repeatable read', readOnly: true });
  },
};
