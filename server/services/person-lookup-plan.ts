import type { Knex } from 'knex';
import type { TableAbility } from '../../privileges/ability.ts';
import { permittedPersonColumns } from '../../privileges/permitted-columns.ts';
import type { CatalogTable } from '../../warehouse/catalog.ts';
import type { ColumnType } from '../../warehouse/core/column-types.ts';
import { dialectOf } from '../../warehouse/dialects/index.ts';
import { compileReadSql } from '../../warehouse/prepared-reads.ts';

/** One table a person lookup reads: only the columns the ability allows, in catalog order. */
export interface PlannedTable {
  table: CatalogTable;
  columns: string[];
  /** The catalog type of each column, for normalizing values. */
  types: Array<ColumnType | undefined>;
  /** SELECT of the columns for `size` national IDs, ordered so that each person's rows come in the single lookup's order. */
  sql(size: number): string;
}

/** What an entity's person lookups read, built once per ability and catalog. */
export interface PersonLookupPlan {
  tables: PlannedTable[];
  /**
   * Which of the planned tables hold each of `size` national IDs: one probe of each table's
   * national-ID index, all in one statement, bound with the IDs once per planned table. Each row
   * names its table by its place in `tables`; a table holding an ID twice returns it twice.
   */
  holdingSql(size: number): string;
  /** The most IDs one holding statement is asked for: a power of two within the database's bound values. */
  holdingIdsPerStatement: number;
}

/**
 * The number of IDs a statement is built for: the next power of two, so that a handful of
 * statements serve every batch size (the unused places repeat the last ID, which changes
 * nothing in an IN list).
 */
export function roundUpIdCount(count: number): number {
  let size = 1;
  while (size < count) size *= 2;
  return size;
}

function roundDownToPowerOfTwo(limit: number): number {
  let size = 1;
  while (size * 2 <= limit) size *= 2;
  return size;
}

function memoBySize(build: (size: number) => string): (size: number) => string {
  const bySize = new Map<number, string>();
  return (size) => {
    let sql = bySize.get(size);
    if (sql === undefined) {
      sql = build(size);
      bySize.set(size, sql);
    }
    return sql;
  };
}

const placeholders = (size: number) => new Array<string>(size).fill('');

function buildPlan(reader: Knex, ability: TableAbility, catalog: readonly CatalogTable[]): PersonLookupPlan {
  const tables = catalog
    .map((table) => ({ table, columns: permittedPersonColumns(ability, table) }))
    .filter((r) => r.columns.length > 0)
    .map(({ table, columns }): PlannedTable => {
      const typeOf = new Map(table.columns.map((c) => [c.name, c.type]));
      // Ordered by readable values only (the record key where readable, then every returned
      // column), so the order of a person's rows shows nothing of the columns left out.
      const order = [...new Set([...table.key.filter((k) => columns.includes(k)), ...columns])];
      return {
        table,
        columns,
        types: columns.map((c) => typeOf.get(c)),
        sql: memoBySize((size) =>
          compileReadSql(
            reader(table.name)
              .whereIn(table.nationalIdColumn, placeholders(size))
              .orderBy(order)
              .select(columns),
          ),
        ),
      };
    });
  return {
    tables,
    holdingSql: memoBySize((size) => {
      // Only the tables the caller may read are probed: whether other registries hold a person
      // changes nothing in the work done, so a 404 tells nobody who exists elsewhere.
      const [first, ...rest] = tables.map(({ table }, i) =>
        reader(table.name)
          .whereIn(table.nationalIdColumn, placeholders(size))
          .select({ national_id: table.nationalIdColumn, table_index: reader.raw(String(i)) }),
      );
      return first === undefined ? '' : compileReadSql(rest.length === 0 ? first : first.unionAll(rest));
    }),
    // SQL Server binds at most about 2,000 values: a batch of 100 IDs over 20 readable tables is more.
    holdingIdsPerStatement: roundDownToPowerOfTwo(dialectOf(reader).maxBindings / Math.max(1, tables.length)),
  };
}

interface CachedPlan {
  reader: Knex;
  catalog: readonly CatalogTable[];
  plan: PersonLookupPlan;
}

/*
 * Keyed by the ability object itself: the ability cache hands out the same object while the
 * grants version stands and a new one once it moves (a grant, a revoke, an expiry), so a plan
 * can never outlive the grants it was built from, and it is dropped with its ability. The
 * catalog cache likewise gives a new array when it reads the catalog again.
 */
const plans = new WeakMap<TableAbility, CachedPlan>();

/** The lookup plan for this ability and catalog, built on first use. */
export function fetchPersonLookupPlan(
  reader: Knex,
  ability: TableAbility,
  catalog: readonly CatalogTable[],
): PersonLookupPlan {
  const cached = plans.get(ability);
  if (cached !== undefined && cached.catalog === catalog && cached.reader === reader) return cached.plan;
  const plan = buildPlan(reader, ability, catalog);
  plans.set(ability, { reader, catalog, plan });
  return plan;
}
