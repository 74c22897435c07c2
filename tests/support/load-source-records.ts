import type { ConnectorDefinition } from '../../connectors/definition.ts';
import { openSource } from '../../connectors/sources/open-source.ts';
import type { ReadOptions, SourceRecord } from '../../connectors/sources/source.ts';

/** Every record the connector's source gives, the source closed after, whether the read ends or fails. */
export async function readSourceRecords(
  def: ConnectorDefinition,
  options: ReadOptions = { since: null },
  env?: NodeJS.ProcessEnv,
): Promise<SourceRecord[]> {
  const source = openSource(def, env);
  try {
    const records: SourceRecord[] = [];
    for await (const record of source.read(options)) records.push(record);
    return records;
  } finally {
    await source.close();
  }
}
