// The second reading thread of a full load (see read-in-two-threads.ts). The mapping is
// TypeScript, compiled by tsx's require hook: in this thread, without the separate loader
// thread (and its memory) that module hooks take.
require('tsx/cjs/api').register();
require('./range-worker.ts');
