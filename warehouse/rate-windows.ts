import type { Database } from 'better-sqlite3';
import type { Knex } from 'knex';
import type { DialectName } from './db.ts';
import { prepareOnce } from './dialects/sqlite-statements.ts';
import type { TurnWrite } from './dialects/sqlite-turn-writer.ts';

export interface RateWindowsInput {
  clientId: string;
  /** Starts of the current windows, in milliseconds since the epoch. */
  minuteStart: number;
  dayStart: number;
  perMinute: number;
  perDay: number;
}

export interface RateWindowCounts {
  minuteStart: number;
  minuteCount: number;
  dayStart: number;
  dayCount: number;
}

// A window only moves forward: a process whose clock runs a little behind another's counts into
// the newer window instead of resetting it.
const SET_WINDOWS = (t: string, s: string) => `
  minute_count = CASE WHEN ${s}.minute_start > ${t}.minute_start THEN 1 ELSE ${t}.minute_count + 1 END,
  minute_start = CASE WHEN ${s}.minute_start > ${t}.minute_start THEN ${s}.minute_start ELSE ${t}.minute_start END,
  day_count = CASE WHEN ${s}.day_start > ${t}.day_start THEN 1 ELSE ${t}.day_count + 1 END,
  day_start = CASE WHEN ${s}.day_start > ${t}.day_start THEN ${s}.day_start ELSE ${t}.day_start END`;

const HAS_ROOM = (t: string, s: string) =>
  `(${s}.minute_start > ${t}.minute_start OR ${t}.minute_count < ?) AND (${s}.day_start > ${t}.day_start OR ${t}.day_count < ?)`;

const UPSERT = `INSERT INTO hub_rate_limits (client_id, minute_start, minute_count, day_start, day_count)
VALUES (?, ?, 1, ?, 1)
ON CONFLICT (client_id) DO UPDATE SET ${SET_WINDOWS('hub_rate_limits', 'excluded')}
WHERE ${HAS_ROOM('hub_rate_limits', 'excluded')}
RETURNING minute_count, day_count`;

const MERGE = `MERGE hub_rate_limits WITH (HOLDLOCK) AS t
USING (SELECT ? AS client_id, CAST(? AS BIGINT) AS minute_start, CAST(? AS BIGINT) AS day_start) AS s
ON t.client_id = s.client_id
WHEN MATCHED AND ${HAS_ROOM('t', 's')} THEN UPDATE SET ${SET_WINDOWS('t', 's')}
WHEN NOT MATCHED THEN INSERT (client_id, minute_start, minute_count, day_start, day_count)
  VALUES (s.client_id, s.minute_start, 1, s.day_start, 1)
OUTPUT inserted.minute_count, inserted.day_count;`;

const SELECT_WINDOWS =
  'SELECT minute_start, minute_count, day_start, day_count FROM hub_rate_limits WHERE client_id = ?';

interface WindowRow {
  minute_start: number | string;
  minute_count: number | string;
  day_start: number | string;
  day_count: number | string;
}

const readWindows = (row: WindowRow): RateWindowCounts => ({
  minuteStart: Number(row.minute_start),
  minuteCount: Number(row.minute_count),
  dayStart: Number(row.day_start),
  dayCount: Number(row.day_count),
});

const STATEMENTS: Record<DialectName, string> = { sqlite: UPSERT, postgres: UPSERT, mssql: MERGE };

function readRows(dialect: DialectName, result: unknown): unknown[] {
  if (dialect === 'postgres') return (result as { rows: unknown[] }).rows;
  return result as unknown[];
}

/**
 * Counts one request in the client's minute and day windows, in one statement, if both have
 * room; returns false (and counts nothing) when either is full. One statement is what makes it
 * exact under concurrency: the database serializes the row's updates, so processes and hosts
 * racing on one client never both take the last unit.
 */
export async function consumeRateWindows(
  knex: Knex,
  dialect: DialectName,
  input: RateWindowsInput,
): Promise<boolean> {
  const result: unknown = await knex.raw(STATEMENTS[dialect], [
    input.clientId,
    input.minuteStart,
    input.dayStart,
    input.perMinute,
    input.perDay,
  ]);
  return readRows(dialect, result).length > 0;
}

/**
 * consumeRateWindows on a SQLite connection, synchronously, with a prepared statement: inside a
 * turn's transaction (see SqliteTurnWriter), each call sees the ones before it, so the answers
 * are what one statement each would give, in order.
 */
export function consumeRateWindowsOnSqlite(db: Database, input: RateWindowsInput): boolean {
  const { clientId, minuteStart, dayStart, perMinute, perDay } = input;
  return prepareOnce(db, UPSERT).all(clientId, minuteStart, dayStart, perMinute, perDay).length > 0;
}

/** The client's windows as counted, read on a SQLite connection (in the transaction that was refused). */
export function fetchRateWindowsOnSqlite(db: Database, clientId: string): RateWindowCounts | null {
  const row = prepareOnce(db, SELECT_WINDOWS).get(clientId) as WindowRow | undefined;
  return row === undefined ? null : readWindows(row);
}

/** consumeRateWindows as part of a SQLite turn: a prepared statement per request in the turn's one transaction. */
export const RATE_WINDOWS_TURN_WRITE: TurnWrite<RateWindowsInput, boolean> = {
  name: 'rate windows',
  write: (db, inputs) => inputs.map((input) => consumeRateWindowsOnSqlite(db, input)),
};

/** The client's windows as counted, for saying which one is full. */
export async function fetchRateWindows(knex: Knex, clientId: string): Promise<RateWindowCounts | null> {
  const row = await knex('hub_rate_limits')
    .where({ client_id: clientId })
    .first<WindowRow | undefined>('minute_start', 'minute_count', 'day_start', 'day_count');
  return row === undefined ? null : readWindows(row);
}
