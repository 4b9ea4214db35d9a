// What a process itself used, from Linux /proc (proc(5)): CPU time and peak resident memory, for
// the benchmark's CPU and memory figures of the service and the pipe ceiling.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let clockTicksPerS: number | undefined;

/** User + system CPU time of `pid` so far, seconds: utime + stime (fields 14, 15) of /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  clockTicksPerS ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The fields after the command name (which may hold spaces and parentheses), from field 3 on.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[14 - 3]) + Number(f[15 - 3])) / clockTicksPerS;
}

/** Peak resident set size of `pid` so far, bytes: VmHWM of /proc/<pid>/status. */
export function peakRssBytes(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}
