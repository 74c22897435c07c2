import type { Knex } from 'knex';
import type { Clock } from './core/clock.ts';
import { fetchCatalog, type CatalogTable } from './catalog.ts';

const DEFAULT_TTL_MS = 5_000;

/**
 * The catalog changes only when connector definitions change, yet every API request needs it:
 * it is read at most once per few seconds per process. Grants are not cached here; they have
 * their own version check on every request.
 */
export class CatalogCache {
  private tables: CatalogTable[] | null = null;
  private readAt = 0;

  constructor(
    private readonly knex: Knex,
    private readonly clock: Clock,
    private readonly ttlMs = DEFAULT_TTL_MS,
  ) {}

  async fetch(): Promise<CatalogTable[]> {
    const now = this.clock.now().getTime();
    if (this.tables === null || now - this.readAt >= this.ttlMs || now < this.readAt) {
      this.tables = await fetchCatalog(this.knex);
      this.readAt = now;
    }
    return this.tables;
  }

  invalidate(): void {
    this.tables = null;
  }
}
