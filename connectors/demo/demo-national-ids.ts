import { buildNationalId } from '../../warehouse/core/national-id.ts';
import { createRandom } from './seeded-random.ts';

const PAYLOAD_SPACE = 900_000_000;
const PAYLOAD_BASE = 100_000_000;

/** How many person numbers the demo can give national IDs to (real persons and ghost rows together). */
export const MAX_ID_INDEX = PAYLOAD_SPACE - 1;

/**
 * Person number → national ID. The nine-digit payload is an affine permutation of the
 * person number, so IDs are unique without remembering any, look scattered, and never start
 * with 0. The multiplier stays below 9·10⁶ so multiplier × index is exact in a double.
 */
export function createNationalIdSequence(seed: number): (index: number) => string {
  const random = createRandom(seed, 'national-ids');
  let multiplier = random.int(1_000_000, 8_999_999);
  // Coprime with 900 000 000 = 2⁸·3²·5⁸, so the map is a bijection.
  while (multiplier % 2 === 0 || multiplier % 3 === 0 || multiplier % 5 === 0) multiplier++;
  const offset = random.int(0, PAYLOAD_SPACE - 1);
  return (index) => {
    if (!Number.isSafeInteger(index) || index < 0 || index > MAX_ID_INDEX) {
      throw new RangeError(`person number ${index} is outside the demo's national ID space`);
    }
    return buildNationalId(String(PAYLOAD_BASE + ((multiplier * index + offset) % PAYLOAD_SPACE)));
  };
}
