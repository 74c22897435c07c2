import assert from 'node:assert/strict';
import {
  pauseBeforeTry,
  SQLITE_PAUSE_BETWEEN_STEPS_MS,
  TURN_MAX_PAUSE_MS,
} from '../../../warehouse/dialects/sqlite-turn-writer.ts';

/** Every pause of the schedule, drawn many times: its random part covers its whole range. */
function drawPauses(pausesSoFar: number, maxPauseMs?: number): { least: number; most: number } {
  const drawn = Array.from({ length: 2000 }, () => pauseBeforeTry(pausesSoFar, maxPauseMs));
  return { least: Math.min(...drawn), most: Math.max(...drawn) };
}

describe('pauses between tries for a write lock another process holds', () => {
  it('start at a millisecond, so a lock held briefly is taken soon after its release', () => {
    const { least, most } = drawPauses(0);
    assert.ok(least >= 1 && most <= 1.5, `first pause ${least}–${most} ms`);
  });

  it('double at each try, each lengthened by up to half at random so that two waiters drift apart', () => {
    for (const [pausesSoFar, base] of [
      [1, 2],
      [2, 4],
      [3, 8],
      [4, 16],
    ] as const) {
      const { least, most } = drawPauses(pausesSoFar);
      assert.ok(least >= base && most <= base * 1.5, `pause ${pausesSoFar + 1}: ${least}–${most} ms`);
      assert.ok(most - least > base * 0.25, `pause ${pausesSoFar + 1} varies: ${least}–${most} ms`);
    }
  });

  it('stop growing at 25 ms, so a lock held for seconds is still tried about 30 times a second', () => {
    for (const pausesSoFar of [5, 10, 100, 10_000]) {
      const { least, most } = drawPauses(pausesSoFar);
      assert.ok(least >= 25 && most <= 37.5, `pause ${pausesSoFar + 1}: ${least}–${most} ms`);
    }
  });

  it("stop at 4 ms for a turn of answers, shorter than the lock the serving hub's who-read indexing leaves free after each of its transactions, so a turn waiting through a merge tries in every gap", () => {
    assert.ok(TURN_MAX_PAUSE_MS * 1.5 < SQLITE_PAUSE_BETWEEN_STEPS_MS);
    for (const pausesSoFar of [2, 3, 5, 100]) {
      const { least, most } = drawPauses(pausesSoFar, TURN_MAX_PAUSE_MS);
      assert.ok(least >= 4 && most <= 6, `pause ${pausesSoFar + 1}: ${least}–${most} ms`);
    }
  });
});
