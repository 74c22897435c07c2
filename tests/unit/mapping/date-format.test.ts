import assert from 'node:assert/strict';
import {
  compileDateFormat,
  formatIsoDate,
  formatIsoDateTime,
  type DateParts,
} from '../../../connectors/mapping/date-format.ts';

const day = (year: number, month: number, dayOfMonth: number): DateParts => ({
  year,
  month,
  day: dayOfMonth,
  hour: 0,
  minute: 0,
  second: 0,
});

describe('compileDateFormat', () => {
  describe('DD/MM/YYYY', () => {
    const parse = compileDateFormat('DD/MM/YYYY');

    it('reads day, month and year in that order', () => {
      assert.deepEqual(parse('17/05/1990'), day(1990, 5, 17));
    });

    it('accepts one-digit day and month between separators', () => {
      assert.deepEqual(parse('1/2/1990'), day(1990, 2, 1));
    });

    it('rejects a two-digit year, a missing field and extra text', () => {
      assert.equal(parse('17/05/90'), null);
      assert.equal(parse('17/05'), null);
      assert.equal(parse('17/05/1990 10:00'), null);
      assert.equal(parse(' 17/05/1990'), null);
    });

    it('rejects another separator', () => {
      assert.equal(parse('17-05-1990'), null);
    });
  });

  describe('YYYYMMDD', () => {
    const parse = compileDateFormat('YYYYMMDD');

    it('reads a full-width date', () => {
      assert.deepEqual(parse('19900517'), day(1990, 5, 17));
    });

    it('requires every field at full width', () => {
      assert.equal(parse('1990517'), null);
      assert.equal(parse('199051'), null);
      assert.equal(parse('199005170'), null);
    });

    it('requires full width for run-together fields even when the format has a separator elsewhere', () => {
      const withTime = compileDateFormat('YYYYMMDD HH:mm');
      assert.deepEqual(withTime('19901102 10:30'), { ...day(1990, 11, 2), hour: 10, minute: 30 });
      // 1990112 could be 11/2 or 1/12: ambiguous, so not a date.
      assert.equal(withTime('1990112 10:30'), null);
      // Between separators, one-digit hours stay fine.
      assert.deepEqual(withTime('19901102 9:05'), { ...day(1990, 11, 2), hour: 9, minute: 5 });
    });
  });

  describe('YYYY-MM-DD HH:mm:ss', () => {
    const parse = compileDateFormat('YYYY-MM-DD HH:mm:ss');

    it('reads date and time', () => {
      assert.deepEqual(parse('2024-02-29 23:59:58'), {
        year: 2024,
        month: 2,
        day: 29,
        hour: 23,
        minute: 59,
        second: 58,
      });
    });

    it('rejects hour 24, minute 60 and second 60', () => {
      assert.equal(parse('2024-01-01 24:00:00'), null);
      assert.equal(parse('2024-01-01 23:60:00'), null);
      assert.equal(parse('2024-01-01 23:59:60'), null);
    });

    it('rejects a date without its time', () => {
      assert.equal(parse('2024-01-01'), null);
    });
  });

  describe('ISO 8601 (no format)', () => {
    const parse = compileDateFormat(undefined);

    it('reads a plain date, with time fields at zero', () => {
      assert.deepEqual(parse('1990-05-17'), day(1990, 5, 17));
    });

    it('reads a date-time with T or a space, with or without seconds', () => {
      const expected = { year: 1990, month: 5, day: 17, hour: 8, minute: 30, second: 15 };
      assert.deepEqual(parse('1990-05-17T08:30:15'), expected);
      assert.deepEqual(parse('1990-05-17 08:30:15'), expected);
      assert.deepEqual(parse('1990-05-17T08:30'), { ...expected, second: 0 });
    });

    it('accepts Z, offsets and fractions of a second, keeping the wall-clock time', () => {
      const expected = { year: 1990, month: 5, day: 17, hour: 8, minute: 30, second: 15 };
      assert.deepEqual(parse('1990-05-17T08:30:15Z'), expected);
      assert.deepEqual(parse('1990-05-17T08:30:15.123Z'), expected);
      assert.deepEqual(parse('1990-05-17T08:30:15.5+03:00'), expected);
      assert.deepEqual(parse('1990-05-17T08:30:15-0500'), expected);
    });

    it('rejects other layouts', () => {
      assert.equal(parse('17/05/1990'), null);
      assert.equal(parse('1990-5-17'), null);
      assert.equal(parse('19900517'), null);
      assert.equal(parse('1990-05-17T08'), null);
      assert.equal(parse('1990-05-17Z'), null);
    });

    it('rejects hour 24', () => {
      assert.equal(parse('1990-05-17T24:00:00'), null);
    });
  });

  describe('impossible dates', () => {
    const parse = compileDateFormat('DD/MM/YYYY');

    it('rejects 31 February and 31 April', () => {
      assert.equal(parse('31/02/1990'), null);
      assert.equal(parse('30/02/1990'), null);
      assert.equal(parse('31/04/1990'), null);
      assert.deepEqual(parse('30/04/1990'), day(1990, 4, 30));
    });

    it('knows leap years: 29/02 in 2024 and 2000, not in 2023 or 1900', () => {
      assert.deepEqual(parse('29/02/2024'), day(2024, 2, 29));
      assert.deepEqual(parse('29/02/2000'), day(2000, 2, 29));
      assert.equal(parse('29/02/2023'), null);
      assert.equal(parse('29/02/1900'), null);
    });

    it('rejects month 0 and month 13, day 0', () => {
      assert.equal(parse('01/13/1990'), null);
      assert.equal(parse('01/00/1990'), null);
      assert.equal(parse('00/01/1990'), null);
    });

    it('rejects impossible ISO dates too', () => {
      assert.equal(compileDateFormat(undefined)('2023-02-29'), null);
      assert.equal(compileDateFormat(undefined)('1990-13-01'), null);
    });
  });

  describe('garbage', () => {
    it('is not a date in any format', () => {
      for (const format of ['DD/MM/YYYY', 'YYYYMMDD', 'YYYY-MM-DD HH:mm:ss', undefined]) {
        const parse = compileDateFormat(format);
        for (const text of ['', 'abc', 'null', '٢٠٢٤-٠١-٠١', '1990-05-17; DROP TABLE x', 'NaN']) {
          assert.equal(parse(text), null, `${String(format)} parsed ${JSON.stringify(text)}`);
        }
      }
    });
  });

  describe('separators that are regular-expression characters', () => {
    it('treats . literally in DD.MM.YYYY', () => {
      const parse = compileDateFormat('DD.MM.YYYY');
      assert.deepEqual(parse('17.05.1990'), day(1990, 5, 17));
      assert.equal(parse('17x05x1990'), null);
      assert.equal(parse('17/05/1990'), null);
    });

    it('treats + * ? ( ) [ ] | \\ $ ^ literally', () => {
      assert.deepEqual(compileDateFormat('DD+MM+YYYY')('17+05+1990'), day(1990, 5, 17));
      assert.equal(compileDateFormat('DD+MM+YYYY')('17055+1990'), null);
      assert.deepEqual(compileDateFormat('(DD)[MM]YYYY')('(17)[05]1990'), day(1990, 5, 17));
      assert.deepEqual(compileDateFormat('DD|MM|YYYY')('17|05|1990'), day(1990, 5, 17));
      assert.equal(compileDateFormat('DD|MM|YYYY')('17'), null);
      assert.deepEqual(compileDateFormat('DD\\MM\\YYYY')('17\\05\\1990'), day(1990, 5, 17));
      assert.deepEqual(compileDateFormat('^DD*MM?YYYY$')('^17*05?1990$'), day(1990, 5, 17));
      assert.equal(compileDateFormat('DD*MM?YYYY')('171990'), null);
    });
  });

  describe('formatting', () => {
    it('renders ISO date and date-time with zero padding', () => {
      const parts = { year: 987, month: 3, day: 4, hour: 5, minute: 6, second: 7 };
      assert.equal(formatIsoDate(parts), '0987-03-04');
      assert.equal(formatIsoDateTime(parts), '0987-03-04 05:06:07');
    });
  });
});
