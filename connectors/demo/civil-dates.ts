/**
 * Dates as whole days since 1970-01-01, converted with Howard Hinnant's civil-calendar
 * algorithms: millions of dates are formatted per run, and plain integers keep the output
 * independent of the machine's time zone.
 */
export interface CivilDate {
  year: number;
  month: number;
  day: number;
}

export function dayFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

export function civilFromDay(days: number): CivilDate {
  const z = days + 719468;
  const era = Math.floor(z / 146097);
  const dayOfEra = z - era * 146097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36524) - Math.floor(dayOfEra / 146096)) /
      365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const mp = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  return { year: yearOfEra + era * 400 + (month <= 2 ? 1 : 0), month, day };
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));

/** YYYYMMDD */
export function formatCompactDate(days: number): string {
  const d = civilFromDay(days);
  return `${d.year}${pad2(d.month)}${pad2(d.day)}`;
}

/** DD/MM/YYYY */
export function formatSlashedDate(days: number): string {
  const d = civilFromDay(days);
  return `${pad2(d.day)}/${pad2(d.month)}/${d.year}`;
}

/** DD-MM-YYYY */
export function formatDashedDate(days: number): string {
  const d = civilFromDay(days);
  return `${pad2(d.day)}-${pad2(d.month)}-${d.year}`;
}

/** YYYY-MM-DDTHH:mm:ss */
export function formatIsoDateTime(days: number, secondOfDay: number): string {
  const d = civilFromDay(days);
  const hour = Math.floor(secondOfDay / 3600);
  const minute = Math.floor((secondOfDay % 3600) / 60);
  const second = secondOfDay % 60;
  return `${d.year}-${pad2(d.month)}-${pad2(d.day)}T${pad2(hour)}:${pad2(minute)}:${pad2(second)}`;
}

/** Completed years of a person born on birthDay, on day. */
export function ageOn(birthDay: number, day: number): number {
  const b = civilFromDay(birthDay);
  const d = civilFromDay(day);
  const years = d.year - b.year;
  return d.month > b.month || (d.month === b.month && d.day >= b.day) ? years : years - 1;
}
