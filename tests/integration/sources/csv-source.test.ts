import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import iconv from 'iconv-lite';
import { buildConnectorDefinition } from '../../../connectors/definition.ts';
import type { ConnectorDefinition } from '../../../connectors/definition.ts';
import { isPastWatermark } from '../../../connectors/compare-cursor.ts';
import { openSource } from '../../../connectors/sources/open-source.ts';
import type { SourceRecord } from '../../../connectors/sources/source.ts';
import { readSourceRecords as readAll } from '../../support/load-source-records.ts';

const fixtures = fileURLToPath(new URL('../../fixtures/', import.meta.url));

function csvDefinition(source: Record<string, unknown>, folder = fixtures): ConnectorDefinition {
  const raw = {
    name: 'cspd-people',
    entity: 'CSPD',
    source: { kind: 'csv', ...source },
    target: { table: 'cspd_people' },
    columns: { national_id: { type: 'string' } },
  };
  return buildConnectorDefinition(raw, path.join(folder, 'cspd-people.yaml'));
}

const arabic = {
  path: 'csv-semicolon-arabic-windows1256.csv',
  delimiter: ';',
  encoding: 'windows-1256',
  cursor: 'updated_at',
};

describe('CSV source', () => {
  it('decodes a windows-1256 export with semicolons and keeps the Arabic text intact', async () => {
    const records = await readAll(csvDefinition(arabic));
    assert.deepEqual(records, [
      {
        national_id: '9871000001',
        full_name: 'محمد عبد الله',
        governorate: 'عمّان',
        updated_at: '2024-01-05T08:00:00Z',
      },
      {
        national_id: '9871000002',
        full_name: 'فاطمة; الزهراء',
        governorate: 'إربد',
        updated_at: '2024-02-10T09:30:00Z',
      },
      {
        national_id: '9871000003',
        full_name: 'عليّ بن حسين',
        governorate: 'الزرقاء',
        updated_at: '2024-03-15T12:00:00Z',
      },
    ]);
  });

  it('reads only records past an ISO timestamp watermark', async () => {
    const records = await readAll(csvDefinition(arabic), { since: '2024-02-10T09:30:00Z' });
    assert.deepEqual(
      records.map((r) => r.national_id),
      ['9871000003'],
    );
  });

  it('names the columns of a headerless file from the definition and keeps ragged lines as records', async () => {
    const def = csvDefinition({
      path: 'csv-headerless-pipe-numeric-cursor.csv',
      delimiter: '|',
      header: ['national_id', 'name', 'version'],
    });
    const records = await readAll(def);
    assert.equal(records.length, 6);
    assert.deepEqual(records[0], { national_id: '9871000001', name: 'Ahmad', version: '7' });
    assert.deepEqual(records[5], { national_id: '9871000006', name: 'Zaid' });
  });

  it('compares numeric cursors as numbers, so 10 is past 9', async () => {
    const def = csvDefinition({
      path: 'csv-headerless-pipe-numeric-cursor.csv',
      delimiter: '|',
      header: ['national_id', 'name', 'version'],
      cursor: 'version',
    });
    const records = await readAll(def, { since: '9' });
    assert.deepEqual(
      records.map((r) => r.name),
      ['Sara', 'Lina'],
    );
  });

  it('strips a UTF-8 byte order mark from the first column name', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'csv-source-'));
    try {
      await writeFile(path.join(folder, 'bom.csv'), '\uFEFFnational_id,name\n9871000001,سارة\n', 'utf8');
      const records = await readAll(csvDefinition({ path: 'bom.csv' }, folder));
      assert.deepEqual(records, [{ national_id: '9871000001', name: 'سارة' }]);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('reads a file larger than any stream buffer record by record', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'csv-source-'));
    try {
      const lines = ['national_id;name'];
      for (let i = 0; i < 20000; i++) lines.push(`${9871000000 + i};مواطن رقم ${i}`);
      await writeFile(path.join(folder, 'big.csv'), iconv.encode(lines.join('\n'), 'windows-1256'));
      let count = 0;
      let last: SourceRecord | undefined;
      const source = openSource(
        csvDefinition({ path: 'big.csv', delimiter: ';', encoding: 'windows-1256' }, folder),
      );
      for await (const record of source.read({ since: null })) {
        count++;
        last = record;
      }
      await source.close();
      assert.equal(count, 20000);
      assert.deepEqual(last, { national_id: '9871019999', name: 'مواطن رقم 19999' });
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('fails a missing file with an error naming the connector and the path', async () => {
    const def = csvDefinition({ path: 'no-such-export.csv' });
    await assert.rejects(readAll(def), (err: Error) => {
      assert.match(err.message, /cspd-people/);
      assert.ok(err.message.includes(path.join(fixtures, 'no-such-export.csv')), err.message);
      assert.match(err.message, /not found/);
      return true;
    });
  });

  it('refuses an unknown encoding when the source is opened', () => {
    const def = csvDefinition({ path: 'csv-unclosed-quote.csv', encoding: 'windows-9999' });
    assert.throws(() => openSource(def), /cspd-people.*unknown encoding "windows-9999"/);
  });

  it('surfaces an unclosed quote as an error during iteration, after the good records', async () => {
    const source = openSource(csvDefinition({ path: 'csv-unclosed-quote.csv' }));
    const seen: SourceRecord[] = [];
    await assert.rejects(
      (async () => {
        for await (const record of source.read({ since: null })) seen.push(record);
      })(),
      (err: Error) => {
        assert.match(err.message, /cspd-people/);
        assert.match(err.message, /csv-unclosed-quote\.csv/);
        assert.match(err.message, /Quote Not Closed/);
        return true;
      },
    );
    await source.close();
    assert.deepEqual(
      seen.map((r) => r.national_id),
      ['9871000001'],
    );
  });

  it('can be abandoned part way and closed', async () => {
    const source = openSource(csvDefinition(arabic));
    for await (const record of source.read({ since: null })) {
      assert.equal(record.national_id, '9871000001');
      break;
    }
    await source.close();
  });
});

describe('isPastWatermark', () => {
  it('compares numbers numerically, big integers exactly, and other text as strings', () => {
    assert.equal(isPastWatermark('10', '9'), true);
    assert.equal(isPastWatermark('9.5', '10'), false);
    assert.equal(isPastWatermark(12, '11.5'), true);
    assert.equal(isPastWatermark('9007199254740993', '9007199254740992'), true);
    assert.equal(isPastWatermark('2024-03-01T00:00:00Z', '2024-02-29T23:59:59Z'), true);
    assert.equal(isPastWatermark('2024-02-29', '2024-02-29'), false);
    assert.equal(isPastWatermark(new Date('2024-03-01T00:00:00Z'), '2024-02-29T23:59:59.000Z'), true);
  });

  it('never treats a missing or empty cursor as past the watermark', () => {
    assert.equal(isPastWatermark('', '0'), false);
    assert.equal(isPastWatermark(null, '0'), false);
    assert.equal(isPastWatermark(undefined, '0'), false);
  });
});
