/**
 * A small seeded pseudo-random generator (mulberry32). The demo country must come out
 * byte-identical for the same seed, so nothing here reads Math.random or the clock.
 */
export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [min, max], both included. */
  int(min: number, max: number): number;
  chance(probability: number): boolean;
  pick<T>(items: readonly T[]): T;
}

/** FNV-1a, to turn a stream name into 32 bits. */
function hashName(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/**
 * Each concern draws from its own named stream, so adding a draw in one agency does not
 * shift the numbers of another (nor the population).
 */
export function createRandom(seed: number, stream = ''): Random {
  const high = Math.floor(seed / 0x100000000) >>> 0;
  let state = (seed >>> 0) ^ Math.imul(high, 0x9e3779b1) ^ hashName(stream);
  const next = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    chance: (probability) => next() < probability,
    pick<T>(items: readonly T[]): T {
      const item = items[Math.floor(next() * items.length)];
      if (item === undefined) throw new RangeError('cannot pick from an empty list');
      return item;
    },
  };
}

/** Picks an index with probability proportional to its weight. */
export function pickWeighted(random: Random, weights: readonly number[]): number {
  let total = 0;
  for (const w of weights) total += w;
  let r = random.next() * total;
  for (let i = 0; i < weights.length; i++) {
    r -= weights[i]!;
    if (r < 0) return i;
  }
  return weights.length - 1;
}
