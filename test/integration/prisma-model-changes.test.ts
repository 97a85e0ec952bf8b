import type { AddressInfo } from 'node:net';
import express from 'express';
import { describe, expect } from 'vitest';
import type { Activity } from '../../src/core/activity.js';
import { runWithContext } from '../../src/core/context.js';
import { activityLogMiddleware } from '../../src/integrations/express.js';
import {
  type PrismaActivityLogOptions,
  type PrismaModelOptions,
  withActivityLog,
} from '../../src/integrations/prisma.js';
import { ADMIN_CAUSER, memoryActivityLog } from '../helpers/orm-targets.js';
import { serviceAvailable } from '../helpers/services.js';
import { test as it, type TestScope } from '../helpers/test-context.js';
import { PRISMA_TARGETS } from '../prisma/prisma-targets.js';

/** `properties.attributes` or `properties.old` of an activity, as a record. */
function values(row: Activity, key: 'attributes' | 'old'): Record<string, unknown> {
  return (row.properties[key] ?? {}) as Record<string, unknown>;
}

for (const target of PRISMA_TARGETS) {
  const up = target.service === null || (await serviceAvailable(target.service));

  describe.skipIf(!up)(`Prisma model changes on ${target.name}`, () => {
    /** A client on fresh tables, extended to watch `Post` with `options`. */
    async function setUp(
      defer: TestScope['defer'],
      options: PrismaModelOptions = { logAll: true, softDeleteField: 'deletedAt' },
      extra: Partial<PrismaActivityLogOptions> = {},
    ) {
      const base = await target.connect(defer);
      const { activityLog, activities, store } = memoryActivityLog();
      const prisma = withActivityLog(base, activityLog, { models: { Post: options }, ...extra });
      return { base, prisma, activities, store };
    }

    it('records create, update, upsert, delete and soft delete/restore with attributes, old values and the causer', async ({
      defer,
    }) => {
      const { prisma, activities } = await setUp(defer);
      await runWithContext({ causer: ADMIN_CAUSER, ipAddress: '192.0.2.1' }, async () => {
        const post = await prisma.post.create({ data: { title: 'First', body: 'text' } });
        await prisma.post.update({ where: { id: post.id }, data: { title: 'First, edited' } });
        await prisma.post.upsert({
          where: { id: post.id },
          create: { title: 'x' },
          update: { body: 'more' },
        });
        await prisma.post.upsert({ where: { id: 999 }, create: { id: 999, title: 'Made' }, update: {} });
        const deletedAt = new Date('2026-01-02T03:04:05.000Z');
        await prisma.post.update({ where: { id: post.id }, data: { deletedAt } });
        await prisma.post.update({ where: { id: post.id }, data: { deletedAt: null } });
        await prisma.post.delete({ where: { id: post.id } });
      });
      const rows = activities();
      expect(rows.map((row) => row.event)).toEqual([
        'created',
        'updated',
        'updated',
        'created',
        'deleted',
        'restored',
        'deleted',
      ]);
      for (const row of rows) {
        expect([row.causerType, row.causerId]).toEqual(['User', '7']);
        expect(row.ipAddress).toBe('192.0.2.1');
        expect(row.subjectType).toBe('Post');
      }
      const id = rows[0]!.subjectId;
      expect(rows[0]!.properties).toEqual({
        // `secretNote` matches the default redacted keys.
        attributes: {
          id: Number(id),
          title: 'First',
          body: 'text',
          secretNote: '[REDACTED]',
          deletedAt: null,
        },
      });
      expect(rows[1]!.properties.attributes).toMatchObject({ title: 'First, edited', body: 'text' });
      expect(rows[1]!.properties.old).toMatchObject({ title: 'First', body: 'text' });
      expect(rows[2]!.properties.old).toMatchObject({ title: 'First, edited', body: 'text' });
      expect(rows[2]!.properties.attributes).toMatchObject({ body: 'more' });
      expect(rows[3]!.subjectId).toBe('999');
      expect(rows[6]!.properties.attributes).toMatchObject({ title: 'First, edited', body: 'more' });
    });

    it('records as old the values an update replaced when another writer changed the row between the read and the write', async ({
      defer,
    }) => {
      const base = await target.connect(defer);
      const { activityLog, activities } = memoryActivityLog();
      let interfere = true;
      // Below the extension: right after its first read of the post, another writer changes the row.
      const racing = base.$extends({
        query: {
          post: {
            async findMany({ args, query }) {
              const found = await query(args);
              if (interfere) {
                interfere = false;
                await base.post.updateMany({ where: {}, data: { body: 'from the other writer' } });
              }
              return found;
            },
          },
        },
      });
      const prisma = withActivityLog(racing, activityLog, {
        models: { Post: { logOnly: ['body'], logOnlyDirty: true } },
      });
      const post = await base.post.create({ data: { title: 't', body: 'first' } });
      await prisma.post.update({ where: { id: post.id }, data: { body: 'mine' } });
      expect(interfere).toBe(false);
      expect(activities().map((row) => row.properties)).toEqual([
        { attributes: { body: 'mine' }, old: { body: 'from the other writer' } },
      ]);
      expect(await base.post.findUnique({ where: { id: post.id } })).toMatchObject({ body: 'mine' });
    });

    it('rejects an update or delete of a missing row as Prisma does, recording nothing', async ({
      defer,
    }) => {
      const { prisma, activities } = await setUp(defer);
      await expect(prisma.post.update({ where: { id: 404 }, data: { body: 'b' } })).rejects.toMatchObject({
        code: 'P2025',
      });
      await expect(prisma.post.delete({ where: { id: 404 } })).rejects.toMatchObject({ code: 'P2025' });
      expect(activities()).toHaveLength(0);
    });

    it('updates with no read first when the model records no field values', async ({ defer }) => {
      const base = await target.connect(defer);
      const { activityLog, activities } = memoryActivityLog();
      let reads = 0;
      const counting = base.$extends({
        query: {
          post: {
            findMany({ args, query }) {
              reads++;
              return query(args);
            },
          },
        },
      });
      const prisma = withActivityLog(counting, activityLog, { models: { Post: {} } });
      const post = await base.post.create({ data: { title: 't' } });
      await prisma.post.update({ where: { id: post.id }, data: { body: 'b' } });
      await prisma.post.delete({ where: { id: post.id } });
      expect(reads).toBe(0);
      expect(activities().map((row) => [row.event, row.subjectId, row.properties])).toEqual([
        ['updated', String(post.id), {}],
        ['deleted', String(post.id), {}],
      ]);
    });

    it('applies logOnly, logOnlyDirty, dontSubmitEmptyLogs, useLogName, descriptionForEvent and exceptAttributes', async ({
      defer,
    }) => {
      const { prisma, activities } = await setUp(
        defer,
        {
          logOnly: ['title', 'body', 'secretNote'],
          logOnlyDirty: true,
          dontSubmitEmptyLogs: true,
          useLogName: 'posts',
          descriptionForEvent: (event, post) => `post ${String(post.title)} ${event}`,
        },
        { exceptAttributes: ['secretNote'] },
      );
      const post = await prisma.post.create({
        data: { title: 'A', secretNote: 'hidden' },
        select: { id: true },
      });
      expect(post).toEqual({ id: post.id });
      await prisma.post.update({ where: { id: post.id }, data: { secretNote: 'still hidden' } });
      await prisma.post.update({ where: { id: post.id }, data: { title: 'B' } });
      const rows = activities();
      expect(rows.map((row) => [row.event, row.logName, row.description])).toEqual([
        ['created', 'posts', 'post A created'],
        ['updated', 'posts', 'post B updated'],
      ]);
      expect(rows[0]!.properties).toEqual({ attributes: { title: 'A', body: '' } });
      expect(rows[1]!.properties).toEqual({ attributes: { title: 'B' }, old: { title: 'A' } });
    });

    it('records one activity per row of createMany, updateMany and deleteMany under one batch uuid each', async ({
      defer,
    }) => {
      const { prisma, activities } = await setUp(defer, { logAll: true });
      await prisma.post.createMany({ data: [{ title: 'a' }, { title: 'b' }, { title: 'c' }] });
      await prisma.post.updateMany({ where: { title: { in: ['a', 'b'] } }, data: { body: 'bulk' } });
      await prisma.post.deleteMany({ where: { body: 'bulk' } });
      const rows = activities();
      const created = rows.filter((row) => row.event === 'created');
      const updated = rows.filter((row) => row.event === 'updated');
      const deleted = rows.filter((row) => row.event === 'deleted');
      // MariaDB returns no rows from createMany: rows without a key given are summarised.
      if (target.name === 'MariaDB') {
        expect(created).toHaveLength(1);
        expect(created[0]!.properties).toMatchObject({ bulk: true, model: 'Post', count: 3 });
      } else {
        expect(created.map((row) => values(row, 'attributes').title)).toEqual(['a', 'b', 'c']);
        expect(new Set(created.map((row) => row.batchUuid)).size).toBe(1);
      }
      expect(updated.map((row) => [values(row, 'old').body, values(row, 'attributes').body])).toEqual([
        ['', 'bulk'],
        ['', 'bulk'],
      ]);
      expect(new Set(updated.map((row) => row.batchUuid)).size).toBe(1);
      expect(deleted.map((row) => values(row, 'attributes').title).sort()).toEqual(['a', 'b']);
      expect(new Set(deleted.map((row) => row.batchUuid)).size).toBe(1);
      expect(updated[0]!.batchUuid).not.toBe(deleted[0]!.batchUuid);
    });

    it('records 2,000 activities for an updateMany over 2,000 rows, and one summary past the row limit', async ({
      defer,
    }) => {
      const { base, prisma, activities, store } = await setUp(
        defer,
        { logOnly: ['body'] },
        { bulkRowLimit: 2_000 },
      );
      await base.post.createMany({ data: Array.from({ length: 2_000 }, (_, i) => ({ title: `p${i}` })) });
      const result = await prisma.post.updateMany({ where: {}, data: { body: 'one' } });
      expect(result.count).toBe(2_000);
      const rows = activities();
      expect(rows).toHaveLength(2_000);
      expect(new Set(rows.map((row) => row.batchUuid)).size).toBe(1);
      expect(
        rows.every((row) => values(row, 'old').body === '' && values(row, 'attributes').body === 'one'),
      ).toBe(true);
      expect(new Set(rows.map((row) => row.subjectId)).size).toBe(2_000);
      store.rows.clear();
      await base.post.create({ data: { title: 'one more' } });
      await prisma.post.updateMany({ where: { title: { not: 'nothing' } }, data: { body: 'two' } });
      expect(activities().map((row) => row.properties)).toEqual([
        { bulk: true, model: 'Post', filter: { title: { not: 'nothing' } }, count: 2_001 },
      ]);
    });

    it('delivers the changes of a committed transaction and drops those of a rolled-back one', async ({
      defer,
    }) => {
      const { prisma, activities } = await setUp(defer);
      await prisma.$transaction(async (tx) => {
        const post = await tx.post.create({ data: { title: 'kept' } });
        await tx.post.update({ where: { id: post.id }, data: { body: 'edited' } });
        expect(activities()).toHaveLength(0);
      });
      expect(activities().map((row) => row.event)).toEqual(['created', 'updated']);
      await expect(
        prisma.$transaction(async (tx) => {
          await tx.post.create({ data: { title: 'gone' } });
          await tx.post.updateMany({ where: {}, data: { body: 'gone too' } });
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      await prisma.$transaction([
        prisma.post.create({ data: { title: 'batched' } }),
        prisma.post.deleteMany({ where: { title: 'kept' } }),
      ]);
      const rows = activities().map((row) => [row.event, values(row, 'attributes').title]);
      expect(rows.slice(0, 2)).toEqual([
        ['created', 'kept'],
        ['updated', 'kept'],
      ]);
      // The statements of a batch run together, so their activities come in either order.
      expect(rows.slice(2).sort()).toEqual([
        ['created', 'batched'],
        ['deleted', 'kept'],
      ]);
    });

    it('records the rows a create creates through nested create/createMany of a watched model, and only the top-level row of other nested writes', async ({
      defer,
    }) => {
      const { prisma, activities } = await setUp(
        defer,
        { logOnly: ['title'] },
        { models: { Post: { logOnly: ['title'] }, Comment: { logAll: true } } },
      );
      const post = await prisma.post.create({
        data: { title: 'With comments', comments: { create: [{ text: 'first' }, { text: 'second' }] } },
        include: { comments: true },
      });
      expect(post.comments.map((comment) => comment.text)).toEqual(['first', 'second']);
      const bare = await prisma.post.create({
        data: { title: 'Bare', comments: { createMany: { data: [{ text: 'third' }] } } },
        select: { id: true },
      });
      // The relation read for the log is not handed back to a caller who did not ask for it.
      expect(bare).toEqual({ id: bare.id });
      const comment = await prisma.comment.create({
        data: { text: 'fourth', post: { create: { title: 'Made by a comment' } } },
      });
      expect(Object.keys(comment).sort()).toEqual(['id', 'postId', 'text']);
      // Mixed with connect, and nested writes in an update: only the top-level row.
      await prisma.post.create({
        data: { title: 'Connecting', comments: { connect: { id: comment.id }, create: { text: 'fifth' } } },
      });
      await prisma.post.update({
        where: { id: post.id },
        data: { title: 'Edited', comments: { create: { text: 'sixth' } } },
      });
      const byId = (id: unknown) => ({ id, postId: post.id });
      expect(activities().map((row) => [row.subjectType, row.event, row.properties.attributes])).toEqual([
        ['Post', 'created', { title: 'With comments' }],
        ['Comment', 'created', { ...byId(post.comments[0]!.id), text: 'first' }],
        ['Comment', 'created', { ...byId(post.comments[1]!.id), text: 'second' }],
        ['Post', 'created', { title: 'Bare' }],
        ['Comment', 'created', { id: expect.any(Number), text: 'third', postId: bare.id }],
        ['Comment', 'created', { id: comment.id, text: 'fourth', postId: comment.postId }],
        ['Post', 'created', { title: 'Made by a comment' }],
        ['Post', 'created', { title: 'Connecting' }],
        ['Post', 'updated', { title: 'Edited' }],
      ]);
      expect(activities()[6]!.subjectId).toBe(String(comment.postId));
    });

    it('takes causer, IP and URL from the Express request context', async ({ defer }) => {
      const { prisma, activities } = await setUp(defer);
      const app = express();
      app.use(activityLogMiddleware({ causer: () => ADMIN_CAUSER }));
      app.post('/posts', async (_req, res) => {
        res.status(201).json(
          await prisma.post.update({
            where: { id: (await prisma.post.create({ data: { title: 't' } })).id },
            data: { body: 'b' },
          }),
        );
      });
      const server = app.listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      defer(() => new Promise((resolve) => server.close(resolve)));
      const { port } = server.address() as AddressInfo;
      const response = await fetch(`http://127.0.0.1:${port}/posts?x=1`, { method: 'POST' });
      expect(response.status).toBe(201);
      const rows = activities();
      expect(rows.map((row) => [row.event, row.causerId, row.ipAddress, row.url, row.method])).toEqual([
        ['created', '7', '127.0.0.1', '/posts?x=1', 'POST'],
        ['updated', '7', '127.0.0.1', '/posts?x=1', 'POST'],
      ]);
    });

    it('never fails the write when the change cannot be recorded, and reports it', async ({ defer }) => {
      const errors: unknown[] = [];
      const { prisma, activities } = await setUp(
        defer,
        { logAll: true, descriptionForEvent: () => 'x'.repeat(70_000) },
        { onDeliveryError: (error) => errors.push(error) },
      );
      const post = await prisma.post.create({ data: { title: 'saved anyway' } });
      await prisma.$transaction(async (tx) =>
        tx.post.update({ where: { id: post.id }, data: { body: 'too' } }),
      );
      await prisma.post.updateMany({ where: {}, data: { body: 'again' } });
      expect(await prisma.post.findUnique({ where: { id: post.id } })).toMatchObject({
        title: 'saved anyway',
        body: 'again',
      });
      expect(activities()).toHaveLength(0);
      expect(errors).toHaveLength(3);
    });
  });
}
