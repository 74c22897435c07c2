// The write side of a SQLite full load, on a thread of its own (see sqlite-bulk-writer.ts).
// Plain JavaScript, so the thread starts without the TypeScript loader: only better-sqlite3.
// A batch comes in pieces, its last one marked, written in one transaction with one prepared
// statement and the batch's rejects; between batches the write lock is free for the hub's other
// writes.
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

const { filename, pragmas, table, columns, booleanColumns, rejectColumns } = workerData;
const quote = (name) => `"${String(name).replace(/"/g, '""')}"`;
const placeholders = (n) => Array.from({ length: n }, () => '?').join(', ');

let db = null;
try {
  db = new Database(filename);
  for (const pragma of pragmas) db.pragma(pragma);
  // Batches commit one by one so the hub's other writes get their turn, but each commit must
  // not also checkpoint the WAL into the database file (with its fsyncs): the first commit after
  // the load (the index build) does it once, as a single-transaction load would.
  db.pragma('wal_autocheckpoint = 0');
  const insertRow = db.prepare(
    `INSERT INTO ${quote(table)} (${columns.map(quote).join(', ')}) VALUES (${placeholders(columns.length)})`,
  );
  // A transferred Uint8Array, seen as a Buffer without a copy: better-sqlite3 binds Buffers.
  const asBuffer = (value) =>
    value instanceof Uint8Array ? Buffer.from(value.buffer, value.byteOffset, value.byteLength) : value;
  // better-sqlite3 binds no booleans.
  const bindBooleans = (row) => {
    for (const c of booleanColumns) if (typeof row[c] === 'boolean') row[c] = row[c] ? 1 : 0;
    return row;
  };
  // A long value crosses as UTF-8 bytes (sqlite-bulk-writer.ts): bound as a blob, cast back to
  // text. A reject's columns are text but for its run number, which never crosses as bytes.
  const castText = (asBytes) => (asBytes ? 'CAST(? AS TEXT)' : '?');
  const insertReject = db.prepare(
    `INSERT INTO hub_rejects (${rejectColumns.map(quote).join(', ')}) VALUES (${rejectColumns
      .map((c) => castText(c !== 'run_id'))
      .join(', ')})`,
  );
  const largeRowStatements = new Map();
  const insertLargeRow = ({ row, bytesAt }) => {
    const shape = bytesAt.join(',');
    let statement = largeRowStatements.get(shape);
    if (statement === undefined) {
      const values = columns.map((_, i) => castText(bytesAt.includes(i))).join(', ');
      statement = db.prepare(
        `INSERT INTO ${quote(table)} (${columns.map(quote).join(', ')}) VALUES (${values})`,
      );
      largeRowStatements.set(shape, statement);
    }
    statement.run(bindBooleans(row.map(asBuffer)));
  };
  const begin = db.prepare('BEGIN');
  const commit = db.prepare('COMMIT');
  const writePiece = (rows, rejects) => {
    if (booleanColumns.length === 0) for (const row of rows) insertRow.run(row);
    else for (const row of rows) insertRow.run(bindBooleans(row));
    for (const reject of rejects) insertReject.run(reject.map(asBuffer));
  };
  // After a failure the main thread stops the worker: the pieces still queued are not written.
  let failed = false;
  parentPort.on('message', (message) => {
    if (message.type === 'close') {
      db.close();
      parentPort.postMessage({ type: 'closed' });
      parentPort.close();
      return;
    }
    if (failed) return;
    try {
      if (!db.inTransaction) begin.run();
      if (message.large !== undefined) insertLargeRow(message.large);
      writePiece(message.rows === undefined ? [] : JSON.parse(message.rows), message.rejects);
      if (message.last) {
        commit.run();
        parentPort.postMessage({ type: 'written' });
      }
    } catch (err) {
      failed = true;
      if (db.inTransaction) db.exec('ROLLBACK');
      parentPort.postMessage({ type: 'failed', message: err.message, code: err.code });
    }
  });
  parentPort.postMessage({ type: 'ready' });
} catch (err) {
  db?.close();
  parentPort.postMessage({ type: 'failed', message: err.message, code: err.code });
  parentPort.close();
}
