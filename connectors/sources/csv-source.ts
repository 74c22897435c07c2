import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { pipeline } from 'node:stream';
import type { Readable } from 'node:stream';
import iconv from 'iconv-lite';
import { parse } from 'csv-parse';
import { filterPastWatermark } from '../compare-cursor.ts';
import type { ConnectorDefinition, CsvSourceDefinition } from '../definition.ts';
import { resolveDefinitionPath } from '../resolve-path.ts';
import type { ReadOptions, Source, SourceRecord } from './source.ts';

export type CsvConnectorDefinition = ConnectorDefinition & { source: CsvSourceDefinition };

/** Reads a delimited text file in any encoding iconv-lite knows, record by record. */
export function openCsvSource(def: CsvConnectorDefinition): Source {
  const file = resolveDefinitionPath(def, def.source.path);
  const knownEncoding: boolean = iconv.encodingExists(def.source.encoding);
  if (!knownEncoding) {
    throw new Error(`connector ${def.name}: unknown encoding "${def.source.encoding}" for ${file}`);
  }
  const reading = new Set<Readable>();
  return {
    read: (options: ReadOptions) =>
      filterPastWatermark(readCsv(def, file, reading), def.source.cursor, options.since),
    close: () => {
      for (const stream of reading) stream.destroy();
      return Promise.resolve();
    },
  };
}

async function* readCsv(
  def: CsvConnectorDefinition,
  file: string,
  reading: Set<Readable>,
): AsyncGenerator<SourceRecord> {
  const handle = await openFile(def, file);
  const records = parsedRecords(def.source, handle);
  reading.add(records);
  try {
    for await (const record of records as AsyncIterable<SourceRecord>) yield record;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new Error(`connector ${def.name}: ${file}: ${reason}`, { cause: err });
  } finally {
    reading.delete(records);
    records.destroy();
  }
}

async function openFile(def: CsvConnectorDefinition, file: string): Promise<FileHandle> {
  try {
    return await open(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    const reason = code === 'ENOENT' ? 'file not found' : `cannot be opened (${code})`;
    throw new Error(`connector ${def.name}: ${file}: ${reason}`, { cause: err });
  }
}

function parsedRecords(source: CsvSourceDefinition, handle: FileHandle): Readable {
  const parser = parse({
    columns: source.header === true ? true : source.header,
    delimiter: source.delimiter,
    quote: source.quote,
    bom: true,
    // A short or long line becomes a record for the loader to reject, not the end of the run.
    relax_column_count: true,
    skip_empty_lines: true,
  });
  // pipeline destroys every stage with the first error, so a decode or parse failure reaches the reader.
  return pipeline(handle.createReadStream(), iconv.decodeStream(source.encoding), parser, () => undefined);
}
