import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's top folder, for tests that read or run the project's own files. */
export const PROJECT_ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
