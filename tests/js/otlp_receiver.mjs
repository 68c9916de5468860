// otlp_receiver.mjs - an OTLP/HTTP trace receiver for the tests.  Each
// request body is decoded with OpenTelemetry's own protobuf code (the
// generated opentelemetry-proto classes that @opentelemetry/otlp-transformer
// 0.52 ships), so what Keel exports is checked against the real schema, not
// against Keel's own reader.  A body that does not decode, or that decodes to
// a message the schema's verify() rejects, is answered 400 and logged.
//
//   node otlp_receiver.mjs OUT_FILE     prints "listening PORT", then
//   appends one JSON line per span to OUT_FILE (ids in hex, times as strings,
//   attributes flattened to {key: value}) and one line per rejected body.
import { createServer } from 'node:http';
import { appendFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = require('@opentelemetry/otlp-transformer/build/src/generated/root.js');
const Request = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;
const Response = root.opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse;

const out = process.argv[2];
if (!out) {
    console.error('usage: node otlp_receiver.mjs OUT_FILE');
    process.exit(2);
}

const hex = (bytes) => Buffer.from(bytes || []).toString('hex');

function anyValue(v) {
    if (v.stringValue !== undefined && v.stringValue !== null && v.value === 'stringValue') return v.stringValue;
    if (v.value === 'intValue') return Number(v.intValue.toString());
    if (v.value === 'boolValue') return v.boolValue;
    if (v.value === 'doubleValue') return v.doubleValue;
    return null;
}

function attributes(list) {
    const o = {};
    for (const kv of list || []) o[kv.key] = anyValue(kv.value);
    return o;
}

function handle(body, res) {
    let msg;
    try {
        msg = Request.decode(body);
        const problem = Request.verify(msg);
        if (problem) throw new Error(problem);
    } catch (e) {
        appendFileSync(out, JSON.stringify({ rejected: String(e.message || e) }) + '\n');
        res.writeHead(400, { 'Content-Type': 'text/plain' });
        res.end(String(e.message || e));
        return;
    }
    const lines = [];
    for (const rs of msg.resourceSpans) {
        const resource = attributes(rs.resource && rs.resource.attributes);
        for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) {
                lines.push(JSON.stringify({
                    resource,
                    scope: ss.scope ? ss.scope.name : null,
                    trace_id: hex(s.traceId),
                    span_id: hex(s.spanId),
                    parent_span_id: hex(s.parentSpanId),
                    trace_state: s.traceState || '',
                    name: s.name,
                    kind: s.kind,
                    start: s.startTimeUnixNano.toString(),
                    end: s.endTimeUnixNano.toString(),
                    status: s.status ? { code: s.status.code || 0, message: s.status.message || '' } : null,
                    flags: s.flags || 0,
                    attributes: attributes(s.attributes),
                }));
            }
        }
    }
    if (lines.length) appendFileSync(out, lines.join('\n') + '\n');
    res.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
    res.end(Buffer.from(Response.encode(Response.create({})).finish()));
}

const server = createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404);
        res.end();
        return;
    }
    if (req.headers['content-type'] !== 'application/x-protobuf') {
        appendFileSync(out, JSON.stringify({ rejected: 'content-type ' + req.headers['content-type'] }) + '\n');
        res.writeHead(415);
        res.end();
        return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => handle(Buffer.concat(chunks), res));
});
server.listen(0, '127.0.0.1', () => {
    console.log('listening ' + server.address().port);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
