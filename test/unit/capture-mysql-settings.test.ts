import { describe, expect, it } from 'vitest';
import { assertRowBinlog } from '../../src/capture/mysql/mysql-capture-source.js';

/** A server whose binary log settings are `settings`. */
function server(settings: Record<string, unknown>) {
  return async () => [{ log_bin: 1, binlog_format: 'ROW', binlog_row_image: 'FULL', ...settings }];
}

describe('capture on MariaDB/MySQL: server settings', () => {
  it('accepts log_bin on, binlog_format=ROW and binlog_row_image=FULL', async () => {
    await expect(assertRowBinlog(server({}))).resolves.toBeUndefined();
  });

  it.each([
    [{ log_bin: 0 }, 'log_bin', /^log_bin is OFF on the capture source; change capture needs log_bin=ON/],
    [
      { binlog_format: 'MIXED' },
      'binlog_format',
      /^binlog_format is MIXED on the capture source; change capture needs binlog_format=ROW$/,
    ],
    [
      { binlog_row_image: 'MINIMAL' },
      'binlog_row_image',
      /^binlog_row_image is MINIMAL .* needs binlog_row_image=FULL$/,
    ],
  ])('refuses %o with one line naming %s', async (settings, field, message) => {
    const refusal = assertRowBinlog(server(settings));
    await expect(refusal).rejects.toMatchObject({ code: 'CAPTURE_SOURCE_UNSUITABLE', field });
    await expect(refusal).rejects.toThrow(message);
  });
});
