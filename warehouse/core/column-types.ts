export const COLUMN_TYPES = ['string', 'text', 'integer', 'number', 'boolean', 'date', 'datetime'] as const;
export type ColumnType = (typeof COLUMN_TYPES)[number];
