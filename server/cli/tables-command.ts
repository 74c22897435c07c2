import { Command } from 'commander';
import { describeCatalog, type CatalogTableSummary } from '../services/catalog-service.ts';
import { addDatabaseOption, withContext, type GlobalOptions } from './cli-context.ts';
import type { CliIo } from './io.ts';

const HEADINGS = ['column', 'type', 'English', 'Arabic'];

/** One block per table: its name, owner and labels, then its columns in aligned rows. */
export function formatCatalog(tables: CatalogTableSummary[]): string[] {
  const lines: string[] = [];
  for (const table of tables) {
    if (lines.length > 0) lines.push('');
    lines.push(`${table.table} (${table.entity}) — ${table.label.en} — ${table.label.ar}`);
    const rows = [HEADINGS, ...table.columns.map((c) => [c.name, c.type, c.label.en, c.label.ar])];
    const widths = HEADINGS.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const row of rows) {
      lines.push(
        `  ${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}`,
      );
    }
  }
  return lines;
}

export function buildTablesCommand(io: CliIo): Command {
  return addDatabaseOption(
    new Command('tables')
      .description('the catalog: tables and columns with English and Arabic labels, to write queries from')
      .option('--entity <code>', 'only what this entity may read now (its own tables and its grants)')
      .option('--json', 'print JSON'),
  ).action((options: GlobalOptions & { entity?: string; json?: boolean }) =>
    // Reads the catalog as it is: no migration, no connector sync.
    withContext(options, async (ctx) => {
      const tables = await describeCatalog(ctx, options.entity);
      if (options.json === true) {
        io.out(JSON.stringify(tables, null, 2));
        return;
      }
      if (tables.length === 0) {
        io.out(
          options.entity === undefined
            ? 'the catalog has no tables'
            : `${options.entity.toUpperCase()} may read no table`,
        );
        return;
      }
      for (const line of formatCatalog(tables)) io.out(line);
    }),
  );
}
