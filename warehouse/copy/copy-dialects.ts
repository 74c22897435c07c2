import type { DialectName } from '../db.ts';
import { HubError } from '../core/errors.ts';
import type { CopyDialect } from './copy-dialect.ts';
import { postgresCopy } from './postgres-copy.ts';
import { sqliteCopy } from './sqlite-copy.ts';

const COPY_DIALECTS: Partial<Record<DialectName, CopyDialect>> = {
  sqlite: sqliteCopy,
  postgres: postgresCopy,
};

export function copyDialectFor(name: DialectName, role: 'source' | 'target'): CopyDialect {
  const dialect = COPY_DIALECTS[name];
  if (dialect === undefined) {
    throw new HubError(
      'unsupported_database',
      400,
      `hub copy reads and writes sqlite: and postgres:// warehouses; the ${role} is ${name}`,
    );
  }
  return dialect;
}
