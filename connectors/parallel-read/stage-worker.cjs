// The second thread of a SQLite full load (see load-with-stage-thread.ts). The mapping is
// TypeScript, compiled by tsx's require hook: in this thread, without the separate loader
// thread (and its memory) that module hooks take.
require('tsx/cjs/api').register();
require('./stage-worker.ts');
