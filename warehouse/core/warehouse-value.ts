/** A value as the warehouse stores it: dates as 'YYYY-MM-DD' text, datetimes as 'YYYY-MM-DD HH:mm:ss'. */
export type WarehouseValue = string | number | boolean | null;
export type WarehouseRow = WarehouseValue[];
