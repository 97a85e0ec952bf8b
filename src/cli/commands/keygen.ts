import type { Command } from 'commander';
import { ActivityLogError } from '../../core/errors.js';
import { DEFAULT_KEY_FILE_NAME, writeSigningKeyPair } from '../../runtime/signing-key-files.js';

interface KeygenFlags {
  readonly out: string;
  readonly name: string;
}

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** `activity-log keygen`: writes a new Ed25519 key pair for signing checkpoints. */
export function registerKeygenCommand(program: Command): void {
  program
    .command('keygen')
    .description('write a new Ed25519 key pair for signing checkpoints (never overwrites a file)')
    .option('--out <dir>', 'directory to write the two PEM files to (created if missing)', '.')
    .option('--name <name>', 'file name before .pem and .pub.pem', DEFAULT_KEY_FILE_NAME)
    .action(async (flags: KeygenFlags) => {
      if (!FILE_NAME.test(flags.name)) {
        throw new ActivityLogError(
          'CLI_USAGE',
          `--name must be 1-100 letters, digits, ".", "_" or "-", not starting with "." or "-" (got ${JSON.stringify(flags.name)})`,
          { field: '--name' },
        );
      }
      let written: Awaited<ReturnType<typeof writeSigningKeyPair>>;
      try {
        written = await writeSigningKeyPair(flags.out, flags.name);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        throw new ActivityLogError(
          'CLI_USAGE',
          `${(error as { path?: string }).path ?? 'a key file'} already exists; keygen never overwrites a key: move it away, or choose another --out or --name`,
          { field: '--out', cause: error },
        );
      }
      process.stdout.write(
        [
          `private key: ${written.privateKeyPath} (mode 0600; keep it where only the signer can read it)`,
          `public key:  ${written.publicKeyPath}`,
          `key id:      ${written.keyId}`,
          `Set ACTIVITY_LOG_SIGNING_KEY=${written.privateKeyPath} for checkpoint and serve; give the public key (or its id) to whoever verifies.`,
          '',
        ].join('\n'),
      );
    });
}
