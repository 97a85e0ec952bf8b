/**
 * Checks an inclusion proof (GET /api/backoffice/activity-logs/:id/proof) in the browser with
 * WebCrypto, by the steps of examples/verify-proof.js: commitments, leaf, Merkle path (RFC 9162
 * §2.1.3.2), seal chain with SHA-256, and the checkpoint's Ed25519 signature where WebCrypto has
 * Ed25519. Where it has not, the server's check of the signature is reported as such.
 */

const encoder = new TextEncoder();

const hexBytes = (text) => Uint8Array.from(text.match(/../g) ?? [], (pair) => Number.parseInt(pair, 16));
const bytesHex = (bytes) => Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
const half = (n) => Math.floor(n / 2);

function concat(parts) {
  const arrays = parts.map((part) =>
    typeof part === 'string' ? encoder.encode(part) : Uint8Array.from(part),
  );
  const out = new Uint8Array(arrays.reduce((sum, array) => sum + array.length, 0));
  let offset = 0;
  for (const array of arrays) {
    out.set(array, offset);
    offset += array.length;
  }
  return out;
}

async function sha256(...parts) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', concat(parts)));
}

function u64(n) {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(n));
  return bytes;
}

/** Canonical JSON: keys sorted at every depth, no whitespace. */
export function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  const keys = Object.keys(value).sort();
  return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical(value[key])}`).join(',')}}`;
}

function pemDer(pem) {
  const base64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  return Uint8Array.from(atob(base64), (char) => char.charCodeAt(0));
}

/** The hashes of the proof, up to the checkpoint's body: a problem, or null when they hold. */
async function hashProblem(proof) {
  const { salt, seals } = proof;
  const row = { ...proof.activity };
  for (const [column, commitment] of Object.entries(proof.commitments)) {
    if (salt === null && row[column] !== null)
      return `${column} has a value but no salt: an erased field is null`;
    if (salt !== null) {
      const recommitted = await sha256(hexBytes(salt), `${column}\0${canonical(row[column] ?? null)}`);
      if (bytesHex(recommitted) !== commitment) return `the commitment of ${column} does not match its value`;
    }
    row[column] = { commitment };
  }
  let hash = await sha256([0], canonical(row));
  if (bytesHex(hash) !== proof.leaf_hash)
    return 'the activity does not hash to the leaf: the row was changed';
  let fn = proof.leaf_index;
  let sn = seals[0].row_count - 1;
  if (!Number.isInteger(fn) || fn < 0 || fn > sn) return 'leaf_index is outside the seal';
  for (const sibling of proof.merkle_path.map(hexBytes)) {
    if (sn === 0) return 'the Merkle path is too long';
    if (fn % 2 === 1 || fn === sn) {
      hash = await sha256([1], sibling, hash);
      while (fn % 2 === 0 && fn !== 0) [fn, sn] = [half(fn), half(sn)];
    } else hash = await sha256([1], hash, sibling);
    [fn, sn] = [half(fn), half(sn)];
  }
  if (sn !== 0 || bytesHex(hash) !== seals[0].root)
    return `the Merkle path does not reach the root of seal ${seals[0].seq} (the row or its seal changed)`;
  for (const [i, s] of seals.entries()) {
    const fields = [[2], u64(s.seq), hexBytes(s.prev_hash), hexBytes(s.root), u64(s.row_count)];
    if (bytesHex(await sha256(...fields, u64(Date.parse(s.sealed_at)))) !== s.hash)
      return `seal ${s.seq}: its hash is not the hash of its fields`;
    const previous = seals[i - 1];
    if (previous && (s.seq !== previous.seq + 1 || s.prev_hash !== previous.hash))
      return `seal ${s.seq} does not follow seal ${previous.seq}`;
  }
  const body = proof.checkpoint?.body;
  const head = seals.at(-1);
  if (body && (body.seq !== head.seq || body.seal_hash !== head.hash))
    return `the checkpoint does not sign seal ${head.seq}`;
  return null;
}

/**
 * The checkpoint's signature checked here: true or false, or null when this browser's WebCrypto
 * cannot check Ed25519.
 */
async function signatureValid(checkpoint, publicKeyPem) {
  const der = pemDer(publicKeyPem);
  if (checkpoint.body.key_id !== bytesHex(await sha256(der))) return false;
  let key;
  try {
    key = await crypto.subtle.importKey('spki', der, { name: 'Ed25519' }, false, ['verify']);
  } catch (error) {
    if (error?.name === 'NotSupportedError') return null;
    throw error;
  }
  const signature = Uint8Array.from(atob(checkpoint.signature), (char) => char.charCodeAt(0));
  return crypto.subtle.verify(
    { name: 'Ed25519' },
    key,
    signature,
    encoder.encode(canonical(checkpoint.body)),
  );
}

/**
 * What the badge of a row says about its proof: `state` is `verified`, `unanchored` (the hashes
 * hold but no checkpoint covers the row), `server-signature` (hashes checked here, the signature
 * only by the server), `failed` or `unsupported`; `detail` says what was checked or what failed.
 */
export async function checkProof(proof, serverCheck) {
  if (globalThis.crypto?.subtle === undefined) {
    return {
      state: 'unsupported',
      detail: 'this browser has no WebCrypto here (it needs HTTPS or localhost); nothing was checked',
    };
  }
  let problem;
  try {
    problem = await hashProblem(proof);
  } catch (error) {
    problem = `the proof is malformed (${error.message})`;
  }
  if (problem !== null) return { state: 'failed', detail: problem };
  const sealCount = `${proof.seals.length} seal${proof.seals.length === 1 ? '' : 's'}`;
  if (proof.checkpoint === null) {
    return {
      state: 'unanchored',
      detail: `leaf, Merkle path and ${sealCount} checked in this browser; not anchored: ${proof.unanchored_reason}`,
    };
  }
  const keyId = proof.checkpoint.body.key_id.slice(0, 16);
  if (proof.public_key === null) {
    return { state: 'failed', detail: 'the server sent no public key to check the checkpoint with' };
  }
  const valid = await signatureValid(proof.checkpoint, proof.public_key).catch(() => false);
  if (valid === false) return { state: 'failed', detail: 'the checkpoint signature does not match' };
  const checked = `leaf, Merkle path, ${sealCount} and the checkpoint of seal ${proof.checkpoint.body.seq}`;
  if (valid === null) {
    return serverCheck?.verified === true
      ? {
          state: 'server-signature',
          detail: `${checked} checked in this browser, except the Ed25519 signature, which this browser cannot check: the server checked it (key ${keyId}…)`,
        }
      : { state: 'failed', detail: `the server's check failed: ${serverCheck?.problem ?? 'no answer'}` };
  }
  return {
    state: 'verified',
    detail: `${checked} (signed by key ${keyId}…, as the server sent it) checked in this browser`,
  };
}
