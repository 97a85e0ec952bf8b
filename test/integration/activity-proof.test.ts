import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { Kysely, sql } from 'kysely';
import { afterAll, describe, expect } from 'vitest';
import { type Config, loadConfig } from '../../src/config/config.js';
import { createActivityLogServer } from '../../src/http/create-activity-log-server.js';
import { activityJsonSchema, activityProofAnswerSchema } from '../../src/http/openapi.js';
import { generateSigningKeyPair } from '../../src/integrity/checkpoint.js';
import { publishCheckpoint } from '../../src/runtime/checkpoint-publisher.js';
import { composeActivityLog } from '../../src/runtime/create-activity-log.js';
import type { ActivityDatabase } from '../../src/store/activity-table.js';
import { createStore } from '../../src/store/create-store.js';
import { DIALECT_REGISTRY } from '../../src/store/dialect-registry.js';
import { eraseActivities } from '../../src/store/erase.js';
import { ChainHeadReader } from '../../src/store/seal-head.js';
import { builtActivities } from '../helpers/activity-factory.js';
import { serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import { storeTargets } from '../helpers/store-targets.js';
import { test } from '../helpers/test-context.js';

/**
 * The proof API on every dialect: one activity, its inclusion proof checked by the standalone
 * `examples/verify-proof.js`, a row changed with plain SQL failing it, an erased row still passing,
 * proofs no checkpoint anchors, and the 400/401/404/409 answers.
 */

type Defer = (cleanup: () => unknown) => void;

const ADMIN_TOKEN = 'admin-token-for-proof-tests';
const HEADERS = { authorization: `Bearer ${ADMIN_TOKEN}` };
const VERIFIER = fileURLToPath(new URL('../../examples/verify-proof.js', import.meta.url));
const KEYS = generateSigningKeyPair();
const dir = mkdtempSync(join(tmpdir(), 'activity-proof-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const PRIVATE_KEY = join(dir, 'signing-key.pem');
const PUBLIC_KEY = join(dir, 'signing-key.pub.pem');
writeFileSync(PRIVATE_KEY, KEYS.privateKeyPem, { mode: 0o600 });
writeFileSync(PUBLIC_KEY, KEYS.publicKeyPem);

let files = 0;
/** Runs the standalone verifier on `answer` written to a file, as a third party would. */
function verifyWithExample(answer: unknown, ...args: string[]): { status: number | null; output: string } {
  const file = join(dir, `proof-${files++}.json`);
  writeFileSync(file, typeof answer === 'string' ? answer : JSON.stringify(answer));
  const run = spawnSync(process.execPath, [VERIFIER, file, ...args], { encoding: 'utf8' });
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}

interface ProofTable {
  readonly config: Config;
  readonly app: FastifyInstance;
  readonly db: Kysely<ActivityDatabase>;
  readonly checkpointDir: string;
  /** Ids of the sealed `orders` rows, oldest batch first. */
  readonly ids: readonly string[];
  checkpoint(): Promise<void>;
}

const inject = (t: ProofTable, path: string, headers: Record<string, string> = HEADERS) =>
  t.app.inject({ method: 'GET', url: path, headers });

for (const target of storeTargets(dir)) {
  const available = target.service === undefined || (await serviceAvailable(target.service));

  describe.skipIf(!available)(`inclusion proof API: ${target.name}`, () => {
    async function proofTable(defer: Defer, extra: Record<string, string> = {}): Promise<ProofTable> {
      const table = `proof_${uniqueSuffix()}`;
      const checkpointDir = join(dir, `checkpoints-${table}`);
      const env = {
        DATABASE_URL: target.databaseUrl(table),
        ACTIVITY_LOG_TABLE: table,
        ACTIVITY_LOG_SEAL: 'on',
        ACTIVITY_LOG_ADMIN_TOKEN: ADMIN_TOKEN,
        ACTIVITY_LOG_METHOD: 'sync',
        ACTIVITY_LOG_SIGNING_KEY: PRIVATE_KEY,
        ACTIVITY_LOG_CHECKPOINT_DIR: checkpointDir,
        ...extra,
      };
      const config = loadConfig({ env });
      const store = createStore(config.database);
      const db = new Kysely<ActivityDatabase>({
        dialect: DIALECT_REGISTRY[config.database.connection].create(config.database).createKyselyDialect(),
      });
      const composed = composeActivityLog({ env });
      const app = createActivityLogServer(composed);
      defer(async () => {
        await app.close();
        await composed.activityLog.close();
        await store.close();
        await db.destroy();
        await target.drop(table);
      });
      await store.migrate();
      // Two seals: five activities caused by User 7, then three by User 8.
      const first = builtActivities(5, 0);
      const second = builtActivities(3, 100, { causer: { type: 'User', id: 8 } });
      expect(await store.insertMany(first)).toBe(5);
      expect(await store.insertMany(second)).toBe(3);
      return {
        config,
        app,
        db,
        checkpointDir,
        ids: [...first, ...second].map((activity) => activity.id),
        checkpoint: async () => {
          const reader = new ChainHeadReader({ ...config.database, poolMax: 1 });
          const head = await reader.read().finally(() => reader.close());
          const published = await publishCheckpoint(head!, {
            privateKeyPem: KEYS.privateKeyPem,
            dir: config.checkpointDir,
            webhookUrl: null,
          });
          expect(published.failures).toEqual([]);
        },
      };
    }

    const updateDescription = (t: ProofTable, id: string, description: string) =>
      sql`UPDATE ${sql.table(t.config.database.table)} SET ${sql.id('description')} = ${description} WHERE ${sql.id('id')} = ${id}`.execute(
        t.db,
      );

    test('answers one activity as the list does, and 404, 400 and 401 otherwise', async ({ defer }) => {
      const t = await proofTable(defer);
      const id = t.ids[2]!;
      const one = await inject(t, `/api/backoffice/activity-logs/${id}`);
      expect(one.statusCode).toBe(200);
      const list = await inject(t, '/api/backoffice/activity-logs?limit=50');
      const item = list.json().data.find((activity: { id: string }) => activity.id === id);
      expect(one.json()).toEqual({ success: true, data: item });
      expect(activityJsonSchema.safeParse(one.json().data).success).toBe(true);
      expect((await inject(t, `/api/backoffice/activity-logs/${id.toUpperCase()}`)).json().data.id).toBe(id);

      const absent = '0190a0b0-0000-7000-8000-00000000dead';
      for (const path of [absent, `${absent}/proof`]) {
        const missing = await inject(t, `/api/backoffice/activity-logs/${path}`);
        expect(missing.statusCode).toBe(404);
        expect(missing.json()).toEqual({
          success: false,
          error: { code: 'NOT_FOUND', message: `no activity ${absent}` },
        });
      }
      for (const path of ['not-a-uuid', 'not-a-uuid/proof']) {
        const malformed = await inject(t, `/api/backoffice/activity-logs/${path}`);
        expect(malformed.statusCode).toBe(400);
        expect(malformed.json().error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'id' } });
        expect(malformed.json().error.message).toMatch(/^id must be a UUID/);
      }
      for (const path of [id, `${id}/proof`]) {
        const refused = await inject(t, `/api/backoffice/activity-logs/${path}`, {});
        expect(refused.statusCode).toBe(401);
        expect(refused.json().error.code).toBe('AUTH_REQUIRED');
      }
    });

    test('gives a proof the standalone verifier accepts, and refuses once the row is changed with SQL', async ({
      defer,
    }) => {
      const t = await proofTable(defer);
      await t.checkpoint();
      const id = t.ids[6]!;
      const answer = await inject(t, `/api/backoffice/activity-logs/${id}/proof`);
      expect(answer.statusCode).toBe(200);
      const body = answer.json();
      expect(activityProofAnswerSchema.safeParse(body).error?.issues ?? []).toEqual([]);
      expect(body.server_check).toEqual({ verified: true, anchored: true });
      expect(body.data).toMatchObject({
        anchored: true,
        unanchored_reason: null,
        leaf_index: expect.any(Number),
      });
      expect(body.data.activity.id).toBe(id);
      expect(body.data.seals.map((seal: { seq: number }) => seal.seq)).toEqual([2]);
      expect(body.data.checkpoint.body).toMatchObject({
        seq: 2,
        total_rows: 8,
        table: t.config.database.table,
      });
      // The answer as is, with the proof's own key and with the trusted one.
      expect(verifyWithExample(answer.body)).toEqual({ status: 0, output: 'verified' });
      expect(verifyWithExample(answer.body, PUBLIC_KEY)).toEqual({ status: 0, output: 'verified' });
      expect(verifyWithExample(answer.body, join(dir, 'missing.pem')).status).toBe(1);

      // A row of the first seal runs through both seals to the checkpoint.
      const older = (await inject(t, `/api/backoffice/activity-logs/${t.ids[1]}/proof`)).json();
      expect(older.data.seals.map((seal: { seq: number }) => seal.seq)).toEqual([1, 2]);
      expect(verifyWithExample(older, PUBLIC_KEY)).toEqual({ status: 0, output: 'verified' });

      // The proof's row edited by whoever holds the file.
      const edited = structuredClone(body);
      edited.data.activity.description = 'did something else';
      expect(verifyWithExample(edited, PUBLIC_KEY)).toEqual({
        status: 1,
        output: 'the activity does not hash to the leaf: the row was changed',
      });

      // The row changed in the database with plain SQL: its proof, fetched again, fails.
      await updateDescription(t, id, 'did something else');
      const tampered = await inject(t, `/api/backoffice/activity-logs/${id}/proof`);
      expect(tampered.statusCode).toBe(200);
      expect(tampered.json().data.activity.description).toBe('did something else');
      expect(tampered.json().server_check.verified).toBe(false);
      expect(verifyWithExample(tampered.body, PUBLIC_KEY)).toEqual({
        status: 1,
        output: 'the Merkle path does not reach the root of seal 2 (the row or its seal changed)',
      });
      // The proof fetched before the change still verifies: it is the evidence of what was sealed.
      expect(verifyWithExample(answer.body, PUBLIC_KEY)).toEqual({ status: 0, output: 'verified' });
      // A seal-mate's path is made from the changed row too, so it fails as well.
      expect(
        verifyWithExample((await inject(t, `/api/backoffice/activity-logs/${t.ids[5]}/proof`)).body).status,
      ).toBe(1);
      // The first seal is untouched.
      expect(
        verifyWithExample((await inject(t, `/api/backoffice/activity-logs/${t.ids[0]}/proof`)).body).status,
      ).toBe(0);
    });

    test("an erased row's proof still verifies, its personal fields null", async ({ defer }) => {
      const t = await proofTable(defer);
      const erased = await eraseActivities(t.config.database, { by: 'causer', type: 'User', id: '8' });
      expect(erased.erased).toBe(3);
      await t.checkpoint();
      const id = t.ids[5]!;
      const answer = (await inject(t, `/api/backoffice/activity-logs/${id}/proof`)).json();
      expect(answer.data).toMatchObject({ salt: null, anchored: true });
      expect(answer.data.activity).toMatchObject({
        causer_id: null,
        ip_address: null,
        user_agent: null,
        properties: null,
      });
      expect(Object.keys(answer.data.commitments).sort()).toEqual([
        'causer_id',
        'ip_address',
        'properties',
        'user_agent',
      ]);
      expect(answer.server_check).toEqual({ verified: true, anchored: true });
      expect(verifyWithExample(answer, PUBLIC_KEY)).toEqual({ status: 0, output: 'verified' });
      expect((await inject(t, `/api/backoffice/activity-logs/${id}`)).json().data).toMatchObject({
        erased: true,
        causer_id: null,
      });
      // A value put back into an erased field is not what the commitment stands for.
      await sql`UPDATE ${sql.table(t.config.database.table)} SET ${sql.id('ip_address')} = ${'10.0.0.9'} WHERE ${sql.id('id')} = ${id}`.execute(
        t.db,
      );
      const refilled = (await inject(t, `/api/backoffice/activity-logs/${id}/proof`)).json();
      expect(verifyWithExample(refilled, PUBLIC_KEY)).toEqual({
        status: 1,
        output: 'ip_address has a value but no salt: an erased field is null',
      });
    });

    test('a proof no checkpoint anchors runs to the head and says why', async ({ defer }) => {
      const t = await proofTable(defer);
      const noCheckpoint = (await inject(t, `/api/backoffice/activity-logs/${t.ids[0]}/proof`)).json();
      expect(noCheckpoint.data).toMatchObject({ anchored: false, checkpoint: null });
      expect(noCheckpoint.data.unanchored_reason).toMatch(/^no checkpoint of proof_\w+ in .* yet/);
      expect(noCheckpoint.data.seals.map((seal: { seq: number }) => seal.seq)).toEqual([1, 2]);
      expect(noCheckpoint.server_check).toEqual({ verified: true, anchored: false });
      const unanchored = verifyWithExample(noCheckpoint);
      expect(unanchored.status).toBe(0);
      expect(unanchored.output).toMatch(/^verified, NOT ANCHORED: no checkpoint of /);
      expect(verifyWithExample(noCheckpoint, PUBLIC_KEY)).toMatchObject({ status: 1 });

      // Sealed after the newest checkpoint: not anchored until the next one.
      await t.checkpoint();
      const [later] = builtActivities(1, 200);
      const store = createStore(t.config.database);
      defer(() => store.close());
      expect(await store.insertMany([later!])).toBe(1);
      const afterCheckpoint = (await inject(t, `/api/backoffice/activity-logs/${later!.id}/proof`)).json();
      expect(afterCheckpoint.data.unanchored_reason).toMatch(
        /^the newest checkpoint signs seal 2, before this activity's seal 3/,
      );
      expect(verifyWithExample(afterCheckpoint).output).toMatch(/^verified, NOT ANCHORED/);
      await t.checkpoint();
      const anchored = (await inject(t, `/api/backoffice/activity-logs/${later!.id}/proof`)).json();
      expect(anchored.data.checkpoint.body.seq).toBe(3);
      expect(verifyWithExample(anchored, PUBLIC_KEY)).toEqual({ status: 0, output: 'verified' });

      // An older row: the first checkpoint after its seal by default, the newest when asked.
      const seqs = (answer: { data: { seals: { seq: number }[] } }) =>
        answer.data.seals.map((seal) => seal.seq);
      const first = (await inject(t, `/api/backoffice/activity-logs/${t.ids[0]}/proof`)).json();
      expect([seqs(first), first.data.checkpoint.body.seq]).toEqual([[1, 2], 2]);
      const latest = (
        await inject(t, `/api/backoffice/activity-logs/${t.ids[0]}/proof?anchor=latest`)
      ).json();
      expect([seqs(latest), latest.data.checkpoint.body.seq]).toEqual([[1, 2, 3], 3]);
      expect(verifyWithExample(latest, PUBLIC_KEY)).toEqual({ status: 0, output: 'verified' });
      const wrong = await inject(t, `/api/backoffice/activity-logs/${t.ids[0]}/proof?anchor=newest`);
      expect(wrong.statusCode).toBe(400);
      expect(wrong.json().error).toMatchObject({ code: 'VALIDATION_FAILED', details: { field: 'anchor' } });
    });

    test('without ACTIVITY_LOG_CHECKPOINT_DIR the proof is not anchored; an unsealed row gets 409', async ({
      defer,
    }) => {
      const t = await proofTable(defer, { ACTIVITY_LOG_CHECKPOINT_DIR: '', ACTIVITY_LOG_SIGNING_KEY: '' });
      const proof = (await inject(t, `/api/backoffice/activity-logs/${t.ids[3]}/proof`)).json();
      expect(proof.data).toMatchObject({ anchored: false, checkpoint: null, public_key: null });
      expect(proof.data.unanchored_reason).toMatch(/^ACTIVITY_LOG_CHECKPOINT_DIR is not set/);
      expect(verifyWithExample(proof).status).toBe(0);

      const unsealedStore = createStore(
        loadConfig({
          env: {
            DATABASE_URL: target.databaseUrl(t.config.database.table),
            ACTIVITY_LOG_TABLE: t.config.database.table,
            ACTIVITY_LOG_SEAL: 'off',
          },
        }).database,
      );
      defer(() => unsealedStore.close());
      const [plain] = builtActivities(1, 300);
      expect(await unsealedStore.insertMany([plain!])).toBe(1);
      const unsealed = await inject(t, `/api/backoffice/activity-logs/${plain!.id}/proof`);
      expect(unsealed.statusCode).toBe(409);
      expect(unsealed.json().error).toMatchObject({
        code: 'ACTIVITY_NOT_SEALED',
        details: { sealed: false },
      });
      expect((await inject(t, `/api/backoffice/activity-logs/${plain!.id}`)).statusCode).toBe(200);

      // A row claiming a seal that does not exist.
      await sql`UPDATE ${sql.table(t.config.database.table)} SET ${sql.id('seal_seq')} = ${99} WHERE ${sql.id('id')} = ${plain!.id}`.execute(
        t.db,
      );
      const forged = await inject(t, `/api/backoffice/activity-logs/${plain!.id}/proof`);
      expect(forged.statusCode).toBe(409);
      expect(forged.json().error.code).toBe('PROOF_UNAVAILABLE');
      expect(forged.json().error.message).toMatch(/claims seal 99, which does not exist/);
    });
  });
}
