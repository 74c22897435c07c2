import assert from 'node:assert/strict';
import type { WarehouseRow } from '../../../warehouse/core/warehouse-value.ts';
import { buildKeyText, FeedDeletions } from '../../../warehouse/load/feed-deletions.ts';
import type { LoadBatch } from '../../../warehouse/load/load-types.ts';

const batch = (rows: WarehouseRow[], deletes: WarehouseRow[] = []): LoadBatch => ({
  read: rows.length + deletes.length,
  rows,
  rejects: [],
  deletes,
});

/** Rows are [plate, unit, owner]; the record key is (plate, unit). */
const KEY = [0, 1];

describe('deletions followed while a feed is streamed', () => {
  it('a number and its text are the same key, a null is no text', () => {
    assert.equal(buildKeyText(['P-1', 5]), buildKeyText(['P-1', '5']));
    assert.notEqual(buildKeyText([null]), buildKeyText(['null']));
    assert.notEqual(buildKeyText(['a', 'b|c']), buildKeyText(['a|b', 'c']));
  });

  it('ends with the records whose last event is a deletion, whatever the key types', () => {
    const feed = [
      batch([
        ['P-1', 1, 'a'],
        ['P-2', 1, 'b'],
      ]),
      // Within a batch the rows come before the deletions: P-1 is deleted after 'c'.
      batch([['P-1', 1, 'c']], [['P-1', '1']]),
      batch(
        [
          ['P-2', 1, 'd'],
          ['P-3', 1, 'e'],
        ],
        [
          ['P-3', 1],
          ['P-4', 1],
        ],
      ),
      // P-3 is sent again after its deletion; P-4 was never sent.
      batch([['P-3', '1', 'f']]),
    ];
    const deletions = new FeedDeletions(KEY, 10);
    feed.forEach((b) => deletions.note(b));
    assert.deepEqual(deletions.deletedAtEnd(), [
      ['P-1', '1'],
      ['P-4', 1],
    ]);
  });

  it('a record deleted, sent again and deleted again ends deleted', () => {
    const deletions = new FeedDeletions(KEY, 10);
    deletions.note(batch([], [['P-1', 1]]));
    deletions.note(batch([['P-1', 1, 'a']]));
    assert.deepEqual(deletions.deletedAtEnd(), []);
    deletions.note(batch([], [['P-1', '1']]));
    assert.deepEqual(deletions.deletedAtEnd(), [['P-1', '1']]);
  });

  it('is over its limit once more distinct records are deleted than it keeps', () => {
    const deletions = new FeedDeletions(KEY, 1);
    deletions.note(batch([], [['P-1', 1]]));
    deletions.note(batch([], [['P-1', '1']]));
    assert.equal(deletions.overLimit, false);
    deletions.note(batch([], [['P-2', 1]]));
    assert.equal(deletions.overLimit, true);
  });
});
