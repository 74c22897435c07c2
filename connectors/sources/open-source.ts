import type { ConnectorDefinition } from '../definition.ts';
import { openCsvSource } from './csv-source.ts';
import { openDciSource } from './dci-source.ts';
import { openHttpSource } from './http-source.ts';
import type { Source } from './source.ts';
import { openSqlSource } from './sql-source.ts';

/** Opens the reader for a connector's source; env supplies secrets referenced by HTTP headers and DCI tokens. */
export function openSource(def: ConnectorDefinition, env: NodeJS.ProcessEnv = process.env): Source {
  const source = def.source;
  switch (source.kind) {
    case 'sql':
      return openSqlSource({ ...def, source });
    case 'csv':
      return openCsvSource({ ...def, source });
    case 'http':
      return openHttpSource({ ...def, source }, env);
    case 'dci':
      return openDciSource({ ...def, source }, env);
  }
}
