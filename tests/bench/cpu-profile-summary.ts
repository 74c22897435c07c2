/**
 * node --import tsx tests/bench/cpu-profile-summary.ts <file.cpuprofile> [--top N]
 * Summarizes a V8 CPU profile (from `npm run bench:api -- --cpu-prof DIR`): the functions with
 * the most self time, self time per package or folder, and the inclusive time of each of our
 * own functions, as markdown tables. Time in a function's awaited continuations is not inside its
 * inclusive time: a CPU profile only sees synchronous stacks.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

interface Totals {
  selfUs: Map<number, number>;
  /** Busy time: the process was idle between runs, and percentages are of the time it worked. */
  totalUs: number;
}

// Profiles name scripts by file URL; ours are those under the checkout and outside node_modules.
const ROOT_MARKER = `${pathToFileURL(path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')).href}/`;

function sumSelfTime(profile: CpuProfile): Totals {
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  profile.samples.forEach((nodeId, i) => {
    const delta = Math.max(0, profile.timeDeltas[i] ?? 0);
    selfUs.set(nodeId, (selfUs.get(nodeId) ?? 0) + delta);
    if (!idle.has(nodeId)) totalUs += delta;
  });
  return { selfUs, totalUs };
}

function shortFile(url: string): string {
  const modules = url.lastIndexOf('node_modules/');
  if (modules !== -1) return url.slice(modules + 'node_modules/'.length);
  const ours = url.indexOf(ROOT_MARKER);
  return ours === -1 ? url.replace(/^file:\/\//, '') : url.slice(ours + ROOT_MARKER.length);
}

/** Line numbers of TypeScript run through tsx are those of the transpiled text: only packages get one. */
function describe(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  if (frame.url === '') return name;
  const line = frame.url.endsWith('.ts') ? '' : `:${frame.lineNumber + 1}`;
  return `${name} ${shortFile(frame.url)}${line}`;
}

/** node_modules/<package> (with its scope), node: internals, V8 pseudo-frames, or our top folder. */
function groupOf(frame: CallFrame): string {
  const { url } = frame;
  if (url === '') return frame.functionName.startsWith('(') ? frame.functionName : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const modules = url.lastIndexOf('node_modules/');
  if (modules !== -1) {
    const parts = url.slice(modules + 'node_modules/'.length).split('/');
    return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
  }
  return `ours: ${shortFile(url).split('/').slice(0, 2).join('/')}`;
}

function addTo(map: Map<string, number>, key: string, us: number): void {
  map.set(key, (map.get(key) ?? 0) + us);
}

/** Inclusive time of each of our functions, counting a function once per stack even when recursive. */
function inclusiveOurs(profile: CpuProfile, selfUs: Map<number, number>): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const result = new Map<string, number>();
  const walk = (id: number, onStack: Set<string>): number => {
    const node = byId.get(id)!;
    const key = describe(node.callFrame);
    const ours = node.callFrame.url.includes(ROOT_MARKER) && !node.callFrame.url.includes('node_modules');
    const entered = ours && !onStack.has(key);
    if (entered) onStack.add(key);
    let total = selfUs.get(id) ?? 0;
    for (const child of node.children ?? []) total += walk(child, onStack);
    if (entered) {
      onStack.delete(key);
      addTo(result, key, total);
    }
    return total;
  };
  walk(profile.nodes[0]!.id, new Set());
  return result;
}

const INTERNAL_GROUPS = new Set(['node internals', '(native)']);

/** Self time of node internals and native code charged to the nearest caller that is a package or ours. */
function chargeInternalsToCallers(profile: CpuProfile, selfUs: Map<number, number>): Map<string, number> {
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const ownerOf = (id: number): string => {
    let group = groupOf(byId.get(id)!.callFrame);
    for (let up = parent.get(id); INTERNAL_GROUPS.has(group) && up !== undefined; up = parent.get(up)) {
      const frame = byId.get(up)!.callFrame;
      if (frame.functionName !== '(root)') group = groupOf(frame);
    }
    return group;
  };
  const result = new Map<string, number>();
  for (const node of profile.nodes) {
    if (node.callFrame.functionName !== '(idle)') addTo(result, ownerOf(node.id), selfUs.get(node.id) ?? 0);
  }
  return result;
}

function printTop(title: string, entries: Map<string, number>, totalUs: number, top: number): void {
  console.log(`\n| ${title} | ms | % of busy time |\n|---|---:|---:|`);
  for (const [key, us] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(
      `| ${key.replaceAll('|', '\\|')} | ${(us / 1000).toFixed(0)} | ${((100 * us) / totalUs).toFixed(1)}% |`,
    );
  }
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (file === undefined) throw new Error('usage: cpu-profile-summary.ts <file.cpuprofile> [--top N]');
  const topAt = process.argv.indexOf('--top');
  const top = topAt === -1 ? 25 : Number(process.argv[topAt + 1]);
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const { selfUs, totalUs } = sumSelfTime(profile);
  const byFunction = new Map<string, number>();
  const byGroup = new Map<string, number>();
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    if (node.callFrame.functionName === '(idle)') continue;
    addTo(byFunction, describe(node.callFrame), us);
    addTo(byGroup, groupOf(node.callFrame), us);
  }
  console.log(
    `${file}: ${(totalUs / 1e6).toFixed(1)} s busy (idle samples left out; percentages are of busy time)`,
  );
  printTop('self time by function', byFunction, totalUs, top);
  printTop('self time by package or folder', byGroup, totalUs, top);
  printTop(
    'self time by package or folder, node internals charged to their caller',
    chargeInternalsToCallers(profile, selfUs),
    totalUs,
    top,
  );
  printTop('inclusive time of our functions', inclusiveOurs(profile, selfUs), totalUs, top);
}

await main();
