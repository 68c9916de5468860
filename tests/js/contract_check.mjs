// contract_check.mjs - the server and its OpenAPI document must agree on the
// wire: sends real requests to a running app (successes and every error
// path the app lets a client trigger), finds each request's operation in the
// document (keel gen openapi's), and checks that the answer's status is a
// declared response (exact, a range such as 4XX, or default), that its
// Content-Type is one of that response's media types, and that a JSON body
// validates against the response's schema (Ajv, JSON Schema 2020-12, as
// OpenAPI 3.1 has it).  A request body the server accepted must also
// validate against the operation's request schema (fields the server
// ignores included).  Prints TAP.
//   node contract_check.mjs FILE BASE_URL example|testapp
// The example app's cases use KEEL_ADMIN_TOKEN (its operator's token).
import Ajv2020 from 'ajv/dist/2020.js';
import { readFileSync } from 'node:fs';
import { ok, done } from './tap.mjs';

const [file, base, which] = process.argv.slice(2);
const doc = JSON.parse(readFileSync(file, 'utf8'));

const ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
// $refs point into the document (#/components/...): resolved in place.
function deref(node) {
    if (Array.isArray(node))
        return node.map(deref);
    if (!node || typeof node !== 'object')
        return node;
    if (typeof node.$ref === 'string' && node.$ref.startsWith('#/'))
        return deref(node.$ref.slice(2).split('/').map(p => p.replace(/~1/g, '/').replace(/~0/g, '~'))
            .reduce((o, k) => o[k], doc));
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, deref(v)]));
}
function validate(schema, value) {
    const v = ajv.compile(deref(schema));
    return v(value) ? null : ajv.errorsText(v.errors);
}

// The operation for method and a request path: templates matched segment by
// segment ({x} one segment), the most static one first; a template ending in
// a parameter may take the rest of the path (a catch-all) when none does.
const templates = Object.keys(doc.paths).map(t => ({ t, segs: t.split('/').slice(1) }));
function operation(method, path) {
    const segs = path.split('?')[0].split('/').slice(1);
    const param = s => /^\{[^}]+\}$/.test(s);
    const statics = x => x.segs.filter(s => !param(s)).length;
    const fits = (x, rest) => {
        if (!rest && x.segs.length !== segs.length)
            return false;
        if (rest && !(segs.length >= x.segs.length && param(x.segs[x.segs.length - 1])))
            return false;
        return x.segs.every((s, i) => param(s) ? segs[i] !== undefined && (rest || segs[i] !== '')
                                               : decodeURIComponent(s) === decodeURIComponent(segs[i]));
    };
    for (const rest of [false, true]) {
        const found = templates.filter(x => fits(x, rest) && (doc.paths[x.t][method.toLowerCase()] ||
                                                              (doc.paths[x.t]['x-keel-operations'] || {})[method]));
        found.sort((a, b) => statics(b) - statics(a));
        if (found.length) {
            const item = doc.paths[found[0].t];
            return { template: found[0].t, op: item[method.toLowerCase()] || item['x-keel-operations'][method] };
        }
    }
    return null;
}

function mediaMatches(declared, actual) {
    if (declared === '*/*')
        return true;
    if (declared.endsWith('/*'))
        return actual.startsWith(declared.slice(0, -1));
    return declared === actual;
}

// Sends one request and checks the answer against the document.
// c: {method, path, body (string), type (Content-Type; default JSON when a
// body), headers, want (the status this case triggers), what}
async function check(c) {
    const headers = { ...(c.headers || {}) };
    if (c.body !== undefined && c.type !== null)
        headers['Content-Type'] = c.type || 'application/json';
    let res, text;
    try {
        res = await fetch(base + c.path, { method: c.method, headers, body: c.body, redirect: 'manual' });
        text = await res.text();
    } catch (e) {
        ok(false, `${c.what}: ${c.method} ${c.path} answered`, e.message);
        return null;
    }
    return verify(c, res, text);
}

function verify(c, res, text) {
    const where = `${c.method} ${c.path} -> ${res.status}`;
    if (c.want !== undefined && res.status !== c.want) {
        ok(false, `${c.what}: ${where} (wanted ${c.want})`, text);
        return res;
    }
    const found = operation(c.method, c.path);
    if (!found) {
        ok(false, `${c.what}: ${where}: the document has an operation for it`);
        return res;
    }
    const { op, template } = found;
    const responses = op.responses || {};
    const key = String(res.status) in responses ? String(res.status)
              : `${String(res.status)[0]}XX` in responses ? `${String(res.status)[0]}XX` : 'default';
    const declared = responses[key];
    if (!declared) {
        ok(false, `${c.what}: ${where}: ${template} declares the status`, `declared: ${Object.keys(responses)}`);
        return res;
    }
    const type = (res.headers.get('content-type') || '').split(';')[0].trim().toLowerCase();
    let problem = null;
    if (declared.content && text.length) {
        const media = Object.keys(declared.content).find(m => mediaMatches(m, type));
        if (!media) {
            problem = `Content-Type ${type || '(none)'} is not one of ${Object.keys(declared.content)}`;
        } else if (/json/.test(media) && declared.content[media].schema) {
            let body;
            try {
                body = JSON.parse(text);
                problem = validate(declared.content[media].schema, body);
            } catch (e) {
                problem = `the body is not JSON: ${e.message}`;
            }
        }
    } else if (!declared.content && text.length && c.method !== 'HEAD') {
        problem = 'a body where the document declares none';
    }
    if (!problem && res.ok && c.body !== undefined && op.requestBody) {
        const media = Object.keys(op.requestBody.content).find(m => mediaMatches(m, c.type || 'application/json'));
        if (media && /json/.test(media) && op.requestBody.content[media].schema)
            problem = validate(op.requestBody.content[media].schema, JSON.parse(c.body));
        if (problem)
            problem = `the server took a request body the document refuses: ${problem}`;
    }
    ok(!problem, `${c.what}: ${where} matches ${template} ${key}`, problem ? `${problem}; body: ${text}` : null);
    return res;
}

const admin = process.env.KEEL_ADMIN_TOKEN || '';
const nul = '%00';
let cases;
if (which === 'example') {
    const evil = { Cookie: `session=${admin}`, Origin: 'https://evil.example' };
    cases = [
        { method: 'GET', path: '/hello/world', want: 200, what: 'typed success' },
        { method: 'POST', path: '/hello', body: '{"name":"Ada"}', want: 200, what: 'a JSON body' },
        { method: 'POST', path: '/hello', body: '{"name":"Ada","since":"v2"}', want: 200,
          what: 'a field the server does not know is ignored, and the document allows it' },
        { method: 'POST', path: '/hello', body: '{"name":"Ada"}', type: 'text/plain', want: 415, what: 'text/plain' },
        { method: 'POST', path: '/hello', body: '{"name":"Ada"}', type: null, want: 415, what: 'no Content-Type' },
        { method: 'POST', path: '/hello', body: '{"name":12}', want: 400, what: 'a wrongly typed field' },
        { method: 'POST', path: '/hello', body: '{"name":', want: 400, what: 'malformed JSON' },
        { method: 'POST', path: '/hello', body: JSON.stringify({ name: 'x'.repeat(1100000) }), want: 413,
          what: 'a body over the limit' },
        { method: 'GET', path: `/hello/x?q=a${nul}`, want: 400, what: 'a NUL in the query' },
        { method: 'GET', path: '/hello/x', headers: { Authorization: 'Basic dXNlcjpwdw==' }, want: 401,
          what: 'a malformed Authorization header on a public endpoint' },
        { method: 'GET', path: '/auth/whoami', want: 401, what: 'an auth endpoint without credentials' },
        { method: 'GET', path: '/auth/whoami', headers: { Authorization: `Bearer ${admin}` }, want: 200,
          what: 'an auth endpoint with the operator token' },
        { method: 'GET', path: '/auth/whoami', headers: { Cookie: `session=${admin}` }, want: 200,
          what: 'an auth endpoint with the session cookie' },
        { method: 'GET', path: '/auth/via-call', want: 401,
          what: 'a public endpoint calling a private auth endpoint without credentials' },
        { method: 'POST', path: '/todo', body: '{"title":"csrf"}', headers: evil, want: 403,
          what: 'a cookie-authenticated POST from another site' },
        { method: 'POST', path: '/todo', body: '{"title":"contract"}', want: 200, what: 'create' },
        { method: 'GET', path: '/todo', want: 200, what: 'a list of objects' },
        { method: 'GET', path: '/todo/999999999', want: 404, what: 'no such item' },
        { method: 'GET', path: '/todo/abc', want: 400, what: 'a path parameter that is not an int64' },
        { method: 'GET', path: '/stats/todo', want: 200, what: 'another service reads the database' },
        { method: 'GET', path: '/external/ping', what: 'the external database (503 when it is not there)' },
        { method: 'GET', path: '/webhooks/events', want: 200, what: 'the deliveries' },
        { method: 'POST', path: '/webhooks/github', body: '{}', what: 'a raw endpoint refusing an unsigned delivery' },
        { method: 'GET', path: '/api/items/1', what: 'the typed break-out' },
        { method: 'GET', path: '/api/items', want: 200, what: 'the mounted router' },
        { method: 'GET', path: '/api/items%2Fform', what: 'the mounted router, {path} with an encoded slash' },
        { method: 'POST', path: '/api/items%2Fform', body: 'name=x&qty=1', type: 'application/x-www-form-urlencoded',
          what: 'a form post to the mounted router, {path} with an encoded slash' },
        { method: 'GET', path: '/api/nope', what: "the mounted router's own 404 page" },
    ];
} else {
    const codes = doc.components.schemas.APIError.properties.code.enum;
    const sink = '{"name":"n","count":1,"ratio":0.5,"active":true,"home":{"city":"c","lat":1},' +
                 '"items":[{"title":"a","qty":1}]}';
    cases = [
        ...codes.map(code => ({ method: 'GET', path: `/test/error/${code}`, what: `a handler returning ${code}` })),
        { method: 'POST', path: '/test/types', body: sink, want: 200, what: 'every field type' },
        { method: 'POST', path: '/test/types', body: sink.replace('"lat":1', '"lat":1,"alt":3'), want: 200,
          what: 'an unknown nested field is ignored, and the document allows it' },
        { method: 'POST', path: '/test/types', body: sink, type: 'application/x-www-form-urlencoded', want: 415,
          what: 'a form post' },
        { method: 'GET', path: '/test/search?q=a&n=2', want: 200, what: 'query parameters' },
        { method: 'GET', path: '/test/search', want: 400, what: 'a missing query parameter' },
        { method: 'GET', path: '/test/headers', headers: { 'X-Token': 't' }, what: 'a header field' },
        { method: 'GET', path: '/test/headers', want: 400, what: 'a missing header field' },
        { method: 'POST', path: '/test/echo', body: 'words', type: 'text/plain', what: 'a raw endpoint' },
        { method: 'GET', path: '/test/route/files/a%2Fb', what: 'a raw catch-all, an encoded slash' },
        { method: 'GET', path: '/test/route/7', what: 'a raw parameter' },
        { method: 'GET', path: '/test/anything', what: 'a raw fallback' },
        { method: 'GET', path: '/odd/constructor', want: 200, what: 'an endpoint with an odd name' },
    ];
}
for (const c of cases)
    await check(c);
if (which === 'example') {
    // POST /todo's rate limit: requests at once until one is refused.
    let limited = null;
    const seen = {};
    const t0 = Date.now();
    for (let round = 0; round < 5 && !limited; round++) {
        const answers = await Promise.all(Array.from({ length: 80 }, () =>
            fetch(base + '/todo', { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                    body: '{"title":"burst"}' }).then(async r => ({ r, t: await r.text() }))));
        for (const a of answers)
            seen[a.r.status] = (seen[a.r.status] || 0) + 1;
        limited = answers.find(a => a.r.status === 429);
    }
    ok(limited, 'a burst of POST /todo trips its rate limit', `statuses: ${JSON.stringify(seen)} in ${Date.now() - t0} ms`);
    if (limited)
        verify({ method: 'POST', path: '/todo', body: '{"title":"burst"}', want: 429, what: 'the rate limit' },
               limited.r, limited.t);
}
done();
