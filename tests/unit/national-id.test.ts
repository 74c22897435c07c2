import assert from 'node:assert/strict';
import {
  DEFAULT_NATIONAL_ID_RULE,
  buildNationalId,
  computeLuhnDigit,
  explainInvalidNationalId,
  type NationalIdRule,
} from '../../warehouse/core/national-id.ts';

const luhn: NationalIdRule = { length: 10, checkDigit: 'luhn' };
const none: NationalIdRule = { length: 10, checkDigit: 'none' };

describe('national ID', () => {
  describe('computeLuhnDigit', () => {
    it('gives the check digit of known vectors', () => {
      // Classic examples: 79927398713, the Visa test card 4111 1111 1111 1111, IMEI 490154203237518.
      assert.equal(computeLuhnDigit('7992739871'), 3);
      assert.equal(computeLuhnDigit('411111111111111'), 1);
      assert.equal(computeLuhnDigit('49015420323751'), 8);
      assert.equal(computeLuhnDigit('000000000'), 0);
      assert.equal(computeLuhnDigit('1'), 8);
      assert.equal(computeLuhnDigit('5'), 9);
    });

    it('makes every single-digit substitution detectable', () => {
      const payload = '123456789';
      const digit = computeLuhnDigit(payload);
      for (let i = 0; i < payload.length; i++) {
        for (let d = 0; d <= 9; d++) {
          if (String(d) === payload[i]) continue;
          const changed = payload.slice(0, i) + String(d) + payload.slice(i + 1);
          assert.notEqual(computeLuhnDigit(changed), digit, `substitution at ${i} by ${d} is not detected`);
        }
      }
    });
  });

  describe('buildNationalId', () => {
    it('appends the Luhn digit under the default rule', () => {
      assert.deepEqual(DEFAULT_NATIONAL_ID_RULE, luhn);
      assert.equal(buildNationalId('799273987'), `799273987${computeLuhnDigit('799273987')}`);
      assert.equal(buildNationalId('799273987').length, 10);
      assert.equal(explainInvalidNationalId(buildNationalId('990123456'), luhn), null);
    });

    it('returns the payload unchanged under checkDigit none', () => {
      assert.equal(buildNationalId('1234567890', none), '1234567890');
    });
  });

  describe('explainInvalidNationalId', () => {
    const valid = buildNationalId('990123456', luhn);

    it('accepts a valid ID', () => {
      assert.equal(explainInvalidNationalId(valid, luhn), null);
      assert.equal(explainInvalidNationalId('79927398713', { length: 11, checkDigit: 'luhn' }), null);
    });

    it('explains a wrong length with the expected and actual counts', () => {
      assert.equal(explainInvalidNationalId('123', luhn), 'national ID must have 10 digits, got 3');
      assert.equal(explainInvalidNationalId('', luhn), 'national ID must have 10 digits, got 0');
      assert.equal(explainInvalidNationalId(`${valid}1`, luhn), 'national ID must have 10 digits, got 11');
    });

    it('explains non-digits', () => {
      for (const id of ['99012345X6', ' 990123456', '99012345.6', '-990123456', '١٢٣٤٥٦٧٨٩٠']) {
        assert.equal(explainInvalidNationalId(id, luhn), 'national ID must contain digits only', id);
      }
    });

    it('explains a wrong check digit', () => {
      for (let d = 0; d <= 9; d++) {
        const id = valid.slice(0, -1) + String(d);
        const expected = id === valid ? null : 'national ID check digit is wrong';
        assert.equal(explainInvalidNationalId(id, luhn), expected);
      }
    });

    it('checks the length before the digits', () => {
      assert.equal(explainInvalidNationalId('abc', luhn), 'national ID must have 10 digits, got 3');
    });

    describe("checkDigit 'none'", () => {
      it('accepts any digits of the right length', () => {
        assert.equal(explainInvalidNationalId('0000000000', none), null);
        assert.equal(
          explainInvalidNationalId(valid.slice(0, -1) + String((Number(valid.at(-1)) + 1) % 10), none),
          null,
        );
      });

      it('still checks length and digits', () => {
        assert.equal(explainInvalidNationalId('123456789', none), 'national ID must have 10 digits, got 9');
        assert.equal(explainInvalidNationalId('12345678AB', none), 'national ID must contain digits only');
      });

      it('follows the configured length', () => {
        const twelve: NationalIdRule = { length: 12, checkDigit: 'none' };
        assert.equal(explainInvalidNationalId('123456789012', twelve), null);
        assert.equal(
          explainInvalidNationalId('1234567890', twelve),
          'national ID must have 12 digits, got 10',
        );
      });
    });
  });
});
