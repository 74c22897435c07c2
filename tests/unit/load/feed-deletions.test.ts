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

describe('deletions noted while a feed is spooled', () => {
  it('a number and its text are the same key, a null is no text', () => {
    assert.equal(buildKeyText(['P-1', 5]), buildKeyText(['P-1', '5']));
    assert.notEqual(buildKeyText([null]), buildKeyText(['null']));
    assert.notEqual(buildKeyText(['a', 'b|c']), buildKeyText(['a|b', 'c']));
  });

  it('leaves out every version written before a record’s last deletion, whatever the key types', () => {
    const feed = [
      batch([
        ['P-1', 1, 'a'],
        ['P-2', 1, 'b'],
      ]),
      batch([['P-1', 1, 'c']], [['P-1', '1']]),
      batch(
        [
          ['P-2', 1, 'd'],
          ['P-3', 1, 'e'],
        ],
        [['P-3', 1]],
      ),
      batch([['P-3', 1, 'f']]),
    ];
    const deletions = new FeedDeletions(10);
    feed.forEach((b) => deletions.note(b));
    const filter = deletions.openFilter(KEY);
    const kept = feed.flatMap((b) => filter.keep(b.rows));
    assert.deepEqual(kept, [
      ['P-2', 1, 'b'],
      ['P-2', 1, 'd'],
      ['P-3', 1, 'f'],
    ]);
    // P-1 ends deleted; P-3 was deleted and then sent again, so it counts for nothing.
    assert.equal(filter.deletedRecords(), 1);
  });

  it('past its limit keeps no keys and says so', () => {
    const deletions = new FeedDeletions(1);
    deletions.note(batch([['P-1', 1, 'a']], [['P-1', 1]]));
    assert.equal(deletions.withinLimit, true);
    deletions.note(batch([], [['P-2', 1]]));
    assert.deepEqual([deletions.withinLimit, deletions.count], [false, 2]);
  });
});
