// odd_client_test.ts - the TypeScript client generated from the test app,
// whose odd service (tests/integration/odd_service.c) has names, paths and
// docs hostile to code generators, compiled with tsc --strict first.
// Importing the client must run nothing the model holds (the model's text
// would set KEEL_INJECTED), and its calls must reach the routes with their
// quotes, backslash and header fields intact.  KEEL_BASE_URL says where the
// test app listens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from './client.js';

const injectedOnImport = process.env.KEEL_INJECTED;
const api = new Client(process.env.KEEL_BASE_URL as string);

test('importing the client runs no code from the app model', () => {
    assert.equal(injectedOnImport, undefined);
});

test('a header field named X-Token is sent, and the X-Echo header read back', async () => {
    const r = await api.test.headers({ 'X-Token': 'tok-1' });
    assert.equal(r.token, 'tok-1');
    assert.equal(r['X-Echo'], 'tok-1');
});

test('a path with quotes and a backslash reaches its route', async () => {
    const r = await api.odd.oddQuote({ id: 'a "b\\c', 'X-Token': 'tok-2' });
    assert.equal(r.matchedRoute, '/odd/back\\slash/"+(process.env.KEEL_INJECTED="typed")+"/:id');
    assert.equal(r.id, 'a "b\\c');
    assert.equal(r.token, 'tok-2');
    assert.equal(r['X-Echo'], 'tok-2');
    assert.equal(process.env.KEEL_INJECTED, undefined);
});

test('an endpoint named constructor gets a method of its own', async () => {
    assert.equal((await api.odd.constructor_2()).matchedRoute, '/odd/constructor');
});

test('a catch-all whose static text closes a comment is reachable', async () => {
    const res = await api.odd.oddFiles('GET', '/odd/files*/static{process.env.KEEL_INJECTED="raw"}/a/b');
    assert.equal(res.status, 200);
    assert.equal(await res.text(), '/odd/files*/static{process.env.KEEL_INJECTED="raw"}/*rest rest=a/b');
    assert.equal(process.env.KEEL_INJECTED, undefined);
});
