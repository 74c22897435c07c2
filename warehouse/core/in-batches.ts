/**
 * `rows` in arrays of `size`, in their order; the last holds what is left, and none is empty.
 * A synchronous source (a SQLite statement) is stepped without an await per row: that await
 * costs more than reading the row.
 */
export async function* inBatches<T>(rows: Iterable<T> | AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  const add = (row: T): T[] | null => {
    batch.push(row);
    if (batch.length !== size) return null;
    const full = batch;
    batch = [];
    return full;
  };
  if (Symbol.asyncIterator in rows) {
    for await (const row of rows) {
      const full = add(row);
      if (full !== null) yield full;
    }
  } else {
    for (const row of rows) {
      const full = add(row);
      if (full !== null) yield full;
    }
  }
  if (batch.length > 0) yield batch;
}
