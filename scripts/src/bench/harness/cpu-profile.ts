/**
 * Where a V8 CPU profile (`node --cpu-prof`) spends its time: self time per function and per
 * place (our packages, each npm package, Node internals, native), and inclusive time per function.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileEntry {
  name: string;
  ms: number;
  percent: number;
}

export interface ProfileSummary {
  file: string;
  totalMs: number;
  /** Time the main thread spent outside JavaScript waiting for work. */
  idlePercent: number;
  topSelf: ProfileEntry[];
  topInclusive: ProfileEntry[];
  byPlace: ProfileEntry[];
}

function place(url: string, functionName: string): string {
  if (url === '') {
    if (functionName.startsWith('(')) return functionName; // (idle), (program), (garbage collector)
    return '(native)';
  }
  if (url.startsWith('node:')) return 'node internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg?.[1]) return pkg[1];
  const ours = /\/(control-server|common|agent|scripts)\/dist\/(.*)$/.exec(url);
  if (ours) return `${ours[1]}/${ours[2]}`;
  return url;
}

function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const where = place(url, functionName);
  const name = functionName || '(anonymous)';
  return url === '' ? name : `${name} ${where}:${lineNumber + 1}`;
}

/** Reads a `.cpuprofile` (they run to tens of MB: read it once when it is used twice). */
export function loadProfile(file: string): CpuProfile {
  return JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
}

export function summariseProfile(file: string, top = 25, profile: CpuProfile = loadProfile(file)): ProfileSummary {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const totalUs = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const toEntries = (map: Map<string, number>, n: number): ProfileEntry[] =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, ms: Math.round(us / 100) / 10, percent: Math.round((us / totalUs) * 1000) / 10 }));

  const self = new Map<string, number>();
  const places = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id);
    if (!node) continue;
    self.set(label(node), (self.get(label(node)) ?? 0) + us);
    const p = place(node.callFrame.url, node.callFrame.functionName);
    places.set(p, (places.get(p) ?? 0) + us);
  }

  // Inclusive time: each node's self time plus its descendants', counted once per function per stack.
  const inclusive = new Map<string, number>();
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);
  for (const [id, us] of selfUs) {
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parents.get(at)) {
      const node = byId.get(at);
      if (!node) break;
      const name = label(node);
      if (name === '(root)' || seen.has(name)) continue;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + us);
    }
  }
  return {
    file,
    totalMs: Math.round(totalUs / 1000),
    idlePercent: Math.round(((places.get('(idle)') ?? 0) / totalUs) * 1000) / 10,
    topSelf: toEntries(self, top),
    topInclusive: toEntries(inclusive, top),
    byPlace: toEntries(places, top),
  };
}

export function printProfile(summary: ProfileSummary): void {
  const show = (title: string, entries: ProfileEntry[]) => {
    console.log(`\n${title}`);
    for (const e of entries) console.log(`${e.percent.toFixed(1).padStart(6)}%  ${String(e.ms).padStart(9)} ms  ${e.name}`);
  };
  console.log(`\nCPU profile ${summary.file}: ${summary.totalMs} ms sampled, ${summary.idlePercent}% idle`);
  show('self time by place', summary.byPlace);
  show('top self time', summary.topSelf);
  show('top inclusive time', summary.topInclusive);
}

/**
 * The profile second by second: for each second with at least `minBusyMs` of samples that are not
 * idle, how busy it was and its top functions by self time. Shows when the time was spent: a
 * garbage collection in a quiet window, set-up against steady state.
 */
export function printBySecond(file: string, profile: CpuProfile = loadProfile(file), minBusyMs = 20, top = 5): void {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const seconds = new Map<number, Map<string, number>>();
  let atUs = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    atUs += us;
    const node = byId.get(id);
    if (!node || node.callFrame.functionName === '(idle)') return;
    const second = Math.floor(atUs / 1e6);
    const names = seconds.get(second) ?? new Map<string, number>();
    names.set(label(node), (names.get(label(node)) ?? 0) + us);
    seconds.set(second, names);
  });
  console.log(`
CPU profile ${file}, second by second (from the start of the profile; busy ≥ ${minBusyMs} ms):`);
  for (const [second, names] of [...seconds].sort((a, b) => a[0] - b[0])) {
    const busyMs = [...names.values()].reduce((a, b) => a + b, 0) / 1000;
    if (busyMs < minBusyMs) continue;
    const tops = [...names]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => `${name} ${Math.round(us / 1000)} ms`);
    console.log(`${String(second).padStart(5)} s  ${String(Math.round(busyMs)).padStart(5)} ms busy  ${tops.join(' | ')}`);
  }
}

/** Where `--cpu-prof` has the server write this run's profile: a fresh folder of the run's own. */
export function profileDirFor(outDir: string, label: string): string {
  return join(outDir, 'profiles', `${label}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
}

/** Summarises and prints the profile in `dir`; call it after the server stopped (it writes on exit). */
export function readProfile(dir: string): ProfileSummary {
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`);
  const profile = summariseProfile(join(dir, file));
  printProfile(profile);
  return profile;
}
