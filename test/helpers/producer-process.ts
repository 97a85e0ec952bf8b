import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built library, for scripts run in a process of their own. */
export const DIST_INDEX = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A script logging activities in a process of its own, printing each id once its log() resolved. */
export interface ProducerProcess {
  /** Ids printed so far: only whole lines, so an id cut by a kill is not counted. */
  acknowledged(): string[];
  /** What the process wrote to stderr. */
  errors(): string;
  /** Sends SIGKILL and resolves with the signal the process died of. */
  kill(): Promise<NodeJS.Signals | null>;
}

/**
 * Writes `script` to `workDir` and runs it with `PRODUCER_ENV` (the activity log's environment,
 * as JSON) and `extraEnv`. Pass the returned `kill` to the test's clean-ups as well.
 */
export async function startProducer(
  workDir: string,
  script: string,
  env: Record<string, string>,
  extraEnv: Record<string, string> = {},
): Promise<ProducerProcess> {
  if (!existsSync(DIST_INDEX))
    throw new Error('dist/ is missing: run `npm run build` (npm test builds first)');
  const path = join(workDir, 'producer.mjs');
  await writeFile(path, script);
  const child = spawn(process.execPath, [path], {
    env: { ...process.env, PRODUCER_ENV: JSON.stringify(env), ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.once('exit', (_code, signal) => resolve(signal)),
  );
  let output = '';
  let errors = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    output += chunk;
  });
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    errors += chunk;
  });
  return {
    acknowledged: () => output.split('\n').filter((line) => UUID.test(line)),
    errors: () => errors,
    async kill() {
      child.kill('SIGKILL');
      return exited;
    },
  };
}
