import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  buildConnectorDefinition,
  readConnectorDefinition,
  readConnectorDefinitions,
} from '../../../connectors/definition.ts';
import { DefinitionError } from '../../../warehouse/core/errors.ts';

const fixtures = fileURLToPath(new URL('../../fixtures/connectors/', import.meta.url));
const fixture = (name: string) => path.join(fixtures, name);

/** Asserts the promise rejects with a DefinitionError whose message starts with the file and names the field. */
async function assertDefinitionError(
  promise: Promise<unknown>,
  file: string,
  field: string | null,
  detail?: RegExp,
) {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof DefinitionError, `expected a DefinitionError, got ${String(err)}`);
    assert.equal(err.code, 'invalid_definition');
    assert.equal(err.status, 400);
    assert.ok(err.message.startsWith(`${file}: `), `message does not start with the file: ${err.message}`);
    if (field !== null) {
      assert.ok(
        err.message.includes(`: ${field}: `),
        `message does not name the field ${field}: ${err.message}`,
      );
    }
    if (detail !== undefined) assert.match(err.message, detail);
    return true;
  });
}

const minimal = {
  name: 'cspd-people',
  entity: 'CSPD',
  source: { kind: 'csv', path: 'people.csv' },
  target: { table: 'cspd_people' },
  columns: { national_id: {} },
};

describe('connector definitions', () => {
  describe('readConnectorDefinition: bad files', () => {
    it('rejects a definition without a source, naming source', async () => {
      const file = fixture('bad-missing-source.yaml');
      await assertDefinitionError(readConnectorDefinition(file), file, 'source', /expected object/);
    });

    it('rejects an unknown source kind, naming source.kind', async () => {
      const file = fixture('bad-source-kind.yaml');
      await assertDefinitionError(
        readConnectorDefinition(file),
        file,
        'source.kind',
        /'sql' \| 'csv' \| 'http'/,
      );
    });

    it('rejects a target table without its entity prefix, naming target.table', async () => {
      const file = fixture('bad-table-prefix.yaml');
      await assertDefinitionError(
        readConnectorDefinition(file),
        file,
        'target.table',
        /must be named cspd_<name>/,
      );
    });

    it('rejects a column named name* (a CASL pattern), naming columns.name*', async () => {
      const file = fixture('bad-identifier-star.json');
      await assertDefinitionError(readConnectorDefinition(file), file, 'columns.name*');
    });

    it('rejects a schedule that is not a cron expression, naming schedule', async () => {
      const file = fixture('bad-cron.yaml');
      await assertDefinitionError(
        readConnectorDefinition(file),
        file,
        'schedule',
        /not a valid cron expression/,
      );
    });

    it('rejects incremental mode without a cursor, naming source.cursor', async () => {
      const file = fixture('bad-incremental-without-cursor.yaml');
      await assertDefinitionError(
        readConnectorDefinition(file),
        file,
        'source.cursor',
        /incremental mode needs a cursor/,
      );
    });

    it('rejects a YAML syntax error, naming the file and the line', async () => {
      const file = fixture('bad-yaml-syntax.yaml');
      await assertDefinitionError(readConnectorDefinition(file), file, null, /not valid YAML: .*line \d+/);
    });

    it('rejects valid YAML that is not an object', async () => {
      const file = fixture('bad-not-an-object.yaml');
      await assertDefinitionError(
        readConnectorDefinition(file),
        file,
        '(root)',
        /expected object, received array/,
      );
    });

    it('rejects a missing file, naming it and the error code', async () => {
      const file = fixture('no-such-connector.yaml');
      await assertDefinitionError(readConnectorDefinition(file), file, null, /cannot be read \(ENOENT\)/);
    });

    it('lists the fields in the error details', async () => {
      const file = fixture('bad-cron.yaml');
      await assert.rejects(readConnectorDefinition(file), (err: unknown) => {
        assert.ok(err instanceof DefinitionError);
        assert.deepEqual(err.details, { file, fields: ['schedule: is not a valid cron expression'] });
        return true;
      });
    });
  });

  describe('readConnectorDefinition: a good file', () => {
    it('applies the defaults', async () => {
      const file = fixture('good-csv.yaml');
      const def = await readConnectorDefinition(file);
      assert.equal(def.file, file);
      assert.equal(def.name, 'cspd-people');
      assert.equal(def.mode, 'full');
      assert.equal(def.batch_size, 2000);
      assert.equal(def.schedule, undefined);
      assert.equal(def.target.national_id, 'national_id');
      assert.deepEqual(def.key, ['national_id']);
      assert.deepEqual(def.source, {
        kind: 'csv',
        path: 'people.csv',
        delimiter: ',',
        encoding: 'utf-8',
        header: true,
        quote: '"',
      });
      assert.deepEqual(Object.keys(def.columns), ['national_id', 'full_name_ar', 'birth_date']);
      assert.deepEqual(def.columns.national_id, { type: 'string', required: true, trim: true });
      assert.deepEqual(def.columns.full_name_ar, {
        from: 'name_ar',
        type: 'string',
        required: false,
        length: 120,
        trim: true,
      });
      assert.deepEqual(def.columns.birth_date, {
        type: 'date',
        required: false,
        format: 'DD/MM/YYYY',
        trim: true,
      });
    });
  });

  describe('readConnectorDefinitions', () => {
    it('rejects two files sharing a connector name, naming the second file and the first', async () => {
      const folder = fixture('duplicate-name');
      const second = path.join(folder, 'b-people-again.yaml');
      const first = path.join(folder, 'a-people.yaml');
      await assert.rejects(readConnectorDefinitions(folder), (err: unknown) => {
        assert.ok(err instanceof DefinitionError);
        assert.equal(err.message, `${second}: name: cspd-people is already defined in ${first}`);
        return true;
      });
    });

    it('returns no definitions for a missing folder', async () => {
      assert.deepEqual(await readConnectorDefinitions(fixture('no-such-folder')), []);
    });
  });

  describe('buildConnectorDefinition', () => {
    it('takes the key from target.key when given', () => {
      const def = buildConnectorDefinition(
        {
          ...minimal,
          target: { table: 'cspd_people', key: ['national_id', 'seq'] },
          columns: { national_id: {}, seq: { type: 'integer' } },
        },
        'f.yaml',
      );
      assert.deepEqual(def.key, ['national_id', 'seq']);
    });

    it('names every bad field at once', () => {
      assert.throws(
        () => buildConnectorDefinition({ ...minimal, mode: 'sometimes', batch_size: 0 }, 'f.yaml'),
        (err: unknown) => {
          assert.ok(err instanceof DefinitionError);
          assert.match(err.message, /^f\.yaml: /);
          assert.match(err.message, /mode: /);
          assert.match(err.message, /batch_size: /);
          return true;
        },
      );
    });

    it('rejects the reserved hub_ prefix, an unmapped national ID column and an unmapped key', () => {
      assert.throws(
        () =>
          buildConnectorDefinition({ ...minimal, entity: 'HUB', target: { table: 'hub_people' } }, 'f.yaml'),
        /^DefinitionError: f\.yaml: target\.table: the hub_ prefix is reserved$/,
      );
      assert.throws(
        () => buildConnectorDefinition({ ...minimal, columns: { nid: {} } }, 'f.yaml'),
        /columns: the national ID column national_id must be mapped/,
      );
      assert.throws(
        () =>
          buildConnectorDefinition({ ...minimal, target: { table: 'cspd_people', key: ['seq'] } }, 'f.yaml'),
        /target\.key: seq is not a mapped column/,
      );
    });

    it('rejects a date format without a year and codes combined with true_values', () => {
      assert.throws(
        () =>
          buildConnectorDefinition(
            { ...minimal, columns: { national_id: {}, dob: { type: 'date', format: 'DD/MM' } } },
            'f.yaml',
          ),
        /columns\.dob\.format: must contain a year \(YYYY\)/,
      );
      assert.throws(
        () =>
          buildConnectorDefinition(
            {
              ...minimal,
              columns: {
                national_id: {},
                active: { type: 'boolean', codes: { A: true }, true_values: ['Y'] },
              },
            },
            'f.yaml',
          ),
        /columns\.active: give codes or true_values, not both/,
      );
    });

    it('rejects unknown fields (typos) in a column', () => {
      assert.throws(
        () =>
          buildConnectorDefinition({ ...minimal, columns: { national_id: { requried: true } } }, 'f.yaml'),
        /^DefinitionError: f\.yaml: columns\.national_id: .*requried/,
      );
    });
  });
});
