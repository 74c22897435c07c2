import { dayFromCivil, formatIsoDateTime } from './civil-dates.ts';
import type { Household } from './population.ts';
import type { Random } from './seeded-random.ts';
import type { TableTally } from './tally.ts';

export interface DemoContext {
  sourcesDir: string;
  /** A named random stream derived from the demo's seed. */
  random(stream: string): Random;
  /**
   * A valid national ID of nobody: bad rows whose fault is not the ID carry one, so that no
   * key of a good row repeats in the source.
   */
  nextGhostId(): string;
}

/** One agency's system: it takes the population a household at a time and writes its source. */
export interface AgencyRegistry {
  addHousehold(household: Household): void;
  /** Waits while the agency's files are full (backpressure). */
  flush(): Promise<void>;
  /** Writes the remaining rows, closes the files and counts what each connector will read. */
  finish(): Promise<TableTally[]>;
  abort(): void;
}

const FIRST_UPDATE = dayFromCivil(2026, 1, 2);
const UPDATE_DAYS = 28;

/** Agencies last touched their records in January 2026: fixed dates, so the output never depends on the clock. */
export function drawUpdatedAt(random: Random): string {
  return formatIsoDateTime(FIRST_UPDATE + random.int(0, UPDATE_DAYS - 1), random.int(0, 86_399));
}

export function label(en: string, ar: string): { en: string; ar: string } {
  return { en, ar };
}
