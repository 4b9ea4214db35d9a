// Child processes of the scripts (test/support/children.ts): stopChild escalates to SIGKILL after its
// bound, and a script stopped with SIGTERM or SIGINT takes its adopted children with it.
import { type ChildProcess, spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { stopChild } from '../support/children.ts';
import { ROOT } from '../support/root.ts';
import { waitFor } from '../support/wait.ts';

const started: ChildProcess[] = [];
const pids: number[] = [];
afterEach(() => {
  for (const p of started) p.kill('SIGKILL');
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  started.length = 0;
  pids.length = 0;
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts `node -e code`; resolves once it printed its first line (returned). */
async function node(args: string[]): Promise<{ proc: ChildProcess; firstLine: string }> {
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(proc);
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  await waitFor('the first line', () => out.includes('\n') || proc.exitCode !== null);
  return { proc, firstLine: out.split('\n')[0]! };
}

const STUBBORN = "process.on('SIGTERM', () => {}); setInterval(() => {}, 1000); console.log('ready');";

describe('stopChild', () => {
  it('SIGKILLs a child that ignores SIGTERM once the bound has passed', async () => {
    const { proc } = await node(['-e', STUBBORN]);
    const code = await stopChild(proc, 'SIGTERM', 200);
    expect(code).toBeNull();
    expect(proc.signalCode).toBe('SIGKILL');
  });

  it('resolves with the exit code of a child that stops on SIGTERM, and at once for one already gone', async () => {
    const { proc } = await node(['-e', "process.on('SIGTERM', () => process.exit(3)); setInterval(() => {}, 1000); console.log('ready');"]);
    expect(await stopChild(proc, 'SIGTERM', 60_000)).toBe(3);
    expect(await stopChild(proc)).toBe(3);
  });
});

describe('a script ended by a signal', () => {
  it.each(['SIGTERM', 'SIGINT'] as const)('%s: its adopted children end too, and it exits 128+signal', async (signal) => {
    const script = [
      "import { spawn } from 'node:child_process';",
      "import { adopt } from './test/support/children.ts';",
      `const child = adopt(spawn(process.execPath, ['-e', ${JSON.stringify("setInterval(() => {}, 1000); console.log('ready');")}], { stdio: ['ignore', 'pipe', 'inherit'] }));`,
      "child.stdout.once('data', () => console.log(child.pid));",
      'setInterval(() => {}, 1000);',
    ].join('\n');
    const { proc, firstLine } = await node(['--import', 'tsx', '--input-type=module', '-e', script]);
    const childPid = Number(firstLine);
    expect(childPid).toBeGreaterThan(0);
    pids.push(childPid);
    expect(alive(childPid)).toBe(true);
    proc.kill(signal);
    await waitFor('the script to exit', () => proc.exitCode !== null);
    expect(proc.exitCode).toBe(signal === 'SIGINT' ? 130 : 143);
    await waitFor('the child to end', () => !alive(childPid));
  });
});
