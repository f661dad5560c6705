/**
 * Where the time and memory went: samples /proc once a second for the stack's processes
 * (CPU from utime+stime in /proc/<pid>/stat, memory from VmRSS in /proc/<pid>/status), the
 * PostgreSQL backends serving the bench database, and the whole machine (/proc/stat). For the
 * Node processes it also splits the CPU by thread (/proc/<pid>/task/<tid>/stat), which a V8
 * profile cannot do honestly on a saturated machine: a profiler samples wall time, so a thread
 * that waits for a core shows as busy in whatever it was doing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ: 100 on Linux x86_64 (getconf CLK_TCK)

/** How to find a part's processes at each sample. */
export type ProcessSelector =
  | { kind: 'tree'; pid: number } // the process and its descendants
  | { kind: 'self' } // the bench process alone
  | { kind: 'children'; of: number; command: string } // children of `of` whose command line has `command`, and their descendants (restarted ones too)
  | { kind: 'comm'; comm: string } // every process of that name (a broker running as a service)
  | { kind: 'postgresBackends'; database: string }; // backends connected to that database

/**
 * A Node process's CPU by thread, each in % of one core. Node names all its threads `node`, so
 * the workflow sandbox thread of a Temporal worker is told apart as the busiest one besides the
 * event loop; the rest are V8's (garbage collection, compilation) and libuv's. Threads with
 * other names are the Temporal SDK's Rust core (tokio, workflow processing).
 */
export interface ThreadUsage {
  eventLoop: number;
  busiestOther: number;
  otherNode: number;
  native: number;
}

export interface PartUsage {
  /** Average over the window, in % of one core (2 busy cores = 200). */
  cpuPercent: number;
  /** For Node processes (the event loop's thread is named `node`). */
  threads?: ThreadUsage;
  /** NaN for PostgreSQL backends: their RSS counts the shared buffers once per backend. */
  rssPeakMiB: number;
  rssEndMiB: number;
}

export interface WindowUsage {
  seconds: number;
  parts: Record<string, PartUsage>;
  /** All cores of the machine, busy share over the window, 0..100. */
  machineBusyPercent: number;
  /** 1-minute load average at the end of the window. */
  loadAverage: number;
}

interface ProcEntry {
  pid: number;
  ppid: number;
  comm: string;
  ticks: number;
}

function readProcesses(): Map<number, ProcEntry> {
  const entries = new Map<number, ProcEntry>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const entry = readStat(Number(name));
    if (entry) entries.set(entry.pid, entry);
  }
  return entries;
}

function readStat(pid: number, file = `/proc/${pid}/stat`): ProcEntry | undefined {
  try {
    const text = readFileSync(file, 'utf8');
    // comm is in parentheses and may contain spaces; the fields after it are space-separated.
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const fields = text.slice(close + 2).split(' ');
    // fields[0] is state (field 3); ppid is field 4, utime 14, stime 15.
    return { pid, comm, ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return undefined; // exited between readdir and read
  }
}

interface ThreadEntry {
  tid: number;
  comm: string;
  ticks: number;
}

function readThreads(pid: number): ThreadEntry[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  return tids.flatMap((tid) => {
    const entry = readStat(Number(tid), `/proc/${pid}/task/${tid}/stat`);
    return entry ? [{ tid: entry.pid, comm: entry.comm, ticks: entry.ticks }] : [];
  });
}

function readRssKiB(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

function machineTicks(): { busy: number; total: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  const total = values.reduce((a, b) => a + b, 0);
  const idle = (values[3] ?? 0) + (values[4] ?? 0); // idle + iowait
  return { busy: total - idle, total };
}

function withDescendants(roots: number[], processes: Map<number, ProcEntry>): number[] {
  const pids = [...roots];
  for (let i = 0; i < pids.length; i++) {
    for (const p of processes.values()) if (p.ppid === pids[i]) pids.push(p.pid);
  }
  return pids.filter((pid) => processes.has(pid));
}

function select(selector: ProcessSelector, processes: Map<number, ProcEntry>): number[] {
  switch (selector.kind) {
    case 'self':
      return [process.pid];
    case 'tree':
      return withDescendants([selector.pid], processes);
    case 'children':
      return withDescendants(
        [...processes.values()].filter((p) => p.ppid === selector.of && readCmdline(p.pid).includes(selector.command)).map((p) => p.pid),
        processes,
      );
    case 'comm':
      return [...processes.values()].filter((p) => p.comm === selector.comm).map((p) => p.pid);
    case 'postgresBackends':
      return [...processes.values()]
        .filter((p) => p.comm === 'postgres' && readCmdline(p.pid).split(' ').includes(selector.database))
        .map((p) => p.pid);
  }
}

/** Samples the given parts every second while a window is open. */
export class ProcessMonitor {
  private timer: NodeJS.Timeout | undefined;
  private lastTicks = new Map<number, number>();
  private cpuTicks: Record<string, number> = {};
  /** Per part, each thread's ticks within the window, keyed pid/tid. */
  private threadTicks: Record<string, Map<string, { comm: string; eventLoop: boolean; ticks: number }>> = {};
  private lastThreadTicks = new Map<string, number>();
  private rssPeak: Record<string, number> = {};
  private rssLast: Record<string, number> = {};
  private startedAt = 0;
  private machineAtStart = { busy: 0, total: 0 };

  constructor(private readonly parts: Record<string, ProcessSelector>) {}

  /** The current RSS of one part, in MiB (for progress lines). */
  rssMiB(part: string): number {
    return (this.rssLast[part] ?? 0) / 1024;
  }

  start(): void {
    this.stop();
    this.lastTicks = new Map();
    this.cpuTicks = {};
    this.threadTicks = {};
    this.lastThreadTicks = new Map();
    this.rssPeak = {};
    this.rssLast = {};
    this.startedAt = Date.now();
    this.machineAtStart = machineTicks();
    // The first sample only sets the baseline: CPU used before the window does not count.
    this.sample(true);
    this.timer = setInterval(() => this.sample(false), 1000);
    this.timer.unref();
  }

  /** Closes the window and returns what was used during it. */
  finish(): WindowUsage {
    this.sample(false);
    this.stop();
    const seconds = (Date.now() - this.startedAt) / 1000;
    const machine = machineTicks();
    const parts: Record<string, PartUsage> = {};
    for (const [name, selector] of Object.entries(this.parts)) {
      const rssMeaningful = selector.kind !== 'postgresBackends';
      const threads = this.threadUsage(name, seconds);
      parts[name] = {
        cpuPercent: ((this.cpuTicks[name] ?? 0) / CLOCK_TICKS_PER_SECOND / Math.max(seconds, 0.001)) * 100,
        ...(threads && { threads }),
        rssPeakMiB: rssMeaningful ? (this.rssPeak[name] ?? 0) / 1024 : Number.NaN,
        rssEndMiB: rssMeaningful ? (this.rssLast[name] ?? 0) / 1024 : Number.NaN,
      };
    }
    const total = machine.total - this.machineAtStart.total;
    return {
      seconds,
      parts,
      machineBusyPercent: total > 0 ? ((machine.busy - this.machineAtStart.busy) / total) * 100 : 0,
      loadAverage: os.loadavg()[0] ?? 0,
    };
  }

  private threadUsage(part: string, seconds: number): ThreadUsage | undefined {
    const threads = [...(this.threadTicks[part]?.values() ?? [])];
    if (!threads.some((t) => t.eventLoop && t.comm === 'node')) return undefined;
    const percent = (ticks: number) => (ticks / CLOCK_TICKS_PER_SECOND / Math.max(seconds, 0.001)) * 100;
    const sum = (list: typeof threads) => list.reduce((total, t) => total + t.ticks, 0);
    const others = threads.filter((t) => !t.eventLoop && t.comm === 'node').sort((a, b) => b.ticks - a.ticks);
    const busiest = others[0]?.ticks ?? 0;
    return {
      eventLoop: percent(sum(threads.filter((t) => t.eventLoop))),
      busiestOther: percent(busiest),
      otherNode: percent(sum(others) - busiest),
      native: percent(sum(threads.filter((t) => !t.eventLoop && t.comm !== 'node'))),
    };
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private sample(baseline: boolean): void {
    const processes = readProcesses();
    for (const [name, selector] of Object.entries(this.parts)) {
      let rss = 0;
      for (const pid of select(selector, processes)) {
        const ticks = processes.get(pid)?.ticks ?? 0;
        // A process first seen after the baseline started within the window: all its CPU counts.
        const before = this.lastTicks.get(pid) ?? (baseline ? ticks : 0);
        this.lastTicks.set(pid, ticks);
        this.cpuTicks[name] = (this.cpuTicks[name] ?? 0) + (ticks - before);
        if (selector.kind !== 'postgresBackends') this.sampleThreads(name, pid, baseline);
        rss += readRssKiB(pid);
      }
      this.rssLast[name] = rss;
      this.rssPeak[name] = Math.max(this.rssPeak[name] ?? 0, rss);
    }
  }

  private sampleThreads(part: string, pid: number, baseline: boolean): void {
    const threads = (this.threadTicks[part] ??= new Map());
    for (const { tid, comm, ticks } of readThreads(pid)) {
      const key = `${pid}/${tid}`;
      const before = this.lastThreadTicks.get(key) ?? (baseline ? ticks : 0);
      this.lastThreadTicks.set(key, ticks);
      const thread = threads.get(key) ?? { comm, eventLoop: tid === pid, ticks: 0 };
      thread.ticks += ticks - before;
      threads.set(key, thread);
    }
  }
}
