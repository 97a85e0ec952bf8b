#!/usr/bin/env node
// Checks an activity-log inclusion proof (GET /api/backoffice/activity-logs/:id/proof) with nothing
// but node:crypto: the row's leaf, its Merkle path (RFC 6962), the seal chain and the signed
// checkpoint. The format and the steps are documented in src/integrity/inclusion-proof.ts.
//
//   node examples/verify-proof.js proof.json [trusted-public-key.pem]
//
// Prints `verified` and exits 0, or prints what failed and exits 1.
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';

const sha256 = (...parts) =>
  createHash('sha256')
    .update(Buffer.concat(parts.map((p) => Buffer.from(p))))
    .digest();
const hex = (text) => Buffer.from(text, 'hex');
// Canonical JSON: keys sorted at every depth, no whitespace.
const canonical = (v) =>
  Array.isArray(v)
    ? `[${v.map(canonical).join(',')}]`
    : v !== null && typeof v === 'object'
      ? `{${Object.keys(v)
          .sort()
          .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
          .join(',')}}`
      : JSON.stringify(v);
const u64 = (n) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};

function check(proof, trustedKey) {
  const row = { ...proof.activity };
  for (const [column, commitment] of Object.entries(proof.commitments)) {
    if (proof.salt === null && row[column] !== null)
      return `${column} has a value but no salt: an erased field is null`;
    if (
      proof.salt !== null &&
      sha256(hex(proof.salt), `${column}\0${canonical(row[column] ?? null)}`).toString('hex') !== commitment
    )
      return `the commitment of ${column} does not match its value`;
    row[column] = { commitment };
  }
  let hash = sha256([0], canonical(row));
  if (hash.toString('hex') !== proof.leaf_hash)
    return 'the activity does not hash to the leaf: the row was changed';
  // RFC 9162 §2.1.3.2
  const [first] = proof.seals;
  let fn = proof.leaf_index,
    sn = first.row_count - 1;
  if (!Number.isInteger(fn) || fn < 0 || fn > sn) return 'leaf_index is outside the seal';
  for (const sibling of proof.merkle_path.map(hex)) {
    if (sn === 0) return 'the Merkle path is too long';
    if (fn % 2 === 1 || fn === sn) {
      hash = sha256([1], sibling, hash);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else hash = sha256([1], hash, sibling);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0 || hash.toString('hex') !== first.root)
    return `the Merkle path does not reach the root of seal ${first.seq}`;
  for (const [i, s] of proof.seals.entries()) {
    const bytes = [
      [2],
      u64(s.seq),
      hex(s.prev_hash),
      hex(s.root),
      u64(s.row_count),
      u64(Date.parse(s.sealed_at)),
    ];
    if (sha256(...bytes).toString('hex') !== s.hash)
      return `seal ${s.seq}: its hash is not the hash of its fields`;
    const previous = proof.seals[i - 1];
    if (previous && (s.seq !== previous.seq + 1 || s.prev_hash !== previous.hash))
      return `seal ${s.seq} does not follow seal ${previous.seq}`;
  }
  const { body, signature } = proof.checkpoint;
  const head = proof.seals.at(-1);
  if (body.seq !== head.seq || body.seal_hash !== head.hash)
    return `the checkpoint does not sign seal ${head.seq}`;
  const key = createPublicKey(trustedKey ?? proof.public_key);
  if (body.key_id !== sha256(key.export({ type: 'spki', format: 'der' })).toString('hex'))
    return 'the checkpoint is signed by another key';
  if (!verify(null, Buffer.from(canonical(body)), key, Buffer.from(signature, 'base64')))
    return 'the checkpoint signature does not match';
  return null;
}

const [proofFile, keyFile] = process.argv.slice(2);
if (!proofFile) {
  console.error('usage: node verify-proof.js proof.json [trusted-public-key.pem]');
  process.exit(2);
}
let problem;
try {
  problem = check(JSON.parse(readFileSync(proofFile, 'utf8')), keyFile && readFileSync(keyFile, 'utf8'));
} catch (error) {
  problem = `the proof is malformed (${error.message})`;
}
console.log(problem ?? 'verified');
process.exit(problem ? 1 : 0);
