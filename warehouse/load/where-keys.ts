import type { Knex } from 'knex';
import type { WarehouseValue } from '../core/warehouse-value.ts';

/** Narrows `builder` to the records whose key columns hold one of `keys` (each in key order). */
export function whereKeys(
  builder: Knex.QueryBuilder,
  key: string[],
  keys: WarehouseValue[][],
): Knex.QueryBuilder {
  if (key.length === 1)
    return builder.whereIn(
      key[0]!,
      keys.map((k) => k[0] as string | number),
    );
  return builder.where((outer) => {
    for (const values of keys) {
      void outer.orWhere((inner) => {
        key.forEach((column, i) => void inner.where(column, values[i] as string | number));
      });
    }
  });
}
