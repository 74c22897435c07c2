// A connector run's own process (see load-process.ts). A forked process does not inherit the
// TypeScript loader the hub registered: it registers its own.
import { register } from 'tsx/esm/api';

register();
await import('./load-process-main.ts');
