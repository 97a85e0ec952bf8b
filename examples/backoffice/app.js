import { activityLogPlugin } from 'activity-log/fastify';
import Fastify from 'fastify';
import { PostSchema, UserSchema } from './data-source.js';

/**
 * A small back-office: users and posts, create/edit/delete/restore, as HTML pages and a JSON API.
 * Nothing here calls the activity log for a model change: the request context (Fastify plugin)
 * and the TypeORM subscriber record them. The acting user comes from the `demo_user` cookie or
 * the `x-demo-user` header (a stand-in for real authentication).
 *
 * @param {{ activityLog: import('activity-log').ActivityLog, dataSource: import('typeorm').DataSource,
 *   dashboardUrl?: string }} options
 */
export async function buildApp({ activityLog, dataSource, dashboardUrl }) {
  const users = dataSource.getRepository(UserSchema);
  const posts = dataSource.getRepository(PostSchema);
  const app = Fastify({ logger: false, trustProxy: 'loopback' });

  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string' },
    (_request, body, done) => {
      done(null, Object.fromEntries(new URLSearchParams(body)));
    },
  );

  await app.register(activityLogPlugin, {
    causer: (request) => (request.user ? { type: 'User', id: request.user.id } : null),
    batchPerRequest: true,
  });

  app.addHook('onRequest', async (request) => {
    const id = Number(request.headers['x-demo-user'] ?? cookie(request.headers.cookie, 'demo_user') ?? 1);
    request.user = Number.isInteger(id) ? await users.findOneBy({ id }) : null;
  });

  app.get('/', async (request, reply) => {
    const [allUsers, allPosts, recent] = await Promise.all([
      users.find({ order: { id: 'ASC' } }),
      posts.find({ order: { id: 'DESC' }, withDeleted: true, take: 50 }),
      activityLog.query({ limit: 15 }),
    ]);
    reply.type('text/html; charset=utf-8');
    return page({
      user: request.user,
      users: allUsers,
      posts: allPosts,
      activities: recent.data,
      dashboardUrl,
    });
  });

  app.post('/login', async (request, reply) => {
    const id = Number(request.body?.userId);
    reply.header('set-cookie', `demo_user=${Number.isInteger(id) ? id : 1}; Path=/; SameSite=Lax`);
    return reply.redirect('/', 303);
  });

  app.post('/posts', async (request, reply) => {
    await createPost(request.user, request.body ?? {});
    return reply.redirect('/', 303);
  });
  app.post('/posts/:id', async (request, reply) => {
    await updatePost(Number(request.params.id), request.body ?? {});
    return reply.redirect('/', 303);
  });
  app.post('/posts/:id/delete', async (request, reply) => {
    await deletePost(Number(request.params.id));
    return reply.redirect('/', 303);
  });
  app.post('/posts/:id/restore', async (request, reply) => {
    await restorePost(Number(request.params.id));
    return reply.redirect('/', 303);
  });

  app.post('/users', async (request, reply) => {
    await createUser(request.body ?? {});
    return reply.redirect('/', 303);
  });
  app.post('/users/:id', async (request, reply) => {
    await updateUser(Number(request.params.id), request.body ?? {});
    return reply.redirect('/', 303);
  });
  app.post('/users/:id/delete', async (request, reply) => {
    await deleteUser(Number(request.params.id));
    return reply.redirect('/', 303);
  });

  app.post('/api/users', async (request, reply) => {
    reply.code(201);
    return withoutPassword(await createUser(request.body ?? {}));
  });
  app.patch('/api/users/:id', async (request, reply) => {
    const user = await updateUser(Number(request.params.id), request.body ?? {});
    return user ? withoutPassword(user) : reply.code(404).send({ error: 'no such user' });
  });
  app.delete('/api/users/:id', async (request, reply) => {
    const deleted = await deleteUser(Number(request.params.id));
    return reply.code(deleted ? 204 : 404).send();
  });

  app.get('/api/posts', async () => posts.find({ order: { id: 'DESC' }, take: 100 }));
  app.post('/api/posts', async (request, reply) => {
    reply.code(201);
    return createPost(request.user, request.body ?? {});
  });
  app.patch('/api/posts/:id', async (request, reply) => {
    const post = await updatePost(Number(request.params.id), request.body ?? {});
    return post ?? reply.code(404).send({ error: 'no such post' });
  });
  app.delete('/api/posts/:id', async (request, reply) => {
    const deleted = await deletePost(Number(request.params.id));
    return reply.code(deleted ? 204 : 404).send();
  });

  function createUser(fields) {
    return users.save({
      name: String(fields.name || 'New user'),
      email: String(fields.email || 'new@example.test'),
      password: fields.password === undefined ? null : String(fields.password),
    });
  }

  async function updateUser(id, fields) {
    const user = await users.findOneBy({ id });
    if (user === null) return null;
    if (fields.name !== undefined) user.name = String(fields.name);
    if (fields.email !== undefined) user.email = String(fields.email);
    if (fields.password !== undefined) user.password = String(fields.password);
    return users.save(user);
  }

  async function deleteUser(id) {
    const user = await users.findOneBy({ id });
    if (user === null || id === 1) return false;
    await users.remove(user);
    return true;
  }

  /** In a transaction: the activity is delivered only if the post is really stored. */
  function createPost(author, fields) {
    return dataSource.transaction((manager) =>
      manager.getRepository(PostSchema).save({
        title: String(fields.title || 'Untitled'),
        body: String(fields.body ?? ''),
        status: fields.status === 'published' ? 'published' : 'draft',
        authorId: author?.id ?? null,
      }),
    );
  }

  async function updatePost(id, fields) {
    const post = await posts.findOneBy({ id });
    if (post === null) return null;
    if (fields.title !== undefined) post.title = String(fields.title);
    if (fields.body !== undefined) post.body = String(fields.body);
    if (fields.status === 'draft' || fields.status === 'published') post.status = fields.status;
    return posts.save(post);
  }

  async function deletePost(id) {
    const post = await posts.findOneBy({ id });
    if (post === null) return false;
    await posts.softRemove(post);
    return true;
  }

  async function restorePost(id) {
    const post = await posts.findOne({ where: { id }, withDeleted: true });
    if (post?.deletedAt) await posts.recover(post);
  }

  return app;
}

function withoutPassword({ password: _password, ...user }) {
  return user;
}

function cookie(header, name) {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return decodeURIComponent(value.join('='));
  }
  return undefined;
}

const escapeHtml = (value) =>
  String(value ?? '').replace(
    /[&<>"']/g,
    (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[char],
  );

function page({ user, users, posts, activities, dashboardUrl }) {
  const userOptions = users
    .map(
      (u) => `<option value="${u.id}"${u.id === user?.id ? ' selected' : ''}>${escapeHtml(u.name)}</option>`,
    )
    .join('');
  const userRows = users
    .map(
      (u) => `<tr><td>${u.id}</td>
  <td><form method="post" action="/users/${u.id}"><input name="name" value="${escapeHtml(u.name)}">
    <input name="email" value="${escapeHtml(u.email)}"> <button>Save</button></form></td>
  <td>${u.id === 1 ? '' : `<form method="post" action="/users/${u.id}/delete"><button>Delete</button></form>`}</td></tr>`,
    )
    .join('\n');
  const postRows = posts
    .map(
      (post) => `<tr${post.deletedAt ? ' class="deleted"' : ''}>
  <td>${post.id}</td>
  <td><form method="post" action="/posts/${post.id}"><input name="title" value="${escapeHtml(post.title)}">
    <select name="status">${['draft', 'published']
      .map((s) => `<option${s === post.status ? ' selected' : ''}>${s}</option>`)
      .join('')}</select> <button>Save</button></form></td>
  <td>${
    post.deletedAt
      ? `<form method="post" action="/posts/${post.id}/restore"><button>Restore</button></form>`
      : `<form method="post" action="/posts/${post.id}/delete"><button>Delete</button></form>`
  }</td>
</tr>`,
    )
    .join('\n');
  const activityRows = activities
    .map(
      (a) => `<tr><td>${escapeHtml(a.createdAt.toISOString())}</td><td>${escapeHtml(a.event)}</td>
  <td>${escapeHtml(a.subjectType)} ${escapeHtml(a.subjectId)}</td><td>${escapeHtml(a.causerType)} ${escapeHtml(a.causerId)}</td>
  <td>${escapeHtml(a.method)} ${escapeHtml(a.url)}</td><td><code>${escapeHtml(JSON.stringify(a.properties))}</code></td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Back-office demo · activity-log</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
  table { border-collapse: collapse; margin-bottom: 2rem; } td, th { padding: .3rem .6rem; border-bottom: 1px solid #ddd; text-align: left; }
  tr.deleted { opacity: .5; } code { font-size: 12px; } form { display: inline; }
</style></head>
<body>
<h1>Back-office demo</h1>
<p>Every change below is recorded by the activity log with you as causer, your IP, the URL and method.
${dashboardUrl ? `Live metrics and the log browser: <a href="${escapeHtml(dashboardUrl)}">${escapeHtml(dashboardUrl)}</a>.` : ''}</p>
<form method="post" action="/login">Acting as <select name="userId">${userOptions}</select> <button>Switch</button></form>
<h2>Users</h2>
<form method="post" action="/users"><input name="name" placeholder="Name" required> <input name="email" placeholder="Email">
  <button>Add user</button></form>
<table><tr><th>id</th><th>name / email</th><th></th></tr>
${userRows}
</table>
<h2>Posts</h2>
<form method="post" action="/posts"><input name="title" placeholder="Title" required> <input name="body" placeholder="Body">
  <button>Create post</button></form>
<table><tr><th>id</th><th>title / status</th><th></th></tr>
${postRows}
</table>
<h2>Recent activities</h2>
<table><tr><th>when</th><th>event</th><th>subject</th><th>causer</th><th>request</th><th>properties</th></tr>
${activityRows}
</table>
</body></html>`;
}
