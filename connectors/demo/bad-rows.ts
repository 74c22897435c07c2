import type { Random } from './seeded-random.ts';

/** About 0.2% of a source's rows are bad, and never fewer than two, so tiny demos still show rejects. */
export const BAD_ROW_RATE = 0.002;
export const MIN_BAD_ROWS = 2;

/**
 * Decides, after each good row, whether a bad one follows, and which corruption it gets.
 * The first bad rows take the kinds in order (the first kind is always a national ID
 * corruption), so every source shows at least two kinds of reject whatever its size.
 */
export class BadRowPlan<Kind extends string> {
  private emitted = 0;
  private readonly random: Random;
  private readonly kinds: readonly Kind[];

  constructor(random: Random, kinds: readonly Kind[]) {
    if (kinds.length === 0) throw new RangeError('a bad-row plan needs at least one kind');
    this.random = random;
    this.kinds = kinds;
  }

  shouldFollowGoodRow(): boolean {
    return this.random.chance(BAD_ROW_RATE);
  }

  nextKind(): Kind {
    const kind =
      this.emitted < MIN_BAD_ROWS
        ? this.kinds[this.emitted % this.kinds.length]!
        : this.random.pick(this.kinds);
    this.emitted++;
    return kind;
  }

  /** Bad rows still owed at the end of the source to reach the minimum. */
  get shortfall(): number {
    return Math.max(0, MIN_BAD_ROWS - this.emitted);
  }

  get count(): number {
    return this.emitted;
  }
}

/** A typo in the last digit: still ten digits, but the check digit no longer matches. */
export function withWrongCheckDigit(random: Random, nationalId: string): string {
  const last = nationalId.charCodeAt(nationalId.length - 1) - 48;
  return nationalId.slice(0, -1) + String((last + random.int(1, 9)) % 10);
}

/** The payload without its check digit, as old systems that predate the check digit keep it. */
export function withoutCheckDigit(nationalId: string): string {
  return nationalId.slice(0, -1);
}

const IMPOSSIBLE_DAYS: readonly [day: string, month: string, year: string][] = [
  ['31', '02', '1990'],
  ['30', '02', '2012'],
  ['31', '04', '2005'],
  ['31', '06', '1978'],
  ['15', '13', '2001'],
  ['00', '07', '1995'],
];

/** A date that matches the format's shape but does not exist. */
export function impossibleDate(random: Random, layout: 'YYYYMMDD' | 'DD/MM/YYYY' | 'DD-MM-YYYY'): string {
  const [day, month, year] = random.pick(IMPOSSIBLE_DAYS);
  if (layout === 'YYYYMMDD') return `${year}${month}${day}`;
  return layout === 'DD/MM/YYYY' ? `${day}/${month}/${year}` : `${day}-${month}-${year}`;
}
