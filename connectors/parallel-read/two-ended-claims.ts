/**
 * Ranges 0 … total-1 handed out from both ends: one thread takes them from the front, the
 * other from the back, until they meet. Both ends live in one 64-bit word (the next front range
 * above, the end of the unclaimed ones below), changed by compare-and-swap, so no range is
 * taken twice and none is left out whichever thread claims when. The front's ranges come first
 * in the source and the back's last, so each thread's share is one stretch of the table: the
 * rows keep their order when the back's stretch is appended after the front's.
 */
export class TwoEndedClaims {
  private readonly word: BigInt64Array;

  constructor(
    readonly buffer: SharedArrayBuffer,
    private readonly total: number,
  ) {
    this.word = new BigInt64Array(buffer);
  }

  /** Claims for `total` ranges, none taken yet. */
  static create(total: number): TwoEndedClaims {
    const claims = new TwoEndedClaims(new SharedArrayBuffer(BigInt64Array.BYTES_PER_ELEMENT), total);
    Atomics.store(claims.word, 0, pack(0, total));
    return claims;
  }

  /** The next range from the front, or null once the ends have met. */
  front(): number | null {
    return this.claim((next, end) => (next < end ? [next + 1, end, next] : null));
  }

  /** The next range from the back, or null once the ends have met. */
  back(): number | null {
    return this.claim((next, end) => (next < end ? [next, end - 1, end - 1] : null));
  }

  /**
   * Gives the front every range the back has claimed: for when the back thread is gone and its
   * ranges must be read again. Call it only once that thread can claim no more.
   */
  reopenBack(): void {
    this.claim((next) => [next, this.total, null]);
  }

  private claim(step: (next: number, end: number) => [number, number, number | null] | null): number | null {
    for (;;) {
      const seen = Atomics.load(this.word, 0);
      const result = step(Number(seen >> 32n), Number(seen & 0xffffffffn));
      if (result === null) return null;
      const [next, end, claimed] = result;
      if (Atomics.compareExchange(this.word, 0, seen, pack(next, end)) === seen) return claimed;
    }
  }
}

const pack = (next: number, end: number): bigint => (BigInt(next) << 32n) | BigInt(end);
