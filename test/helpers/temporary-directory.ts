import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A new directory in the system's temporary one, its name starting `prefix`; `defer` removes it after the test. */
export async function temporaryDirectory(
  defer: (cleanup: () => unknown) => void,
  prefix: string,
): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  defer(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
