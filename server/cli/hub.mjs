#!/usr/bin/env node
// The hub is written in TypeScript and run through tsx, so an installed checkout needs no build step.
import { fileURLToPath } from 'node:url';
import { missingNodeFlags, rerunWithFlags } from './bulk-process.mjs';

const args = process.argv.slice(2);
const flags = missingNodeFlags(args);
if (flags.length > 0) {
  await rerunWithFlags(fileURLToPath(import.meta.url), args, flags);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  const { runCli } = await import('./main.ts');
  process.exitCode = await runCli(process.argv);
}
