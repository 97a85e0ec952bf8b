import { DataSource, EntitySchema } from 'typeorm';
import { describe, expect } from 'vitest';
import { runWithContext } from '../../src/core/context.js';
import { logBulkChange, type ModelLogOptions } from '../../src/integrations/model-changes.js';
import { ActivityLogSubscriber } from '../../src/integrations/typeorm.js';
import type { ActivityLog } from '../../src/runtime/create-activity-log.js';
import { ADMIN_CAUSER, memoryActivityLog, ormTargets, type PostColumns } from '../helpers/orm-targets.js';
import { serviceAvailable, uniqueSuffix } from '../helpers/services.js';
import { test as it, type TestScope } from '../helpers/test-context.js';

const TARGETS = ormTargets({ mariadb: 'mariadb', postgres: 'postgres' });

interface Post extends PostColumns {
  updatedAt?: Date;
  deletedAt?: Date | null;
}

for (const target of TARGETS) {
  const up = await serviceAvailable(target.service);

  describe.skipIf(!up)(`TypeORM model changes on ${target.name}`, () => {
    /** A data source with a fresh soft-delete `Post` table, watched with `options`. */
    async function setUp(
      defer: TestScope['defer'],
      options: ModelLogOptions = { logAll: true },
      exceptAttributes = ['updatedAt'],
    ) {
      const tableName = `posts_${uniqueSuffix()}`;
      const PostSchema = new EntitySchema<Post>({
        name: 'Post',
        tableName,
        columns: {
          id: { type: Number, primary: true, generated: 'increment' },
          title: { type: String, length: 100 },
          body: { type: String, length: 500, default: '' },
          secretNote: { type: String, length: 100, nullable: true },
          updatedAt: { type: target.driver === 'postgres' ? 'timestamp' : 'datetime', updateDate: true },
          deletedAt: {
            type: target.driver === 'postgres' ? 'timestamp' : 'datetime',
            deleteDate: true,
            nullable: true,
          },
        },
      });
      const dataSource = new DataSource({
        type: target.driver,
        url: target.url,
        entities: [PostSchema],
        synchronize: true,
        logging: false,
      });
      await dataSource.initialize();
      defer(async () => {
        await dataSource.query(`DROP TABLE IF EXISTS ${dataSource.driver.escape(tableName)}`);
        await dataSource.destroy();
      });
      const { activityLog, activities } = memoryActivityLog();
      const subscriber = new ActivityLogSubscriber(activityLog, {
        exceptAttributes,
        models: [[PostSchema, options]],
      });
      dataSource.subscribers.push(subscriber);
      return { dataSource, posts: dataSource.getRepository(PostSchema), activityLog, activities, subscriber };
    }

    it('records created, updated, deleted (soft and hard) and restored with the entity as subject and the causer from the context', async ({
      defer,
    }) => {
      const { posts, activities } = await setUp(defer);
      await runWithContext({ causer: ADMIN_CAUSER, ipAddress: '192.0.2.1' }, async () => {
        const post = await posts.save(posts.create({ title: 'First', body: 'text' }));
        post.title = 'First, edited';
        await posts.save(post);
        await posts.softRemove(post);
        await posts.recover(post);
        await posts.remove(post);
      });
      const rows = activities();
      expect(rows.map((row) => row.event)).toEqual(['created', 'updated', 'deleted', 'restored', 'deleted']);
      for (const row of rows) {
        expect(row).toMatchObject({
          subjectType: 'Post',
          subjectId: rows[0]!.subjectId,
          causerType: 'User',
          causerId: '7',
          ipAddress: '192.0.2.1',
        });
      }
      expect(rows[0]!.subjectId).toMatch(/^\d+$/);
      expect(rows[0]!.properties).toEqual({
        attributes: {
          id: Number(rows[0]!.subjectId),
          title: 'First',
          body: 'text',
          secretNote: '[REDACTED]',
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
      expect(rows[4]!.properties).toMatchObject({
        attributes: { id: Number(rows[0]!.subjectId), title: 'First, edited' },
      });
    });

    it('with logOnlyDirty records only the changed attributes, with their previous values', async ({
      defer,
    }) => {
      const { posts, activities } = await setUp(defer, { logAll: true, logOnlyDirty: true }, [
        'updatedAt',
        'deletedAt',
      ]);
      const post = await posts.save(posts.create({ title: 'Draft', body: 'one' }));
      post.body = 'two';
      await posts.save(post);
      post.title = 'Final';
      post.body = 'three';
      await posts.save(post);
      const updates = activities().filter((row) => row.event === 'updated');
      expect(updates.map((row) => row.properties)).toEqual([
        { attributes: { body: 'two' }, old: { body: 'one' } },
        { attributes: { title: 'Final', body: 'three' }, old: { title: 'Draft', body: 'two' } },
      ]);
    });

    it('counts a change made through a relation as a change of its join column', async ({ defer }) => {
      const suffix = uniqueSuffix();
      interface Author {
        id: number;
        name: string;
      }
      interface Article {
        id: number;
        title: string;
        author: Author;
      }
      const AuthorSchema = new EntitySchema<Author>({
        name: 'Author',
        tableName: `authors_${suffix}`,
        columns: {
          id: { type: Number, primary: true, generated: 'increment' },
          name: { type: String, length: 50 },
        },
      });
      const ArticleSchema = new EntitySchema<Article>({
        name: 'Article',
        tableName: `articles_${suffix}`,
        columns: {
          id: { type: Number, primary: true, generated: 'increment' },
          title: { type: String, length: 50 },
        },
        relations: { author: { type: 'many-to-one', target: 'Author', joinColumn: { name: 'author_id' } } },
      });
      const dataSource = new DataSource({
        type: target.driver,
        url: target.url,
        entities: [AuthorSchema, ArticleSchema],
        synchronize: true,
        logging: false,
      });
      await dataSource.initialize();
      defer(async () => {
        await dataSource.query(`DROP TABLE IF EXISTS ${dataSource.driver.escape(`articles_${suffix}`)}`);
        await dataSource.query(`DROP TABLE IF EXISTS ${dataSource.driver.escape(`authors_${suffix}`)}`);
        await dataSource.destroy();
      });
      const { activityLog, activities } = memoryActivityLog();
      dataSource.subscribers.push(
        new ActivityLogSubscriber(activityLog, {
          models: [[ArticleSchema, { logAll: true, logOnlyDirty: true, dontSubmitEmptyLogs: true }]],
        }),
      );
      const authors = dataSource.getRepository(AuthorSchema);
      const articles = dataSource.getRepository(ArticleSchema);
      const ann = await authors.save(authors.create({ name: 'Ann' }));
      const bo = await authors.save(authors.create({ name: 'Bo' }));
      const article = await articles.save(articles.create({ title: 'Hello', author: ann }));
      article.author = bo;
      await articles.save(article);
      const updates = activities().filter((row) => row.event === 'updated');
      expect(updates.map((row) => row.properties)).toEqual([
        // The join column's property path, as TypeORM names it.
        { attributes: { 'author.id': bo.id }, old: { 'author.id': ann.id } },
      ]);
    });

    it('with dontSubmitEmptyLogs skips updates that change none of the logged attributes', async ({
      defer,
    }) => {
      const { posts, activities } = await setUp(defer, {
        logOnly: ['title'],
        logOnlyDirty: true,
        dontSubmitEmptyLogs: true,
      });
      const post = await posts.save(posts.create({ title: 'Kept', body: 'a' }));
      post.body = 'b';
      await posts.save(post);
      post.title = 'Renamed';
      await posts.save(post);
      const updates = activities().filter((row) => row.event === 'updated');
      expect(updates.map((row) => row.properties)).toEqual([
        { attributes: { title: 'Renamed' }, old: { title: 'Kept' } },
      ]);
    });

    it('hides logExcept and exceptAttributes fields', async ({ defer }) => {
      const { posts, activities } = await setUp(defer, { logAll: true, logExcept: ['secretNote'] }, [
        'updatedAt',
        'deletedAt',
      ]);
      const post = await posts.save(posts.create({ title: 'T', body: 'B', secretNote: 'hidden' }));
      post.secretNote = 'still hidden';
      post.title = 'T2';
      await posts.save(post);
      const [created, updated] = activities();
      expect(created!.properties).toEqual({ attributes: { id: post.id, title: 'T', body: 'B' } });
      expect(updated!.properties).toEqual({
        attributes: { id: post.id, title: 'T2', body: 'B' },
        old: { id: post.id, title: 'T', body: 'B' },
      });
    });

    it('records only the events in recordEvents, under useLogName, with descriptionForEvent', async ({
      defer,
    }) => {
      const { posts, activities } = await setUp(defer, {
        recordEvents: ['deleted'],
        logOnly: ['title'],
        useLogName: 'posts',
        descriptionForEvent: (event, model) => `${event} post ${(model as Post).title}`,
      });
      const post = await posts.save(posts.create({ title: 'Gone' }));
      await posts.remove(post);
      expect(activities().map((row) => [row.logName, row.event, row.description, row.properties])).toEqual([
        ['posts', 'deleted', 'deleted post Gone', { attributes: { title: 'Gone' } }],
      ]);
    });

    it('logs nothing for a rolled-back transaction and everything, exactly once, for a committed one', async ({
      defer,
    }) => {
      const { dataSource, activities } = await setUp(defer, { logOnly: ['title'] });
      await expect(
        dataSource.transaction(async (manager) => {
          const repository = manager.getRepository<Post>('Post');
          const post = await repository.save(repository.create({ title: 'Never' }));
          post.title = 'Never again';
          await repository.save(post);
          throw new Error('abort');
        }),
      ).rejects.toThrow('abort');
      expect(activities()).toEqual([]);

      let insideCount = -1;
      await dataSource.transaction(async (manager) => {
        const repository = manager.getRepository<Post>('Post');
        const post = await repository.save(repository.create({ title: 'Kept' }));
        post.title = 'Kept, edited';
        await repository.save(post);
        await repository.remove(post);
        insideCount = activities().length;
      });
      expect(insideCount).toBe(0);
      const rows = activities();
      expect(rows.map((row) => row.event)).toEqual(['created', 'updated', 'deleted']);
      expect(new Set(rows.map((row) => row.id)).size).toBe(3);
    });

    it("never fails the application's write when a change cannot be recorded", async ({ defer }) => {
      const { dataSource, posts, activityLog, subscriber } = await setUp(defer, { logOnly: ['title'] });
      const errors: unknown[] = [];
      dataSource.subscribers.splice(dataSource.subscribers.indexOf(subscriber), 1);
      const [PostSchema] = dataSource.entityMetadatas.map((metadata) => metadata.target);
      dataSource.subscribers.push(
        new ActivityLogSubscriber(activityLog, {
          models: [[PostSchema as never, { logOnly: ['title'] }]],
          onDeliveryError: (error) => errors.push(error),
        }),
      );
      await activityLog.close();
      const post = await posts.save(posts.create({ title: 'Written anyway' }));
      post.title = 'Edited anyway';
      // Outside a transaction the activity is logged from the hook itself.
      await posts.save(post, { transaction: false });
      expect((await posts.findOneByOrFail({ id: post.id })).title).toBe('Edited anyway');
      expect(errors.length).toBeGreaterThanOrEqual(2);
      expect(errors.every((error) => (error as { code?: string }).code === 'DELIVERY_CLOSED')).toBe(true);
    });

    it('drops the activities of a rolled-back savepoint and keeps the rest of the transaction', async ({
      defer,
    }) => {
      const { dataSource, activities } = await setUp(defer, { logOnly: ['title'] });
      const queryRunner = dataSource.createQueryRunner();
      defer(() => queryRunner.release());
      const repository = queryRunner.manager.getRepository<Post>('Post');
      await queryRunner.startTransaction();
      await repository.save(repository.create({ title: 'Outer' }));
      await queryRunner.startTransaction();
      await repository.save(repository.create({ title: 'Savepoint' }));
      await queryRunner.rollbackTransaction();
      await queryRunner.startTransaction();
      await repository.save(repository.create({ title: 'Released' }));
      await queryRunner.commitTransaction();
      expect(activities()).toEqual([]);
      await queryRunner.commitTransaction();
      expect(activities().map((row) => (row.properties.attributes as { title: string }).title)).toEqual([
        'Outer',
        'Released',
      ]);

      await queryRunner.startTransaction();
      await queryRunner.startTransaction();
      await repository.save(repository.create({ title: 'Released, then the outer rolls back' }));
      await queryRunner.commitTransaction();
      await queryRunner.rollbackTransaction();
      expect(activities()).toHaveLength(2);
    });

    it('finds watched entities by class or by name and ignores the others', async ({ defer }) => {
      class Comment {
        id!: number;
        text!: string;
      }
      const suffix = uniqueSuffix();
      const CommentSchema = new EntitySchema<Comment>({
        name: 'Comment',
        target: Comment,
        tableName: `comments_${suffix}`,
        columns: { id: { type: Number, primary: true, generated: 'increment' }, text: { type: String } },
      });
      const TagSchema = new EntitySchema<{ id: number; label: string }>({
        name: 'Tag',
        tableName: `tags_${suffix}`,
        columns: { id: { type: Number, primary: true, generated: 'increment' }, label: { type: String } },
      });
      const NoteSchema = new EntitySchema<{ id: number; body: string }>({
        name: 'Note',
        tableName: `notes_${suffix}`,
        columns: { id: { type: Number, primary: true, generated: 'increment' }, body: { type: String } },
      });
      const dataSource = new DataSource({
        type: target.driver,
        url: target.url,
        entities: [CommentSchema, TagSchema, NoteSchema],
        synchronize: true,
        logging: false,
      });
      await dataSource.initialize();
      defer(async () => {
        for (const table of [`comments_${suffix}`, `tags_${suffix}`, `notes_${suffix}`]) {
          await dataSource.query(`DROP TABLE IF EXISTS ${dataSource.driver.escape(table)}`);
        }
        await dataSource.destroy();
      });
      const { store, activityLog } = memoryActivityLog();
      dataSource.subscribers.push(
        new ActivityLogSubscriber(activityLog, { models: [[Comment, { logAll: true }], 'Tag'] }),
      );
      const comment = Object.assign(new Comment(), { text: 'hi' });
      await dataSource.getRepository(Comment).save(comment);
      await dataSource.getRepository(TagSchema).save({ label: 'news' });
      await dataSource.getRepository(NoteSchema).save({ body: 'not watched' });
      const rows = [...store.rows.values()].map((row) => [row.subjectType, row.event, row.properties]);
      expect(rows.sort()).toEqual([
        ['Comment', 'created', { attributes: { id: comment.id, text: 'hi' } }],
        ['Tag', 'created', {}],
      ]);
    });

    it('does not see criteria updates, which logBulkChange records one activity per row', async ({
      defer,
    }) => {
      const { dataSource, activityLog, activities, subscriber } = await setUp(defer, { logOnly: ['title'] });
      const ids = await dataSource.transaction(async (manager) => {
        const repository = manager.getRepository<Post>('Post');
        const saved = await repository.save([
          repository.create({ title: 'a' }),
          repository.create({ title: 'b' }),
        ]);
        return saved.map((post) => post.id);
      });
      const before = activities().length;
      await dataSource.transaction(async (manager) => {
        await manager.getRepository<Post>('Post').update(ids, { title: 'same' });
        await logBulkChange(
          activityLog as ActivityLog,
          { subjectType: 'Post', ids, event: 'updated', attributes: { title: 'same' } },
          { into: subscriber.activitiesAfterCommit(manager.queryRunner!)! },
        );
        expect(activities()).toHaveLength(before);
      });
      const rows = activities().slice(before);
      expect(rows.map((row) => [row.subjectId, row.event, row.properties])).toEqual(
        ids.map((id) => [String(id), 'updated', { bulk: true, attributes: { title: 'same' } }]),
      );
      expect(rows[1]!.batchUuid).toBe(rows[0]!.batchUuid);
    });
  });
}
