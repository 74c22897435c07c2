/**
 * Source date formats such as DD/MM/YYYY or YYYYMMDD HH:mm, compiled once per column into a
 * regular expression. A general date library parses an order of magnitude slower, and a load
 * converts millions of dates.
 */
const TOKENS: Record<string, DatePart> = {
  YYYY: 'year',
  MM: 'month',
  DD: 'day',
  HH: 'hour',
  mm: 'minute',
  ss: 'second',
};
type DatePart = 'year' | 'month' | 'day' | 'hour' | 'minute' | 'second';

export interface DateParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

export type DateParser = (text: string) => DateParts | null;

const ISO = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/;

export function compileDateFormat(format: string | undefined): DateParser {
  if (format === undefined)
    return (text) => partsFromMatch(ISO.exec(text), ['year', 'month', 'day', 'hour', 'minute', 'second']);
  const tokenAt = (text: string) => Object.keys(TOKENS).find((t) => text.startsWith(t));
  const order: DatePart[] = [];
  let pattern = '';
  let rest = format;
  let afterToken = false;
  while (rest.length > 0) {
    const token = tokenAt(rest);
    if (token !== undefined) {
      rest = rest.slice(token.length);
      // A field run together with another (YYYYMMDD, even in YYYYMMDD HH:mm) must have its full
      // width, or 1990112 would be read as 11/2; between separators, 1/2/1990 is fine.
      const adjacent = afterToken || tokenAt(rest) !== undefined;
      pattern += token === 'YYYY' ? '(\\d{4})' : adjacent ? '(\\d{2})' : '(\\d{1,2})';
      order.push(TOKENS[token]!);
      afterToken = true;
    } else {
      pattern += rest[0]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
      rest = rest.slice(1);
      afterToken = false;
    }
  }
  const regex = new RegExp(`^${pattern}$`);
  return (text) => partsFromMatch(regex.exec(text), order);
}

function partsFromMatch(match: RegExpExecArray | null, order: DatePart[]): DateParts | null {
  if (match === null) return null;
  const parts: DateParts = { year: 0, month: 1, day: 1, hour: 0, minute: 0, second: 0 };
  for (let i = 0; i < order.length; i++) {
    const raw = match[i + 1];
    if (raw !== undefined) parts[order[i]!] = Number(raw);
  }
  return isRealDate(parts) ? parts : null;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function isRealDate(p: DateParts): boolean {
  if (p.month < 1 || p.month > 12 || p.day < 1) return false;
  if (p.hour > 23 || p.minute > 59 || p.second > 59) return false;
  const leap = (p.year % 4 === 0 && p.year % 100 !== 0) || p.year % 400 === 0;
  return p.day <= (p.month === 2 && leap ? 29 : DAYS_IN_MONTH[p.month - 1]!);
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

export function formatIsoDate(p: DateParts): string {
  return `${pad(p.year, 4)}-${pad(p.month)}-${pad(p.day)}`;
}

export function formatIsoDateTime(p: DateParts): string {
  return `${formatIsoDate(p)} ${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
}
