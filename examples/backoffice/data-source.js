import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { DataSource, EntitySchema } from 'typeorm';

/** A back-office user; the one acting is the causer of every activity of a request. */
export const UserSchema = new EntitySchema({
  name: 'User',
  tableName: 'demo_users',
  columns: {
    id: { type: Number, primary: true, generated: 'increment' },
    name: { type: String, length: 100 },
    email: { type: String, length: 191 },
    password: { type: String, length: 191, nullable: true },
    createdAt: { type: 'datetime', createDate: true },
    updatedAt: { type: 'datetime', updateDate: true },
  },
});

/** A post; soft-deleted, so it can be restored. */
export const PostSchema = new EntitySchema({
  name: 'Post',
  tableName: 'demo_posts',
  columns: {
    id: { type: Number, primary: true, generated: 'increment' },
    title: { type: String, length: 200 },
    body: { type: 'text', default: '' },
    status: { type: String, length: 20, default: 'draft' },
    authorId: { type: Number, nullable: true },
    createdAt: { type: 'datetime', createDate: true },
    updatedAt: { type: 'datetime', updateDate: true },
    deletedAt: { type: 'datetime', deleteDate: true, nullable: true },
  },
});

/**
 * The example app's own database: an embedded SQLite file next to the activity log's.
 * @param {string} file
 */
export async function openDataSource(file) {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const dataSource = new DataSource({
    type: 'better-sqlite3',
    database: file,
    entities: [UserSchema, PostSchema],
    synchronize: true,
    logging: false,
  });
  await dataSource.initialize();
  const users = dataSource.getRepository(UserSchema);
  if ((await users.count()) === 0) {
    await users.save([
      { name: 'Ada Admin', email: 'ada@example.test', password: 'not-a-real-password' },
      { name: 'Bob Editor', email: 'bob@example.test', password: 'not-a-real-password' },
    ]);
  }
  return dataSource;
}
