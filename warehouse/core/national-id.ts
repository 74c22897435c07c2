/**
 * National ID rule of a deployment. The demo country uses 10 digits whose last digit is a
 * Luhn check digit over the first nine; other countries configure their own length and scheme.
 */
export interface NationalIdRule {
  length: number;
  checkDigit: 'luhn' | 'none';
}

export const DEFAULT_NATIONAL_ID_RULE: NationalIdRule = { length: 10, checkDigit: 'luhn' };

export function computeLuhnDigit(payload: string): number {
  let sum = 0;
  for (let i = 0; i < payload.length; i++) {
    // Double every second digit counting from the right of the payload (the check digit is appended).
    let d = payload.charCodeAt(payload.length - 1 - i) - 48;
    if (i % 2 === 0) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return (10 - (sum % 10)) % 10;
}

/** Returns why the value is not a valid national ID, or null when it is. */
export function explainInvalidNationalId(value: string, rule: NationalIdRule): string | null {
  if (value.length !== rule.length) return `national ID must have ${rule.length} digits, got ${value.length}`;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) return 'national ID must contain digits only';
  }
  if (rule.checkDigit === 'luhn') {
    const expected = computeLuhnDigit(value.slice(0, -1));
    if (value.charCodeAt(value.length - 1) - 48 !== expected) return 'national ID check digit is wrong';
  }
  return null;
}

export function buildNationalId(payload: string, rule: NationalIdRule = DEFAULT_NATIONAL_ID_RULE): string {
  if (rule.checkDigit === 'none') return payload;
  return payload + String(computeLuhnDigit(payload));
}
