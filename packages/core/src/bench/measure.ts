// Small measurement helpers for the benchmark: latency summaries and per-process memory from /proc.
import { readFileSync } from 'node:fs';

import { percentile } from '../samples.js';

export interface Summary {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

export function summarize(values: readonly number[]): Summary {
  const n = values.length;
  const mean = n === 0 ? 0 : values.reduce((a, b) => a + b, 0) / n;
  return {
    n,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    mean,
    min: n === 0 ? 0 : Math.min(...values),
    max: n === 0 ? 0 : Math.max(...values),
  };
}

/** Milliseconds, monotonic, sub-microsecond resolution. */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Memory of one process, in KiB, from /proc/<pid>/smaps_rollup and /proc/<pid>/status. */
export interface ProcessMemory {
  pid: number;
  rssKiB: number;
  pssKiB: number;
  /** Unique set size: Private_Clean + Private_Dirty. */
  ussKiB: number;
  privateDirtyKiB: number;
  /** Page tables (VmPTE): kernel memory, not part of USS. */
  pageTablesKiB: number;
}

export function processMemory(pid: number): ProcessMemory {
  const rollup = parseKiB(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  const status = parseKiB(readFileSync(`/proc/${pid}/status`, 'utf8'));
  const privateClean = rollup.get('Private_Clean') ?? 0;
  const privateDirty = rollup.get('Private_Dirty') ?? 0;
  return {
    pid,
    rssKiB: rollup.get('Rss') ?? 0,
    pssKiB: rollup.get('Pss') ?? 0,
    ussKiB: privateClean + privateDirty,
    privateDirtyKiB: privateDirty,
    pageTablesKiB: status.get('VmPTE') ?? 0,
  };
}

/** Host pids of a process's children (all threads' children), from /proc/<pid>/task/<tid>/children. */
export function childPids(pid: number): number[] {
  const pids: number[] = [];
  try {
    for (const tid of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) {
      if (tid) pids.push(Number(tid));
    }
  } catch {
    // gone, or the kernel lacks CONFIG_PROC_CHILDREN
  }
  return pids;
}

function parseKiB(text: string): Map<string, number> {
  const fields = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^(\w+):\s+(\d+) kB$/.exec(line);
    if (match) fields.set(match[1]!, Number(match[2]));
  }
  return fields;
}

/** CPU time consumed so far, in ms: this Node process, and a fork-server with the sandboxes it has reaped. */
export interface CpuTimes {
  nodeMs: number;
  serverMs: number;
  /** cutime + cstime of the fork-server: its children (the sandboxes) once waited for. */
  sandboxesMs: number;
}

const TICK_MS = 10; // USER_HZ is 100 on every Linux ABI that Node supports

export function cpuTimes(serverPid: number | undefined): CpuTimes {
  const usage = process.cpuUsage();
  let serverMs = 0;
  let sandboxesMs = 0;
  if (serverPid !== undefined) {
    try {
      const stat = readFileSync(`/proc/${serverPid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields[0] is the state (field 3); utime, stime, cutime, cstime are fields 14-17.
      serverMs = (Number(fields[11]) + Number(fields[12])) * TICK_MS;
      sandboxesMs = (Number(fields[13]) + Number(fields[14])) * TICK_MS;
    } catch {
      // gone
    }
  }
  return { nodeMs: (usage.user + usage.system) / 1000, serverMs, sandboxesMs };
}

/** CPU ms per run between two readings. */
export function cpuPerRun(before: CpuTimes, after: CpuTimes, runs: number): CpuTimes {
  return {
    nodeMs: (after.nodeMs - before.nodeMs) / runs,
    serverMs: (after.serverMs - before.serverMs) / runs,
    sandboxesMs: (after.sandboxesMs - before.sandboxesMs) / runs,
  };
}
