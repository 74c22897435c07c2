/** One record as the source system has it: its own field names, its own value formats. */
export type SourceRecord = Record<string, unknown>;

export interface ReadOptions {
  /**
   * Incremental runs: only records whose cursor field is strictly greater than this watermark.
   * null reads everything.
   */
  since: string | null;
  /**
   * Whether records must come in cursor order (the default): an incremental run keeps the later
   * of two versions of a record. A full load takes the source's own order, which costs the
   * source no sort.
   */
  ordered?: boolean;
}

/** Records as arrays in the order of `fields`, many at a time. */
export interface RecordChunk {
  fields: string[];
  rows: unknown[][];
}

/** A SQLite file's table, which a full load may read itself in ranges of rowids (connectors/parallel-read). */
export interface SqliteTableLocation {
  filename: string;
  table: string;
}

/**
 * A connector's source. Every kind streams: records are produced as they are read, so
 * memory stays flat whatever the size of the registry.
 */
export interface Source {
  read(options: ReadOptions): AsyncIterable<SourceRecord>;
  /** The same records as `read`, for sources that can hand them as arrays without an object per row. */
  readChunks?(options: ReadOptions, size: number): AsyncIterable<RecordChunk>;
  /** Tombstones (deleted records' keys) past the watermark, for sources that keep them. */
  readTombstones?(options: ReadOptions): AsyncIterable<SourceRecord>;
  /** Where the records are a SQLite table read as a whole: the file and the table. */
  sqliteTable?: SqliteTableLocation;
  close(): Promise<void>;
}
