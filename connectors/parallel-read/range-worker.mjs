// The second reading thread of a full load (see read-in-two-threads.ts). The mapping is
// TypeScript, run through tsx as the hub itself is.
import { register } from 'tsx/esm/api';

register();
await import('./range-worker.ts');
