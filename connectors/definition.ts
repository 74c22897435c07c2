import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DefinitionError } from '../warehouse/core/errors.ts';
import { IDENTIFIER, MAX_IDENTIFIER_LENGTH } from '../warehouse/core/identifiers.ts';
import { COLUMN_TYPES, type ColumnType } from '../warehouse/core/column-types.ts';
import { validate as validateCron } from 'node-cron';

const identifier = z
  .string()
  .max(MAX_IDENTIFIER_LENGTH)
  .regex(IDENTIFIER, `must match ${IDENTIFIER.source} (lower-case letters, digits and _)`);

const label = z.object({ en: z.string().min(1), ar: z.string().min(1) }).strict();

const columnType = z.enum(COLUMN_TYPES);
export type { ColumnType };

const columnMapping = z
  .object({
    /** Source field name; defaults to the target column name. */
    from: z.string().min(1).optional(),
    type: columnType.default('string'),
    required: z.boolean().default(false),
    /** Maximum length of a string column (also its SQL size). */
    length: z.number().int().positive().max(4000).optional(),
    /** Source date/datetime format, e.g. DD/MM/YYYY, YYYYMMDD, YYYY-MM-DD HH:mm:ss; ISO 8601 when absent. */
    format: z.string().min(1).optional(),
    /** Code list: source value → warehouse value (e.g. {"1": "M", "2": "F"}). Values outside it are rejected. */
    codes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).optional(),
    trim: z.boolean().default(true),
    /** Boolean source values that mean true (compared after trimming, case-insensitive). */
    true_values: z.array(z.string()).optional(),
    default: z.union([z.string(), z.number(), z.boolean(), z.null()]).optional(),
    label: label.optional(),
    /**
     * The values are national IDs, as in a mother's or a father's ID column: every value the hub
     * returns from it counts as a read of that person in the audit log. The target's own
     * national ID column always does.
     */
    national_id: z.boolean().optional(),
  })
  .strict();
export type ColumnMapping = z.infer<typeof columnMapping>;

const connection = z.union([z.string().min(1), z.record(z.string(), z.unknown())]);

const sqlSource = z
  .object({
    kind: z.literal('sql'),
    /** Any knex client: better-sqlite3, pg, mysql2, mssql. */
    client: z.enum(['better-sqlite3', 'sqlite3', 'pg', 'postgres', 'mysql2', 'mysql', 'mssql']),
    connection,
    table: z.string().min(1).optional(),
    query: z.string().min(1).optional(),
    /** Column whose value only grows when a row changes: an updated_at timestamp, a rowversion or a sequence. */
    cursor: z.string().min(1).optional(),
    /** Soft delete: rows whose column equals value are deletions. */
    deleted_flag: z
      .object({ column: z.string().min(1), value: z.union([z.string(), z.number(), z.boolean()]) })
      .strict()
      .optional(),
    /** Tombstone table: one row per deleted record, with the record key and a cursor of its own. */
    tombstones: z
      .object({ table: z.string().min(1), key: z.array(z.string().min(1)).min(1), cursor: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict()
  .refine((s) => (s.table === undefined) !== (s.query === undefined), {
    message: 'give exactly one of table or query',
    path: ['table'],
  });

const csvSource = z
  .object({
    kind: z.literal('csv'),
    path: z.string().min(1),
    delimiter: z.string().min(1).max(4).default(','),
    /** Any encoding iconv-lite knows: utf-8, windows-1256, iso-8859-6, utf-16le, ... */
    encoding: z.string().min(1).default('utf-8'),
    /** true: the first line names the columns; otherwise the list of column names. */
    header: z.union([z.literal(true), z.array(z.string().min(1)).min(1)]).default(true),
    quote: z.string().length(1).default('"'),
    cursor: z.string().min(1).optional(),
    deleted_flag: z
      .object({ column: z.string().min(1), value: z.union([z.string(), z.number(), z.boolean()]) })
      .strict()
      .optional(),
  })
  .strict();

const httpSource = z
  .object({
    kind: z.literal('http'),
    url: z.string().url(),
    /** Header values may name environment variables as ${NAME}, so secrets stay out of the file. */
    headers: z.record(z.string(), z.string()).default({}),
    /** Dotted path to the array of records in each response body ("" for a top-level array). */
    records: z.string().default(''),
    pagination: z
      .discriminatedUnion('style', [
        z.object({ style: z.literal('none') }).strict(),
        z
          .object({
            style: z.literal('page'),
            page_param: z.string().default('page'),
            size_param: z.string().default('page_size'),
            page_size: z.number().int().positive().max(10000).default(500),
            first_page: z.number().int().min(0).default(1),
          })
          .strict(),
        z
          .object({
            style: z.literal('offset'),
            offset_param: z.string().default('offset'),
            limit_param: z.string().default('limit'),
            page_size: z.number().int().positive().max(10000).default(500),
          })
          .strict(),
        z
          .object({
            style: z.literal('cursor'),
            /** Dotted path in the body to the next cursor; absent or null ends the pages. */
            next_path: z.string().min(1),
            cursor_param: z.string().default('cursor'),
          })
          .strict(),
      ])
      .default({ style: 'none' }),
    /** Incremental runs send the watermark in this query parameter. */
    since_param: z.string().min(1).optional(),
    cursor: z.string().min(1).optional(),
    deleted_flag: z
      .object({ column: z.string().min(1), value: z.union([z.string(), z.number(), z.boolean()]) })
      .strict()
      .optional(),
    timeout_ms: z.number().int().positive().default(30000),
  })
  .strict();

const dciSource = z
  .object({
    kind: z.literal('dci'),
    /** Base URL of a DCI registry API, e.g. https://crvs.example.org/dci/crvs (its /registry/sync/search is called). */
    url: z.string().url(),
    /** Bearer token; name an environment variable as ${NAME} so the secret stays out of the file. */
    token: z.string().min(1),
    query_type: z.enum(['idtype-value', 'expression', 'predicate']).default('predicate'),
    /** The DCI query: a predicate list, an expression or {type, value}; incremental runs add a predicate on cursor_attribute. */
    query: z.unknown(),
    response_entity: z.string().min(1).optional(),
    page_size: z.number().int().positive().max(1000).default(500),
    /** Field of the (flattened) record whose value only grows, e.g. a registration or update date. */
    cursor: z.string().min(1).optional(),
    /** The DCI attribute the registry filters on for incremental runs (attribute > watermark). */
    cursor_attribute: z.string().min(1).optional(),
    deleted_flag: z
      .object({ column: z.string().min(1), value: z.union([z.string(), z.number(), z.boolean()]) })
      .strict()
      .optional(),
    timeout_ms: z.number().int().positive().default(30000),
  })
  .strict()
  .refine((s) => s.query !== undefined && s.query !== null, {
    message: 'a DCI query is required',
    path: ['query'],
  })
  .refine((s) => s.cursor_attribute === undefined || s.query_type === 'predicate', {
    message: 'incremental reads add a predicate: use query_type predicate with cursor_attribute',
    path: ['cursor_attribute'],
  });

const source = z.discriminatedUnion('kind', [sqlSource, csvSource, httpSource, dciSource]);
export type SourceDefinition = z.infer<typeof source>;
export type SqlSourceDefinition = z.infer<typeof sqlSource>;
export type CsvSourceDefinition = z.infer<typeof csvSource>;
export type HttpSourceDefinition = z.infer<typeof httpSource>;
export type DciSourceDefinition = z.infer<typeof dciSource>;

const connectorSchema = z
  .object({
    name: z
      .string()
      .regex(/^[a-z][a-z0-9-]*$/, 'must be lower-case letters, digits and -')
      .max(64),
    /** Code of the owning entity (CSPD, SSC, ...). */
    entity: z
      .string()
      .regex(/^[A-Z][A-Z0-9_]*$/, 'must be an upper-case code such as CSPD')
      .max(16),
    entity_label: label.optional(),
    description: z.string().optional(),
    source,
    target: z
      .object({
        table: identifier,
        label: label.optional(),
        /** Target column holding the person's national ID. */
        national_id: identifier.default('national_id'),
        /** Target columns that identify one record; defaults to the national ID column. */
        key: z.array(identifier).min(1).optional(),
      })
      .strict(),
    columns: z.record(identifier, columnMapping),
    /**
     * Indexes of the target table beyond the record key and the national ID, each a list of its
     * columns in order: what the saved queries on the table filter, join and sort on.
     */
    indexes: z.array(z.array(identifier).min(1).max(16)).max(32).default([]),
    mode: z.enum(['full', 'incremental']).default('full'),
    schedule: z
      .string()
      .refine((s) => validateCron(s), 'is not a valid cron expression')
      .optional(),
    batch_size: z.number().int().positive().max(100000).default(2000),
  })
  .strict();

export type ConnectorDefinitionInput = z.input<typeof connectorSchema>;
export interface ConnectorDefinition extends z.infer<typeof connectorSchema> {
  /** File the definition was read from, for messages. */
  file: string;
  key: string[];
}

function formatIssuePath(issuePath: readonly PropertyKey[]): string {
  return issuePath
    .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
    .join('')
    .replace(/^\./, '');
}

/** Validates a parsed definition; errors name the file and every bad field. */
export function buildConnectorDefinition(raw: unknown, file: string): ConnectorDefinition {
  const parsed = connectorSchema.safeParse(raw);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${formatIssuePath(i.path) || '(root)'}: ${i.message}`);
    throw new DefinitionError(`${file}: ${fields.join('; ')}`, { file, fields });
  }
  const def = parsed.data;
  const problems: string[] = [];
  const prefix = `${def.entity.toLowerCase()}_`;
  if (!def.target.table.startsWith(prefix) || def.target.table.length === prefix.length) {
    problems.push(`target.table: must be named ${prefix}<name> after its entity ${def.entity}`);
  }
  if (def.target.table.startsWith('hub_')) problems.push('target.table: the hub_ prefix is reserved');
  const columns = Object.keys(def.columns);
  if (!columns.includes(def.target.national_id)) {
    problems.push(`columns: the national ID column ${def.target.national_id} must be mapped`);
  }
  const key = def.target.key ?? [def.target.national_id];
  for (const k of key) if (!columns.includes(k)) problems.push(`target.key: ${k} is not a mapped column`);
  for (const [name, col] of Object.entries(def.columns)) {
    if (
      (col.type === 'date' || col.type === 'datetime') &&
      col.format !== undefined &&
      !col.format.includes('YYYY')
    ) {
      problems.push(`columns.${name}.format: must contain a year (YYYY)`);
    }
    if (col.codes !== undefined && col.type === 'boolean' && col.true_values !== undefined) {
      problems.push(`columns.${name}: give codes or true_values, not both`);
    }
  }
  const declared = new Set<string>();
  def.indexes.forEach((index, i) => {
    const unknown = index.filter((c) => !columns.includes(c));
    if (unknown.length > 0)
      problems.push(
        `indexes[${i}]: ${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not a mapped column`,
      );
    if (new Set(index).size !== index.length) problems.push(`indexes[${i}]: a column is listed twice`);
    if (declared.has(index.join(','))) problems.push(`indexes[${i}]: the same index is declared twice`);
    declared.add(index.join(','));
  });
  if (def.mode === 'incremental' && def.source.cursor === undefined) {
    problems.push('source.cursor: incremental mode needs a cursor column');
  }
  if (problems.length > 0)
    throw new DefinitionError(`${file}: ${problems.join('; ')}`, { file, fields: problems });
  return { ...def, file, key };
}

export async function readConnectorDefinition(file: string): Promise<ConnectorDefinition> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DefinitionError(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
      file,
    });
  }
  let raw: unknown;
  try {
    raw = file.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new DefinitionError(
      `${file}: not valid ${file.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`,
      {
        file,
      },
    );
  }
  return buildConnectorDefinition(raw, file);
}

/** A definition file that cannot be used, and why: the message names the file and every bad field. */
export interface InvalidDefinition {
  file: string;
  message: string;
  fields: string[];
}

export interface ConnectorFolder {
  definitions: ConnectorDefinition[];
  /** Skipped files, in file order. */
  invalid: InvalidDefinition[];
}

/**
 * Reads every *.yaml, *.yml and *.json definition in a folder. One bad file is reported and
 * skipped, never a reason to stop the others: the hub keeps serving and loading what is
 * valid. A name or a target table already taken by an earlier file (in file order) makes the
 * later file the invalid one, so adding a file never silently replaces a running connector.
 */
export async function readConnectorFolder(folder: string): Promise<ConnectorFolder> {
  let names: string[];
  try {
    names = (await readdir(folder)).filter((n) => /\.(ya?ml|json)$/.test(n)).sort();
  } catch {
    return { definitions: [], invalid: [] };
  }
  const definitions: ConnectorDefinition[] = [];
  const invalid: InvalidDefinition[] = [];
  const seen = new Map<string, string>();
  const tables = new Map<string, string>();
  for (const n of names) {
    const file = path.join(folder, n);
    try {
      const d = await readConnectorDefinition(file);
      const other = seen.get(d.name);
      if (other !== undefined)
        throw new DefinitionError(`${d.file}: name: ${d.name} is already defined in ${other}`, {
          file,
          fields: ['name'],
        });
      const owner = tables.get(d.target.table);
      if (owner !== undefined) {
        throw new DefinitionError(
          `${d.file}: target.table: ${d.target.table} is already loaded by ${owner}`,
          {
            file,
            fields: ['target.table'],
          },
        );
      }
      seen.set(d.name, d.file);
      tables.set(d.target.table, d.file);
      definitions.push(d);
    } catch (err) {
      if (!(err instanceof DefinitionError)) throw err;
      const fields = err.details?.fields;
      invalid.push({ file, message: err.message, fields: Array.isArray(fields) ? fields.map(String) : [] });
    }
  }
  return { definitions, invalid };
}

/** Every definition in a folder, or the first invalid file's error: for callers that need all or nothing. */
export async function readConnectorDefinitions(folder: string): Promise<ConnectorDefinition[]> {
  const { definitions, invalid } = await readConnectorFolder(folder);
  const first = invalid[0];
  if (first !== undefined)
    throw new DefinitionError(first.message, { file: first.file, fields: first.fields });
  return definitions;
}
