/** One record as the source system has it: its own field names, its own value formats. */
export type SourceRecord = Record<string, unknown>;

export interface ReadOptions {
  /**
   * Incremental runs: only records whose cursor field is strictly greater than this watermark.
   * null reads everything.
   */
  since: string | null;
}

/**
 * A connector's source. Every kind streams: records are produced as they are read, so
 * memory stays flat whatever the size of the registry.
 */
export interface Source {
  read(options: ReadOptions): AsyncIterable<SourceRecord>;
  /** Tombstones (deleted records' keys) past the watermark, for sources that keep them. */
  readTombstones?(options: ReadOptions): AsyncIterable<SourceRecord>;
  close(): Promise<void>;
}
