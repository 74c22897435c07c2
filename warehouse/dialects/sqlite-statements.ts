import type { Database, Statement } from 'better-sqlite3';

const statementsByConnection = new WeakMap<Database, Map<string, Statement>>();

/**
 * The connection's prepared statement for this SQL, compiled on first use: the few fixed
 * statements that run on every request (see SqliteTurnWriter) are compiled once per connection
 * instead of once per turn. Only for fixed SQL text: the cache is not bounded.
 */
export function prepareOnce(db: Database, sql: string): Statement {
  let statements = statementsByConnection.get(db);
  if (statements === undefined) statementsByConnection.set(db, (statements = new Map<string, Statement>()));
  let statement = statements.get(sql);
  if (statement === undefined) statements.set(sql, (statement = db.prepare(sql)));
  return statement;
}
