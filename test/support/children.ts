// Child processes of a script (the service, Mosquitto, the ceiling subscriber) end with it: on
// SIGINT/SIGTERM each gets SIGTERM, then SIGKILL after a bound, and the script exits 128+signal;
// on any other exit the ones still running get SIGTERM (the service stops itself under its deadline).
import type { ChildProcess } from 'node:child_process';

/** How long a child has after SIGTERM before SIGKILL, ms: beyond the service's default 20 s SHUTDOWN_DEADLINE_MS. */
const KILL_AFTER_MS = 25_000;

// Signals and exit are per process, so the set of children is too.
const live = new Set<ChildProcess>();
let installed = false;

/** Registers `proc` to be stopped when this process ends; returns it. */
export function adopt<P extends ChildProcess>(proc: P): P {
  install();
  live.add(proc);
  proc.once('exit', () => live.delete(proc));
  return proc;
}

/**
 * Sends `signal`, then SIGKILL if still running after `killAfterMs`; resolves with the exit
 * code (null when ended by a signal). Resolves at once for a child that already ended.
 */
export async function stopChild(proc: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', killAfterMs = KILL_AFTER_MS): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  proc.kill(signal);
  const timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
  try {
    return await exited;
  } finally {
    clearTimeout(timer);
  }
}

function install(): void {
  if (installed) return;
  installed = true;
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      const code = 128 + (signal === 'SIGINT' ? 2 : 15);
      if (stopping) {
        // A second signal: no more waiting.
        for (const p of live) p.kill('SIGKILL');
        process.exit(code);
      }
      stopping = true;
      // The script's own work now fails as its children go (refused connections): not news.
      process.on('uncaughtException', () => {});
      process.on('unhandledRejection', () => {});
      if (live.size > 0) process.stderr.write(`${signal}: stopping ${live.size} child process(es)\n`);
      void Promise.all([...live].map((p) => stopChild(p))).finally(() => process.exit(code));
    });
  }
  process.on('exit', () => {
    for (const p of live) p.kill('SIGTERM');
  });
}
