import assert from 'node:assert/strict';
import { countIdleCores, type CoreTimes } from '../../../warehouse/dialects/idle-cores.ts';

const core = (user: number, idle: number, sys = 0) => ({ times: { user, nice: 0, sys, idle, irq: 0 } });

describe('idle cores between two looks at the CPU times', () => {
  it('one core busy and one idle over the window is one idle core', () => {
    const before: CoreTimes = [core(1000, 5000), core(2000, 4000)];
    const after: CoreTimes = [core(1900, 5000, 100), core(2000, 5000)];
    assert.equal(countIdleCores(before, after), 1);
  });

  it('both cores busy half the time is one idle core; both busy is none', () => {
    const before: CoreTimes = [core(0, 0), core(0, 0)];
    assert.equal(countIdleCores(before, [core(500, 500), core(500, 500)]), 1);
    assert.equal(countIdleCores(before, [core(1000, 0), core(900, 0, 100)]), 0);
  });

  it('looks that do not compare (no time passed, a core more or less) say nothing', () => {
    const before: CoreTimes = [core(10, 10), core(10, 10)];
    assert.equal(countIdleCores(before, before), null);
    assert.equal(countIdleCores(before, [core(20, 20)]), null);
    assert.equal(countIdleCores([], []), null);
  });
});
