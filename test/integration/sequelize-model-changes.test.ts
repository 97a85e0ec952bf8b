import { AsyncLocalStorage } from 'node:async_hooks';
import { DataTypes, type Model, type ModelStatic, Sequelize, type Transaction } from 'sequelize';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { runWithContext } from '../../src/core/context.js';
import type { PendingActivities } from '../../src/core/pending-activities.js';
import { logBulkChange } from '../../src/integrations/model-changes.js';
import {
  logSequelizeModels,
  type SequelizeActivityLogging,
  type SequelizeModelEntry,
} from '../../src/integrations/sequelize.js';
import type { ActivityLog } from '../../src/runtime/create-activity-log.js';
import { ADMIN_CAUSER, memoryActivityLog, ormTargets, type PostColumns } from '../helpers/orm-targets.js';
import { serviceAvailable, uniqueSuffix } from '../helpers/services.js';

const TARGETS = ormTargets({ mariadb: 'mysql', postgres: 'postgres' });

type PostModel = Model<PostColumns, Partial<PostColumns>> & PostColumns;

for (const target of TARGETS) {
  const up = await serviceAvailable(target.service);

  describe.skipIf(!up)(`Sequelize model changes on ${target.name}`, () => {
    let sequelize: Sequelize;
    const tables: string[] = [];

    beforeAll(() => {
      sequelize = new Sequelize(target.url, { dialect: target.driver, logging: false });
    });

    afterAll(async () => {
      for (const table of tables) await sequelize.getQueryInterface().dropTable(table);
      await sequelize.close();
    });

    /** A fresh soft-delete `Post` model on its own table, watched with `entry`'s options. */
    async function setUp(
      options: Exclude<SequelizeModelEntry, ModelStatic<Model>>[1] = { logAll: true },
      exceptAttributes: readonly string[] = ['updatedAt'],
    ): Promise<{
      Post: ModelStatic<PostModel>;
      activityLog: ActivityLog;
      activities: () => Activity[];
      logging: SequelizeActivityLogging;
    }> {
      const tableName = `posts_${uniqueSuffix()}`;
      const Post = sequelize.define<PostModel>(
        // Each test defines `Post` anew on its own table; the newest definition replaces the last.
        'Post',
        {
          id: { type: DataTypes.INTEGER, autoIncrement: true, primaryKey: true },
          title: { type: DataTypes.STRING(100), allowNull: false },
          body: { type: DataTypes.STRING(500), allowNull: false, defaultValue: '' },
          secretNote: { type: DataTypes.STRING(100), allowNull: true },
        },
        { tableName, paranoid: true, timestamps: true },
      );
      await Post.sync();
      tables.push(tableName);
      const { activityLog, activities } = memoryActivityLog();
      const logging = logSequelizeModels(activityLog, {
        exceptAttributes,
        models: [[Post as unknown as ModelStatic<Model>, options as never]],
      });
      return { Post, activityLog, activities, logging };
    }

    it('records created, updated, deleted and restored with the model as subject and the causer from the context', async () => {
      const { Post, activities } = await setUp();
      await runWithContext({ causer: ADMIN_CAUSER, ipAddress: '192.0.2.1' }, async () => {
        const post = await Post.create({ title: 'First', body: 'text' });
        await post.update({ title: 'First, edited' });
        await post.destroy();
        await post.restore();
      });
      const rows = activities();
      expect(rows.map((row) => row.event)).toEqual(['created', 'updated', 'deleted', 'restored']);
      for (const row of rows) {
        expect(row).toMatchObject({
          subjectType: 'Post',
          causerType: 'User',
          causerId: '7',
          ipAddress: '192.0.2.1',
          logName: 'default',
        });
        expect(row.subjectId).toBe(rows[0]!.subjectId);
      }
      expect(rows[0]!.description).toBe('created');
      expect(rows[0]!.properties).toEqual({
        attributes: {
          id: Number(rows[0]!.subjectId),
          title: 'First',
          body: 'text',
          // Keys that look secret are redacted even when every attribute is logged.
          secretNote: '[REDACTED]',
          createdAt: expect.any(String),
          deletedAt: null,
        },
      });
      expect(rows[1]!.properties).toMatchObject({
        attributes: { title: 'First, edited', body: 'text' },
        old: { title: 'First', body: 'text' },
      });
      expect((rows[2]!.properties.attributes as Record<string, unknown>).deletedAt).toEqual(
        expect.any(String),
      );
    });

    it('with logOnlyDirty records only the changed attributes, with their previous values', async () => {
      const { Post, activities } = await setUp({ logAll: true, logOnlyDirty: true });
      const post = await Post.create({ title: 'Draft', body: 'one' });
      await post.update({ body: 'two' });
      post.title = 'Final';
      post.body = 'three';
      await post.save();
      const updates = activities().filter((row) => row.event === 'updated');
      expect(updates.map((row) => row.properties)).toEqual([
        { attributes: { body: 'two' }, old: { body: 'one' } },
        { attributes: { title: 'Final', body: 'three' }, old: { title: 'Draft', body: 'two' } },
      ]);
    });

    it('keeps the previous values of a static update with individualHooks whose rows change differently', async () => {
      const { Post, activities } = await setUp({
        logOnly: ['title', 'body'],
        logOnlyDirty: true,
        dontSubmitEmptyLogs: true,
      });
      const fresh = await Post.create({ title: 'Fresh', body: 'draft' });
      const done = await Post.create({ title: 'Done', body: 'archived' });
      // One row changes and the other does not: Sequelize saves them one by one.
      await Post.update({ body: 'archived' }, { where: { id: [fresh.id, done.id] }, individualHooks: true });
      const updates = activities().filter((row) => row.event === 'updated');
      expect(updates.map((row) => [row.subjectId, row.properties])).toEqual([
        [String(fresh.id), { attributes: { body: 'archived' }, old: { body: 'draft' } }],
      ]);
    });

    it('with dontSubmitEmptyLogs skips updates that change none of the logged attributes', async () => {
      const { Post, activities } = await setUp({
        logOnly: ['title'],
        logOnlyDirty: true,
        dontSubmitEmptyLogs: true,
      });
      const post = await Post.create({ title: 'Kept', body: 'a' });
      await post.update({ body: 'b' });
      await post.update({ title: 'Renamed' });
      const updates = activities().filter((row) => row.event === 'updated');
      expect(updates.map((row) => row.properties)).toEqual([
        { attributes: { title: 'Renamed' }, old: { title: 'Kept' } },
      ]);
    });

    it('hides logExcept and exceptAttributes fields', async () => {
      const { Post, activities } = await setUp({ logAll: true, logExcept: ['secretNote'] }, [
        'updatedAt',
        'createdAt',
        'deletedAt',
      ]);
      const post = await Post.create({ title: 'T', body: 'B', secretNote: 'hidden' });
      await post.update({ secretNote: 'still hidden', title: 'T2' });
      const [created, updated] = activities();
      expect(created!.properties).toEqual({ attributes: { id: post.id, title: 'T', body: 'B' } });
      expect(updated!.properties).toEqual({
        attributes: { id: post.id, title: 'T2', body: 'B' },
        old: { id: post.id, title: 'T', body: 'B' },
      });
    });

    it('records only the events in recordEvents, under useLogName, with descriptionForEvent', async () => {
      const { Post, activities } = await setUp({
        recordEvents: ['deleted'],
        logOnly: ['title'],
        useLogName: 'posts',
        descriptionForEvent: (event, model) => `${event} post ${(model as PostModel).title}`,
      });
      const post = await Post.create({ title: 'Gone' });
      await post.update({ title: 'Gone soon' });
      await post.destroy();
      expect(activities().map((row) => [row.logName, row.event, row.description, row.properties])).toEqual([
        ['posts', 'deleted', 'deleted post Gone soon', { attributes: { title: 'Gone soon' } }],
      ]);
    });

    it('logs nothing for a rolled-back transaction and everything, exactly once, for a committed one', async () => {
      const { Post, activities } = await setUp({ logOnly: ['title'] });
      await expect(
        sequelize.transaction(async (transaction) => {
          const post = await Post.create({ title: 'Never' }, { transaction });
          await post.update({ title: 'Never again' }, { transaction });
          throw new Error('abort');
        }),
      ).rejects.toThrow('abort');
      expect(activities()).toEqual([]);
      expect(await Post.count()).toBe(0);

      let insideCount = -1;
      await sequelize.transaction(async (transaction) => {
        const post = await Post.create({ title: 'Kept' }, { transaction });
        await post.update({ title: 'Kept, edited' }, { transaction });
        await post.destroy({ transaction });
        insideCount = activities().length;
      });
      expect(insideCount).toBe(0);
      const rows = activities();
      expect(rows.map((row) => row.event)).toEqual(['created', 'updated', 'deleted']);
      expect(new Set(rows.map((row) => row.id)).size).toBe(3);
    });

    if (target.driver === 'postgres') {
      it('delivers nothing when COMMIT itself fails (a deferred constraint)', async () => {
        const { Post, activities } = await setUp({ logOnly: ['title'] });
        await sequelize.query(
          `ALTER TABLE "${Post.getTableName() as string}" ADD CONSTRAINT "${Post.getTableName() as string}_title" UNIQUE (title) DEFERRABLE INITIALLY DEFERRED`,
        );
        await expect(
          sequelize.transaction(async (transaction) => {
            await Post.create({ title: 'Twice' }, { transaction });
            await Post.create({ title: 'Twice' }, { transaction });
          }),
        ).rejects.toThrow();
        expect(await Post.count()).toBe(0);
        expect(activities()).toEqual([]);
        await sequelize.transaction(async (transaction) => {
          await Post.create({ title: 'Once' }, { transaction });
        });
        expect(activities().map((row) => row.event)).toEqual(['created']);
      });
    }

    it("never fails the application's write when a change cannot be recorded", async () => {
      const { Post, activityLog, activities, logging } = await setUp({ logOnly: ['title'] });
      logging.detach();
      const errors: unknown[] = [];
      logSequelizeModels(activityLog, {
        models: [[Post as unknown as ModelStatic<Model>, { logOnly: ['title'] }]],
        onDeliveryError: (error) => errors.push(error),
      });
      await activityLog.close();
      const post = await Post.create({ title: 'Written anyway' });
      await sequelize.transaction(async (transaction) => {
        await post.update({ title: 'Edited anyway' }, { transaction });
      });
      expect((await Post.findByPk(post.id))?.title).toBe('Edited anyway');
      expect(activities()).toEqual([]);
      expect(errors).toHaveLength(2);
      expect(errors).toEqual([
        expect.objectContaining({ code: 'DELIVERY_CLOSED' }),
        expect.objectContaining({ code: 'DELIVERY_CLOSED' }),
      ]);
    });

    it('drops the activities of a rolled-back savepoint and keeps the rest of the transaction', async () => {
      const { Post, activities } = await setUp({ logOnly: ['title'] });
      await sequelize.transaction(async (outer) => {
        await Post.create({ title: 'Outer' }, { transaction: outer });
        await expect(
          sequelize.transaction({ transaction: outer }, async (savepoint) => {
            await Post.create({ title: 'Savepoint' }, { transaction: savepoint });
            throw new Error('undo savepoint');
          }),
        ).rejects.toThrow('undo savepoint');
        await sequelize.transaction({ transaction: outer }, async (savepoint) => {
          await Post.create({ title: 'Released' }, { transaction: savepoint });
        });
      });
      expect(activities().map((row) => (row.properties.attributes as { title: string }).title)).toEqual([
        'Outer',
        'Released',
      ]);
      expect((await Post.findAll()).map((post) => post.title).sort()).toEqual(['Outer', 'Released']);
      await expect(
        sequelize.transaction(async (outer) => {
          await sequelize.transaction({ transaction: outer }, async (savepoint) => {
            await Post.create({ title: 'Released, then the outer rolls back' }, { transaction: savepoint });
          });
          throw new Error('undo everything');
        }),
      ).rejects.toThrow('undo everything');
      expect(activities()).toHaveLength(2);
    });

    it("finds the transaction through Sequelize's CLS namespace when it is not passed", async () => {
      const { Post, activities } = await setUp({ logOnly: ['title'] });
      Sequelize.useCLS(asyncLocalNamespace());
      try {
        await expect(
          sequelize.transaction(async () => {
            const post = await Post.create({ title: 'Rolled back, no transaction option' });
            // Instance destroy() passes its own options to its hooks: the transaction comes from CLS.
            await post.destroy();
            throw new Error('abort');
          }),
        ).rejects.toThrow('abort');
        expect(activities()).toEqual([]);
        await sequelize.transaction(async () => {
          const post = await Post.create({ title: 'Committed, no transaction option' });
          await post.destroy();
          expect(activities()).toEqual([]);
        });
        expect(activities().map((row) => [row.event, row.properties])).toEqual([
          ['created', { attributes: { title: 'Committed, no transaction option' } }],
          ['deleted', { attributes: { title: 'Committed, no transaction option' } }],
        ]);
      } finally {
        (Sequelize as unknown as { _cls: unknown })._cls = undefined;
      }
    });

    it('stops recording after detach()', async () => {
      const { Post, activities, logging } = await setUp({ logOnly: ['title'] });
      await Post.create({ title: 'Recorded' });
      logging.detach();
      await Post.create({ title: 'Not recorded' });
      expect(activities().map((row) => row.properties)).toEqual([{ attributes: { title: 'Recorded' } }]);
    });

    it('does not see static bulk updates, which logBulkChange records one activity per row', async () => {
      const { Post, activityLog, activities } = await setUp({ logOnly: ['title'] });
      const posts = await Post.bulkCreate([{ title: 'a' }, { title: 'b' }]);
      const ids = posts.map((post) => post.id);
      await sequelize.transaction(async (transaction) => {
        await Post.update({ title: 'same' }, { where: { id: ids }, transaction });
        await logBulkChange(
          activityLog,
          { subjectType: 'Post', ids, event: 'updated', attributes: { title: 'same' } },
          { into: logSequelizeModelsFor(activityLog, transaction) },
        );
        expect(activities()).toEqual([]);
      });
      const rows = activities();
      expect(rows.map((row) => [row.subjectId, row.event, row.properties])).toEqual(
        ids.map((id) => [String(id), 'updated', { bulk: true, attributes: { title: 'same' } }]),
      );
      expect(rows[0]!.batchUuid).not.toBeNull();
      expect(rows[1]!.batchUuid).toBe(rows[0]!.batchUuid);
    });
  });
}

/** The CLS namespace interface Sequelize expects (`get`, `set`, `run`, `bind`), on AsyncLocalStorage. */
function asyncLocalNamespace() {
  const storage = new AsyncLocalStorage<Map<string, unknown>>();
  return {
    get: (key: string) => storage.getStore()?.get(key),
    set: (key: string, value: unknown) => storage.getStore()?.set(key, value),
    run: (fn: (context: Map<string, unknown>) => unknown) => {
      const context = new Map(storage.getStore());
      return storage.run(context, () => fn(context));
    },
    bind: <F extends (...args: never[]) => unknown>(fn: F) => fn,
  };
}

/** An after-commit list bound to `transaction`, from a registration that watches no model. */
function logSequelizeModelsFor(activityLog: ActivityLog, transaction: Transaction): PendingActivities {
  return logSequelizeModels(activityLog, { models: [] }).activitiesAfterCommit(transaction);
}
