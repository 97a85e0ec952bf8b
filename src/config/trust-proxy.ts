import { isIP } from 'node:net';
import { z } from 'zod';

const TRUST_PROXY_ALLOWED =
  'expected true, false, a number of hops (1-100), or comma-separated addresses/CIDR ranges';

/** Which proxies are believed: none (false), any (true), a number of hops, or addresses and ranges. */
export const trustProxySchema = z.union(
  [
    z.boolean(),
    z.number().int().min(1, { error: TRUST_PROXY_ALLOWED }).max(100, { error: TRUST_PROXY_ALLOWED }),
    z
      .array(z.string().refine(isAddressOrRange, { error: TRUST_PROXY_ALLOWED }))
      .min(1)
      .readonly(),
  ],
  { error: TRUST_PROXY_ALLOWED },
);

/** `true`/`false`, a hop count, or a comma-separated list (validated by the schema). */
export function trustProxyFromEnv(value: string): unknown {
  const text = value.trim();
  if (text === '' || text === '0' || text.toLowerCase() === 'false') return false;
  if (text.toLowerCase() === 'true') return true;
  if (/^\d+$/.test(text)) return Number(text);
  return text
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '');
}

/** `10.0.0.1`, `::1`, `10.0.0.0/8`, `fd00::/8`, or one of proxy-addr's names (`loopback`, `linklocal`, `uniquelocal`). */
function isAddressOrRange(value: string): boolean {
  if (['loopback', 'linklocal', 'uniquelocal'].includes(value)) return true;
  const [address = '', bits, extra] = value.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  if (bits === undefined) return true;
  return /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}
