#!/usr/bin/env node
// Checks an activity-log inclusion proof (GET /api/backoffice/activity-logs/:id/proof) with nothing
// but node:crypto: the row's leaf, its Merkle path (RFC 6962), the seal chain and the signed
// checkpoint. The format and the steps are in src/integrity/inclusion-proof.ts. The file may be the
// endpoint's answer as is ({"success":true,"data":{…}}) or the proof alone.
//
//   node examples/verify-proof.js proof.json [trusted-public-key.pem]
//
// Prints `verified` and exits 0, or what failed and exits 1. A proof no checkpoint anchors prints
// `verified, NOT ANCHORED: …` (exit 0), and fails when a trusted key is given.
import { createHash, createPublicKey, verify } from 'node:crypto';
import { readFileSync } from 'node:fs';

const sha256 = (...parts) =>
  createHash('sha256')
    .update(Buffer.concat(parts.map((p) => Buffer.from(p))))
    .digest();
const hex = (text) => Buffer.from(text, 'hex');
const half = (n) => Math.floor(n / 2);
const u64 = (n) => Buffer.from(BigInt(n).toString(16).padStart(16, '0'), 'hex');
// Canonical JSON: keys sorted at every depth, no whitespace.
const canonical = (v) => {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  return `{${Object.keys(v)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
    .join(',')}}`;
};

function check(proof, trustedKey) {
  const { salt, seals, checkpoint } = proof;
  const row = { ...proof.activity };
  for (const [column, commitment] of Object.entries(proof.commitments)) {
    if (salt === null && row[column] !== null)
      return `${column} has a value but no salt: an erased field is null`;
    const recommitted = salt && sha256(hex(salt), `${column}\0${canonical(row[column] ?? null)}`);
    if (salt !== null && recommitted.toString('hex') !== commitment)
      return `the commitment of ${column} does not match its value`;
    row[column] = { commitment };
  }
  let hash = sha256([0], canonical(row));
  if (hash.toString('hex') !== proof.leaf_hash)
    return 'the activity does not hash to the leaf: the row was changed';
  // RFC 9162 §2.1.3.2: from the leaf up to the root of its seal.
  let [fn, sn] = [proof.leaf_index, seals[0].row_count - 1];
  if (!Number.isInteger(fn) || fn < 0 || fn > sn) return 'leaf_index is outside the seal';
  for (const sibling of proof.merkle_path.map(hex)) {
    if (sn === 0) return 'the Merkle path is too long';
    if (fn % 2 === 1 || fn === sn) {
      hash = sha256([1], sibling, hash);
      while (fn % 2 === 0 && fn !== 0) [fn, sn] = [half(fn), half(sn)];
    } else hash = sha256([1], hash, sibling);
    [fn, sn] = [half(fn), half(sn)];
  }
  if (sn !== 0 || hash.toString('hex') !== seals[0].root)
    return `the Merkle path does not reach the root of seal ${seals[0].seq} (the row or its seal changed)`;
  for (const [i, s] of seals.entries()) {
    const fields = [[2], u64(s.seq), hex(s.prev_hash), hex(s.root), u64(s.row_count)];
    if (sha256(...fields, u64(Date.parse(s.sealed_at))).toString('hex') !== s.hash)
      return `seal ${s.seq}: its hash is not the hash of its fields`;
    const previous = seals[i - 1];
    if (previous && (s.seq !== previous.seq + 1 || s.prev_hash !== previous.hash))
      return `seal ${s.seq} does not follow seal ${previous.seq}`;
  }
  if (checkpoint === null) return trustedKey ? `not anchored: ${proof.unanchored_reason}` : null;
  const { body, signature } = checkpoint;
  const head = seals.at(-1);
  if (body.seq !== head.seq || body.seal_hash !== head.hash)
    return `the checkpoint does not sign seal ${head.seq}`;
  const key = createPublicKey(trustedKey || proof.public_key);
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
let problem, proof;
try {
  const json = JSON.parse(readFileSync(proofFile, 'utf8'));
  proof = json.success === true ? json.data : json;
  problem = check(proof, keyFile && readFileSync(keyFile, 'utf8'));
} catch (error) {
  problem = `the proof is malformed (${error.message})`;
}
const note = !problem && proof.checkpoint === null ? `, NOT ANCHORED: ${proof.unanchored_reason}` : '';
console.log(problem ?? `verified${note}`);
process.exit(problem ? 1 : 0);
