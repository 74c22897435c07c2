#!/usr/bin/env node
// The hub is written in TypeScript and run through tsx, so an installed checkout needs no build step.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('./main.ts');
process.exitCode = await runCli(process.argv);
