// openapi_check.mjs - validates an OpenAPI document with a real validator
// (@apidevtools/swagger-parser: the OpenAPI 3.1 JSON Schema, then its own
// checks: unique operationIds, path parameters declared, $refs resolved), and
// checks what Keel's document must hold for the example app.  Prints TAP.
//   node openapi_check.mjs FILE
import SwaggerParser from '@apidevtools/swagger-parser';
import { readFileSync } from 'node:fs';
import { ok, done } from './tap.mjs';

const file = process.argv[2];
const raw = JSON.parse(readFileSync(file, 'utf8'));
let problem = null;
try {
    await SwaggerParser.validate(structuredClone(raw));
} catch (e) {
    problem = e.message;
}
ok(problem === null, 'swagger-parser validates the document with zero errors' + (problem ? ': ' + problem : ''));
ok(raw.openapi === '3.1.0', 'it is OpenAPI 3.1');
const op = (path, method) => (raw.paths[path] || {})[method];
const get = op('/todo/{id}', 'get');
ok(get && get.operationId === 'todo.get' && get.parameters.some(p => p.name === 'id' && p.in === 'path' && p.required &&
   p.schema.type === 'integer' && p.schema.format === 'int64'), 'GET /todo/{id}: the path parameter is an int64');
const ok200 = get && get.responses['200'].content['application/json'].schema;
ok(ok200 && ok200.properties.title.type === 'string' && ok200.required.includes('done'), 'its response schema, with required fields');
ok(get && get.responses['404'] && get.responses['404'].content['application/json'].schema.$ref === '#/components/schemas/APIError',
   'errors are the Encore shape (APIError)');
const create = op('/todo', 'post');
ok(create && create.requestBody.content['application/json'].schema.required.includes('title'), 'POST /todo: the request body schema');
ok(create && create.responses['429'], 'a rate-limited endpoint can answer 429');
const list = op('/todo', 'get');
const items = list && list.responses['200'].content['application/json'].schema.properties.items;
ok(items && items.type === 'array' && items.items.type === 'object' && items.items.properties.id.format === 'int64',
   'an array of nested objects');
const clear = op('/todo', 'delete');
ok(clear && clear.security && clear.security[0].bearer && clear.responses['401'], 'an auth endpoint needs the bearer scheme and can answer 401');
ok(!op('/hello/compose', 'post') && !op('/auth/internal/caller', 'get'), 'private endpoints are left out');
const raw_ = op('/api/{path}', 'post');
ok(raw_ && raw_.requestBody.content['*/*'] && raw_.responses.default, 'a mounted catch-all is a free-form operation');
ok(get && get.summary === 'Returns one item.' &&
   create.requestBody.content['application/json'].schema.properties.title.description === 'What is to be done.',
   'doc comments (KEEL_DOCS) become summaries and field descriptions');
ok(raw.components.schemas.APIError.properties.code.enum.includes('invalid_argument'), 'APIError lists the error codes');
const body = create && create.requestBody.content['application/json'].schema;
ok(body && body.additionalProperties === undefined && ok200.additionalProperties === false,
   'request objects are open (the server ignores unknown fields), responses closed');
ok(create && create.responses['415'] && create.responses['413'] && create.responses.default &&
   create.responses.default.content['application/json'].schema.$ref === '#/components/schemas/APIError',
   'a typed JSON body can be refused with 415 or 413; any other error is the default, in Keel\'s shape');
ok(get && get.responses['401'] && get.responses['403'] && get.responses['503'],
   'in an app with an auth handler any endpoint can answer 401 (a malformed Authorization) and 403');
ok(get && JSON.stringify(get.security) === '[{},{"bearer":[]},{"cookie":[]}]' &&
   raw.components.securitySchemes.cookie.in === 'cookie' && raw.components.securitySchemes.cookie.name === 'session',
   'a public endpoint takes credentials optionally: a Bearer token or the auth handler\'s cookie');
ok(raw_ && Object.values(raw_.responses).every(r => !r.content || r.content['*/*']) && raw_.responses['2XX'] &&
   JSON.stringify(raw_.security) === '[]', 'a mounted operation declares any status with any content');
const ops = Object.values(raw.paths).flatMap(item => Object.values(item));
ok(ops.every(o => o.summary && o.description && o.tags.every(t => raw.tags.some(d => d.name === t))),
   'every operation has a summary, a description and a declared tag');
done();
