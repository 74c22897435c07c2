import path from 'node:path';
import type { ConnectorDefinition } from './definition.ts';

/** Paths inside a definition are relative to the definition file, so a folder of definitions and sources moves as one. */
export function resolveDefinitionPath(def: Pick<ConnectorDefinition, 'file'>, target: string): string {
  return path.isAbsolute(target) ? target : path.resolve(path.dirname(def.file), target);
}
