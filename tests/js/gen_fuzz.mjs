// gen_fuzz.mjs - random app models through keel gen's three generators.
// Each model is one a Keel app could describe (doc/app-model.schema.json,
// and what start-up accepts: routable paths, path parameters matching path
// fields, unique names), with names, paths, header names and docs full of
// what generated code must escape: comment ends, quotes, backslashes,
// template syntax, U+2028, JavaScript's and C's reserved words, names that
// spell the same identifier.  For each model (through keel gen --model):
//   - every generator succeeds, twice with the same bytes (the C client may
//     refuse a model with what it cannot express, with a message);
//   - the TypeScript clients compile under tsc --strict (one tsc run for
//     all), and importing each one, and making a Client, runs nothing the
//     model holds (the model's code would set a flag) and throws nothing;
//   - the C clients compile with the project's warnings (one compiler run);
//   - the OpenAPI documents validate (@apidevtools/swagger-parser).
// Prints TAP.  Extra models (a real app's) may be given after the options.
//   node gen_fuzz.mjs --keel KEEL --dir DIR --cc 'CC FLAGS' [--models N] [--seed S] [MODEL.json...]
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import SwaggerParser from '@apidevtools/swagger-parser';

const args = process.argv.slice(2);
const opt = (name, def) => {
    const i = args.indexOf(name);
    if (i < 0)
        return def;
    const v = args[i + 1];
    args.splice(i, 2);
    return v;
};
const keel = opt('--keel'), dir = opt('--dir'), cc = opt('--cc');
const count = Number(opt('--models', '30'));
const seed = Number(opt('--seed', String(Date.now() % 1000000)));
const extra = args;
if (!keel || !dir || !cc) {
    console.error('usage: node gen_fuzz.mjs --keel KEEL --dir DIR --cc \'CC FLAGS\' [--models N] [--seed S] [MODEL.json...]');
    process.exit(2);
}
const here = fileURLToPath(new URL('.', import.meta.url));

let n = 0, failed = 0;
function ok(cond, desc, why) {
    n++;
    if (!cond)
        failed++;
    console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${desc}`);
    if (!cond && why)
        for (const line of String(why).split('\n').slice(0, 40))
            console.log(`# ${line}`);
    return cond;
}
console.log(`# seed ${seed} (again: KEEL_GEN_FUZZ_SEED=${seed}), ${count} models in ${dir}`);

// ---- randomness (mulberry32: the same seed gives the same models) ----------------------
let state = seed >>> 0;
function random() {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const int = (k) => Math.floor(random() * k);
const pick = (a) => a[int(a.length)];
const chance = (p) => random() < p;

// ---- what the model permits, and what generated code must survive ----------------------------

// Code that would run if a generator let the model's text out of its comment
// or string: the import check looks for its marks.
const INJECT = [
    '*/ static{process.env.KEEL_FUZZ_INJECTED="1"} /*',
    '*/ static{(globalThis as any).keelFuzzInjected=1} /*',
    '"+(process.env.KEEL_FUZZ_INJECTED="1")+"',
    '`+(process.env.KEEL_FUZZ_INJECTED="1")+`',
    '${process.env.KEEL_FUZZ_INJECTED="1"}',
    '\\"+(process.env.KEEL_FUZZ_INJECTED="1")+\\"',
    '*/ process.env.KEEL_FUZZ_INJECTED="1"; /*',
    '\n process.env.KEEL_FUZZ_INJECTED="1";\n',
    '\u2028process.env.KEEL_FUZZ_INJECTED="1"\u2029',
];
const TEXT_BITS = ['*/', '/*', '*', '/', '//', '\\', '"', "'", '`', '${x}', '\n', '\r\n', '\t', '\u2028', '\u2029',
    '??/', '??=', 'é', 'Zoë', '名前', '😀', '</script>', '@param', '{', '}', '<', '>', '&', '#', '%', '?', ' ',
    'a', 'b', 'word'];
// A service or database name: ^[a-z][a-z0-9_]*$, at most 48.
const SERVICE_NAMES = ['a_b', 'a__b', 'ab', 'ab_', 'constructor', 'client', 'transport', 'query', 'api_error',
    'err_code', 'client_options', 't', 'hello', 'x1', 'request', 'response', 'proto', 'then', 'delete', 'static',
    'service', 'a_b_c', 'a_bc', 'ab_c', 'int', 'errno', 'keel'];
// What a struct member (so a JSON name, or a handler) can be called: a C
// identifier that is no C keyword.
const C_NAMES = ['id', 'name', 'x', 'X', 'x_', '_', '_x', '__x', 'a1', 'userId', 'UserID', 'constructor',
    '__proto__', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'then', 'req', '_req', 'res', 'out', 'h',
    't', 'path', 'query', 'headers', 'body', 'method', 'delete', 'class', 'function', 'yield', 'await', 'let',
    'this', 'super', 'new', 'in', 'of', 'undefined', 'NaN', 'arguments', 'eval', 'String', 'JSON', 'Object',
    'encodeURIComponent', 'has_x', 'x_count', 'has_limit', 'limit', 'items', 'items_count', 'typeof', 'asm',
    'get', 'set', 'async', 'private', 'readonly', 'Service', 'Request', 'Response', 'call', 'json',
    'Client', 'fields', 'request', 'response', 'endpoint', 'c', 'arena', 'resp'];
// Anything else the model allows (a field named in a hand-written table, a
// header name in KEEL_HEADER_STRING, an endpoint named by an expression).
const WILD_NAMES = ['X-Token', 'x-token', 'Content-Type', 'X-Request-Id', 'a-b', 'a.b', 'a b', '1abc', '0', '*/',
    '/*', 'a"b', 'a\\b', "a'b", 'a`b', '${x}', '??/', 'a\u2028b', 'é', '名前', 'a\nb', '-', '.', 'x*/y', '$', 'a$b'];

function ident(first, len) {
    const alpha = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_';
    const more = alpha + '0123456789';
    let s = first ? pick(alpha) : pick(more);
    for (let i = 1; i < len; i++)
        s += pick(more);
    return s;
}
const cName = () => (chance(0.6) ? pick(C_NAMES) : ident(true, 1 + int(10)));
const wildName = () => (chance(0.5) ? pick(WILD_NAMES) : pick(WILD_NAMES) + pick(TEXT_BITS) + pick(C_NAMES));
function doc() {
    let s = '';
    for (let i = 1 + int(4); i > 0; i--)
        s += chance(0.3) ? pick(INJECT) : pick(TEXT_BITS);
    return s || 'a';
}
function unique(make, used) {
    for (;;) {
        const s = make();
        if (s && !used.has(s)) {
            used.add(s);
            return s;
        }
    }
}

// A static path segment: visible ASCII but '?', '#', '%' and '/', not
// starting with ':', '*' or '!' (those start parameters).
const PATH_CHARS = [...'!"$&\'()*+,-.:;<=>@[\\]^_`{|}~'];
const PATH_INJECT = ['static{process.env.KEEL_FUZZ_INJECTED="1"}', '"+(process.env.KEEL_FUZZ_INJECTED="1")+"',
    '`+(process.env.KEEL_FUZZ_INJECTED="1")+`', '${process.env.KEEL_FUZZ_INJECTED="1"}', '\\"+x+\\"'];
function staticSegment() {
    let s = chance(0.5) ? ident(true, 1 + int(4)) : pick(['a', 'files', 'x']);
    for (let i = int(4); i > 0; i--)
        s += chance(0.2) ? pick(PATH_INJECT) : pick(PATH_CHARS);
    if (chance(0.3))
        s += '*'; // "*/" with the next segment
    return s;
}
// Parameter names: [A-Za-z0-9_]+; a C struct's member for cOnly.
const PARAM_NAMES = ['id', 'x', 'X', 'constructor', '__proto__', 'rest', 'req', 'path', 'query',
    'encodeURIComponent', 'String', 'userId', 'then'];
const paramName = (cOnly) => (chance(0.5) ? pick(cOnly ? PARAM_NAMES : [...PARAM_NAMES, '1', '0a'])
    : ident(cOnly, 1 + int(6)));

// A routable path (framework/lib/http/router.c), its first segment unique
// in the model, and its parameters as [sigil, name].
function path(k, cOnly) {
    const segs = [`e${k}` + (chance(0.5) ? staticSegment() : '')], params = [], names = new Set();
    for (let i = int(4); i > 0; i--) {
        if (chance(0.4)) {
            const p = unique(() => paramName(cOnly), names);
            params.push([':', p]);
            segs.push(':' + p);
        } else {
            segs.push(staticSegment());
        }
    }
    const end = int(6);
    if (end === 0 || end === 1) {
        const p = unique(() => paramName(cOnly), names);
        const sigil = end === 0 ? '*' : '!';
        params.push([sigil, p]);
        segs.push(sigil + p);
    } else if (end === 2) {
        segs.push(''); // a trailing slash
    }
    return { path: '/' + segs.join('/'), params };
}

const SCALARS = ['string', 'int64', 'double', 'bool'];
// A field of a table; cOnly: names a C struct can have (except header
// strings, whose member the generator names).
function field(name, where, depth, cOnly, allowRecursive) {
    const f = { name, type: pick(depth < 2 ? [...SCALARS, 'object', 'array', 'string'] : SCALARS),
        optional: chance(0.4), in: where };
    if (where !== 'body' && (f.type === 'object' || f.type === 'array' && chance(0.5)))
        f.type = pick(SCALARS);
    if (f.type === 'object') {
        if (allowRecursive && chance(0.15))
            f.recursive = true;
        else
            f.fields = table(int(4), depth + 1, cOnly, allowRecursive);
    } else if (f.type === 'array') {
        const et = where === 'body' ? pick([...SCALARS, 'object']) : pick(SCALARS);
        f.items = { type: et };
        if (et === 'object') {
            if (allowRecursive && chance(0.15))
                f.items.recursive = true;
            else
                f.items.fields = table(int(3), depth + 1, cOnly, allowRecursive);
        }
    }
    if (chance(0.3))
        f.doc = doc();
    return f;
}
function stringField(f) {
    f.type = 'string';
    delete f.items;
    delete f.fields;
    delete f.recursive;
}

// Body fields only (a nested object's members).
function table(k, depth, cOnly, allowRecursive) {
    const used = new Set(), out = [];
    for (let i = 0; i < k; i++)
        out.push(field(unique(() => (cOnly || chance(0.5) ? cName() : wildName()), used), 'body', depth, cOnly,
            allowRecursive));
    return out;
}

function endpoint(k, names, cOnly) {
    const kind = pick(['typed', 'typed', 'typed', 'raw', 'mounted']);
    const name = unique(() => (chance(cOnly ? 0.9 : 0.6) ? cName() : wildName()), names);
    const p = path(k, cOnly);
    const e = { name, method: '', path: p.path, kind, access: pick(['public', 'public', 'auth', 'private']),
        blocking: chance(0.2) };
    if (kind === 'typed') {
        e.method = pick(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS', 'PURGE', 'X']);
        const used = new Set(), request = [];
        for (const [sigil, pn] of p.params) {
            used.add(pn);
            request.push({ name: pn, type: sigil === ':' ? pick(SCALARS) : 'string', optional: false, in: 'path' });
        }
        for (let i = int(6); i > 0; i--) {
            const where = pick(['body', 'body', 'query', 'header']);
            const nm = unique(() => (where === 'header' || (!cOnly && chance(0.4)) ? wildName() : cName()), used);
            const f = field(nm, where, 0, cOnly, !cOnly);
            if (where === 'header' && cOnly && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(nm))
                stringField(f); // KEEL_HEADER_STRING: any name, a string
            request.push(f);
        }
        const rused = new Set(), response = [];
        for (let i = int(6); i > 0; i--) {
            const where = chance(0.2) ? 'header' : 'body';
            const nm = unique(() => (where === 'header' || (!cOnly && chance(0.4)) ? wildName() : cName()), rused);
            const f = field(nm, where, 0, cOnly, !cOnly);
            if (where === 'header')
                stringField(f); // the app sends string header fields only
            response.push(f);
        }
        e.request = request;
        e.response = response;
    } else {
        e.method = pick(['GET', 'POST', 'PUT', 'DELETE', '*', 'M']);
        if (kind === 'raw')
            e.streams_body = chance(0.3);
    }
    if (chance(0.5))
        e.doc = doc();
    e.tags = chance(0.3) ? [pick(['write', 'a*/b', 'x"y'])] : [];
    e.middleware = chance(0.3) ? ['m*/n'] : [];
    e.rate_limits = chance(0.2) ? [{ per_second: 1.5, burst: 2, by: pick(['ip', 'subject']) }] : [];
    return e;
}

// cOnly: a model the C client can express (names a C struct can have, no
// recursive types); the others may be refused by it.
function model(cOnly) {
    const services = [], snames = new Set();
    let k = 0;
    for (let i = 1 + int(4); i > 0; i--) {
        const name = unique(() => (chance(0.6) ? pick(SERVICE_NAMES) : 's' + ident(false, int(8)).toLowerCase()), snames);
        const endpoints = [], enames = new Set();
        for (let j = 1 + int(6); j > 0; j--)
            endpoints.push(endpoint(k++, enames, cOnly));
        const db = chance(0.3);
        services.push({ name, endpoints, databases: db ? [{ name: name.slice(0, 40) + '_db', declared: true,
            migrations: 'migrations/' + name }] : [], external_databases: [], secrets: [], calls: [], middleware: [] });
    }
    return { keel_version: '0.1.0', services };
}

// ---- generate --------------------------------------------------------------------------

function run(argv) {
    const r = spawnSync(keel, argv, { encoding: 'utf8' });
    return { status: r.status, out: (r.stdout || '') + (r.stderr || '') };
}
const same = (a, b) => existsSync(a) && existsSync(b) && readFileSync(a).equals(readFileSync(b));

mkdirSync(dir, { recursive: true });
const cases = [];
for (const file of extra)
    cases.push({ name: basename(file), json: readFileSync(file, 'utf8'), cOnly: true });
for (let i = 0; i < count; i++) {
    const cOnly = chance(0.75);
    cases.push({ name: `model ${i}${cOnly ? '' : ' (names C cannot have)'}`, json: JSON.stringify(model(cOnly), null, 1),
        cOnly });
}
const tsFiles = [], cFiles = [];
cases.forEach((c, i) => {
    c.dir = join(dir, `m${String(i).padStart(2, '0')}`);
    mkdirSync(c.dir, { recursive: true });
    const m = join(c.dir, 'model.json');
    writeFileSync(m, c.json);
    const ts = [run(['gen', 'client', '--lang', 'typescript', '--model', m, '--out', join(c.dir, 'client.ts')]),
        run(['gen', 'client', '--lang', 'typescript', '--model', m, '--out', join(c.dir, 'client2.ts')])];
    const oa = [run(['gen', 'openapi', '--model', m, '--out', join(c.dir, 'openapi.json')]),
        run(['gen', 'openapi', '--model', m, '--out', join(c.dir, 'openapi2.json')])];
    mkdirSync(join(c.dir, 'c2'), { recursive: true });
    const cg = [run(['gen', 'client', '--lang', 'c', '--prefix', 'fz', '--model', m, '--out', join(c.dir, 'fz_client.c')]),
        run(['gen', 'client', '--lang', 'c', '--prefix', 'fz', '--model', m, '--out', join(c.dir, 'c2', 'fz_client.c')])];
    const good = ts.every((r) => r.status === 0) && oa.every((r) => r.status === 0);
    ok(good && same(join(c.dir, 'client.ts'), join(c.dir, 'client2.ts')) &&
       same(join(c.dir, 'openapi.json'), join(c.dir, 'openapi2.json')),
       `${c.name}: the TypeScript client and the OpenAPI document, the same bytes twice`,
       [...ts, ...oa].map((r) => r.out).join(''));
    if (good)
        tsFiles.push(c);
    if (cg[0].status === 0) {
        ok(cg[1].status === 0 && same(join(c.dir, 'fz_client.c'), join(c.dir, 'c2', 'fz_client.c')) &&
           same(join(c.dir, 'fz_client.h'), join(c.dir, 'c2', 'fz_client.h')),
           `${c.name}: the C client, the same bytes twice`, cg[1].out);
        cFiles.push(c);
    } else {
        ok(!c.cOnly && cg[0].status === 1 && /^keel gen client --lang c: [\s\S]+: (field|a typed)/.test(cg[0].out),
           `${c.name}: the C client refuses what it cannot express, saying why`, cg[0].out);
    }
});

// ---- TypeScript: one tsc for all, then each client imported ---------------------------------

writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
const tscBin = join(here, 'node_modules', '.bin', 'tsc');
const tsc = spawnSync(tscBin, ['--strict', '--noPropertyAccessFromIndexSignature', '--noUncheckedIndexedAccess',
    '--exactOptionalPropertyTypes', '--noUnusedLocals', '--noUnusedParameters', '--noImplicitReturns',
    '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--typeRoots',
    join(here, 'node_modules', '@types'), '--types', 'node', '--rootDir', dir, '--outDir', join(dir, 'out'),
    ...tsFiles.map((c) => join(c.dir, 'client.ts'))], { encoding: 'utf8', cwd: dir });
const tscOut = (tsc.stdout || '') + (tsc.stderr || '');
// tsc names the files relative to its folder: mNN/client.ts(line,column).
const rel = (c) => c.dir.slice(dir.length + 1) + '/';
for (const c of tsFiles) {
    const mine = tscOut.split('\n').filter((l) => l.startsWith(rel(c)));
    ok(mine.length === 0, `${c.name}: tsc --strict compiles the TypeScript client`, mine.join('\n'));
}
if (tsc.status !== 0 && !tsFiles.some((c) => tscOut.includes(rel(c))))
    ok(false, 'tsc ran', tscOut || String(tsc.error));
mkdirSync(join(dir, 'out'), { recursive: true });
writeFileSync(join(dir, 'out', 'package.json'), '{"type":"module"}');
for (const c of tsFiles) {
    const js = join(dir, 'out', rel(c), 'client.js');
    delete process.env.KEEL_FUZZ_INJECTED;
    delete globalThis.keelFuzzInjected;
    let problem = null;
    try {
        const mod = await import(pathToFileURL(js).href);
        const client = new mod.Client('http://127.0.0.1:9', { headers: {} });
        for (const key of Object.keys(client))
            if (typeof client[key] !== 'object')
                problem = `Client.${key} is no service`;
    } catch (e) {
        problem = String(e && e.stack || e);
    }
    const injected = process.env.KEEL_FUZZ_INJECTED !== undefined || globalThis.keelFuzzInjected !== undefined;
    ok(!problem && !injected, `${c.name}: importing the client and making a Client runs nothing of the model`,
       problem || (injected ? 'the model\'s code ran' : ''));
}

// ---- C: one compiler run with the project's warnings ---------------------------------------

if (cFiles.length) {
    const argv = cc.trim().split(/\s+/);
    const r = spawnSync(argv[0], [...argv.slice(1), '-fsyntax-only', ...cFiles.map((c) => join(c.dir, 'fz_client.c'))],
        { encoding: 'utf8' });
    const said = (r.stdout || '') + (r.stderr || '');
    for (const c of cFiles) {
        const mine = said.split('\n').filter((l) => l.includes(c.dir + '/'));
        ok(mine.length === 0, `${c.name}: the C client compiles with the project's warnings`, mine.join('\n'));
    }
    if (r.status !== 0 && !cFiles.some((c) => said.includes(c.dir + '/')))
        ok(false, `${argv[0]} ran`, said || String(r.error));
}

// ---- OpenAPI -------------------------------------------------------------------------------

for (const c of tsFiles) {
    let problem = null;
    try {
        await SwaggerParser.validate(JSON.parse(readFileSync(join(c.dir, 'openapi.json'), 'utf8')));
    } catch (e) {
        problem = e.message;
    }
    ok(problem === null, `${c.name}: swagger-parser validates the OpenAPI document`, problem);
}

console.log(`1..${n}`);
if (failed)
    console.log(`# ${failed} failed: the models are in ${dir} (seed ${seed})`);
process.exit(failed ? 1 : 0);
