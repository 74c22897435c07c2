// The thread that keeps the who-read index (see who-read-index-thread.ts). A worker thread does
// not inherit the TypeScript loader the hub registered on its main thread: it registers its own.
import { register } from 'tsx/esm/api';

register();
await import('./who-read-index-thread-main.ts');
