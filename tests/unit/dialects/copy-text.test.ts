import assert from 'node:assert/strict';
import { encodeCopyRows } from '../../../warehouse/dialects/copy-text.ts';

const text = (rows: Parameters<typeof encodeCopyRows>[0]) => encodeCopyRows(rows).toString('utf8');

describe('COPY text of warehouse rows', () => {
  it('separates values by tabs and rows by newlines, with \\N for NULL and t/f for booleans', () => {
    assert.equal(
      text([
        ['9000000017', 'Amal', null, 42, 1.5, true],
        ['9000000025', '', 'x', -7, 0, false],
      ]),
      '9000000017\tAmal\t\\N\t42\t1.5\tt\n9000000025\t\tx\t-7\t0\tf\n',
    );
  });

  it('escapes backslash, tab, newline and carriage return inside a value, and nothing else', () => {
    assert.equal(
      text([['a\\b\tc\nd\re', 'N\\N', '"quoted",;|']]),
      'a\\\\b\\tc\\nd\\re\tN\\\\N\t"quoted",;|\n',
    );
  });

  it('writes Arabic, emoji (surrogate pairs) and lone surrogates as UTF-8', () => {
    const bytes = encodeCopyRows([['عمر الفاروق', '👩🏽‍⚕️ nurse', 'é', 'half \uD800 pair']]);
    const replacement = Buffer.from([0xef, 0xbf, 0xbd]).toString('utf8');
    assert.deepEqual(bytes, Buffer.from(`عمر الفاروق\t👩🏽‍⚕️ nurse\té\thalf ${replacement} pair\n`, 'utf8'));
  });

  it('grows past its first buffer without losing or reordering a byte', () => {
    const long = 'ب'.repeat(100_000);
    const rows = Array.from({ length: 5 }, (_, i) => [String(i), long, 'x'.repeat(i * 50_000)]);
    const expected = rows.map((r) => r.join('\t') + '\n').join('');
    assert.equal(text(rows), expected);
    assert.equal(encodeCopyRows(rows).length, Buffer.byteLength(expected));
  });

  it('encodes no rows as no bytes', () => {
    assert.equal(encodeCopyRows([]).length, 0);
  });
});
