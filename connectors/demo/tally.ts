/** What one connector's source holds, counted while it is written. */
export interface TableTally {
  connector: string;
  table: string;
  sourceRows: number;
  badRows: number;
  /** Rows flagged as deletions: a correct load leaves none of them in the warehouse. */
  deletedRows: number;
}

export function createTally(connector: string, table: string): TableTally {
  return { connector, table, sourceRows: 0, badRows: 0, deletedRows: 0 };
}
