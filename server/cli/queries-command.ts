import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { invalidRequest } from '../../warehouse/core/errors.ts';
import { prepareWarehouse } from '../services/connector-service.ts';
import { fetchQueryPlan, fetchQuerySql, listQueries, saveQuery } from '../services/query-service.ts';
import {
  addDatabaseOption,
  buildCliActor,
  withContext,
  withReadContext,
  type GlobalOptions,
} from './cli-context.ts';
import type { CliIo } from './io.ts';

async function readJsonFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw invalidRequest(`${file}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw invalidRequest(`${file}: not valid JSON: ${(err as Error).message}`);
  }
}

export function buildQueriesCommand(io: CliIo): Command {
  const queries = new Command('queries').description(
    "saved queries: each one is an API endpoint of its entity's clients",
  );

  addDatabaseOption(
    queries
      .command('save <file>')
      .description('check a query definition (JSON) against the catalog and grants, and save it'),
  ).action((file: string, options: GlobalOptions) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      const def = await saveQuery(ctx, await readJsonFile(file), buildCliActor());
      io.out(`saved ${def.name} for ${def.entity}: POST /api/v1/queries/${def.name}`);
    }),
  );

  addDatabaseOption(
    queries.command('list').description('saved queries').option('--entity <code>', 'only this entity'),
  ).action((options: GlobalOptions & { entity?: string }) =>
    withReadContext(options, async (ctx) => {
      const rows = await listQueries(ctx, options.entity?.toUpperCase());
      if (rows.length === 0) io.out('no saved queries');
      for (const q of rows) {
        const params = Object.entries(q.params).map(([n, p]) => `${n}:${p.type}${p.required ? '' : '?'}`);
        io.out(`${q.name}\t${params.join(', ') || '-'}\t${q.description}`);
      }
    }),
  );

  addDatabaseOption(
    queries.command('sql <name>').description('the parameterized SQL the query runs on this warehouse'),
  ).action((name: string, options: GlobalOptions) =>
    withReadContext(options, async (ctx) => {
      const { sql, bindings } = await fetchQuerySql(ctx, name);
      io.out(sql);
      io.out(`-- bindings: ${JSON.stringify(bindings)}`);
    }),
  );

  addDatabaseOption(
    queries
      .command('explain <name>')
      .description(
        "the database's plan for the query's first page (EXPLAIN QUERY PLAN on SQLite, EXPLAIN on PostgreSQL)",
      )
      .option('--param <name=value>', 'a parameter value (repeat for each)', collectParam, {}),
  ).action((name: string, options: GlobalOptions & { param: Record<string, string> }) =>
    withReadContext(options, async (ctx) => {
      const { sql, bindings, plan, placeholders } = await fetchQueryPlan(ctx, name, options.param);
      io.out(sql);
      io.out(`-- bindings: ${JSON.stringify(bindings)}`);
      for (const p of placeholders) io.out(`-- ${p}: not given, planned with a placeholder value`);
      for (const line of plan) io.out(line);
    }),
  );
  return queries;
}

function collectParam(text: string, previous: Record<string, string>): Record<string, string> {
  const at = text.indexOf('=');
  if (at < 1) throw new InvalidArgumentError(`expected name=value, got ${JSON.stringify(text)}`);
  return { ...previous, [text.slice(0, at)]: text.slice(at + 1) };
}
