// client_test.ts - the generated TypeScript client against the running
// example app, compiled with tsc --strict first (so the generated types are
// checked too).  Every public typed endpoint is called; errors arrive as
// APIError with Encore's code.  KEEL_BASE_URL and KEEL_ADMIN_TOKEN say where
// and who.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APIError, Client } from './client.js';

const base = process.env.KEEL_BASE_URL as string;
const api = new Client(base);
const admin = new Client(base, { headers: { Authorization: 'Bearer ' + process.env.KEEL_ADMIN_TOKEN } });

async function rejects(p: Promise<unknown>, status: number, code: string): Promise<void> {
    await assert.rejects(p, (e: unknown) => {
        assert.ok(e instanceof APIError, 'an APIError');
        assert.equal(e.status, status);
        assert.equal(e.code, code);
        assert.ok(e.message.length > 0);
        return true;
    });
}

test('hello: path parameter and body', async () => {
    assert.equal((await api.hello.get({ name: 'ts client' })).message, 'Hello, ts client!');
    assert.equal((await api.hello.post({ name: 'body' })).message, 'Hello, body!');
});

test('todo: create, get, list, mark done, remove, clear', async () => {
    const made = await api.todo.create({ title: 'from TypeScript' });
    assert.equal(made.title, 'from TypeScript');
    assert.equal(made.done, false);
    const got = await api.todo.get({ id: made.id });
    assert.deepEqual(got, made);
    const list = await api.todo.list({ limit: 1000 });
    assert.ok(list.items.some((i) => i.id === made.id && i.title === 'from TypeScript'));
    assert.equal((await api.todo.markDone({ id: made.id })).done, true);
    await api.todo.removeItem({ id: made.id });
    await rejects(api.todo.get({ id: made.id }), 404, 'not_found');
    await api.todo.create({ title: 'to clear' });
    await rejects(api.todo.clearAll(), 401, 'unauthenticated');
    assert.ok((await admin.todo.clearAll()).deleted >= 1);
});

test('stats, webhooks, auth, legacy typed endpoint', async () => {
    const counts = await api.stats.todoCounts();
    assert.equal(typeof counts.total, 'number');
    assert.ok(Array.isArray((await api.webhooks.listEvents()).events));
    const me = await admin.auth.whoami();
    assert.equal(me.admin, true);
    assert.equal((await admin.auth.viaCall()).user_id, me.user_id);
    await rejects(api.auth.whoami(), 401, 'unauthenticated');
    await rejects(api.legacy.getItem({ id: '999999' }), 404, 'not_found');
});

test('an endpoint whose database is unavailable answers APIError unavailable', async () => {
    await rejects(api.external.ping(), 503, 'unavailable');
});

test('a raw endpoint is reachable as a plain fetch', async () => {
    const res = await api.legacy.legacyHandler('GET', '/api/items');
    assert.equal(res.status, 200);
});
