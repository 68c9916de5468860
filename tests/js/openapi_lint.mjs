// openapi_lint.mjs - lints an OpenAPI document with two real linters and
// prints TAP: Redocly CLI's recommended rules (redocly.yaml here) and
// Spectral's OpenAPI rules (spectral.yaml here), each with no error and no
// warning.  Extra arguments are Redocly rules to skip for this document.
//   node openapi_lint.mjs FILE [RULE...]
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ok, done } from './tap.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const [file, ...skipped] = process.argv.slice(2);
// Neither linter may phone home from a test.
const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' };
function run(tool, args) {
    return spawnSync(join(here, 'node_modules', '.bin', tool), args, { cwd: here, env, encoding: 'utf8',
                                                                         maxBuffer: 64 << 20 });
}

const r = run('redocly', ['lint', '--config', join(here, 'redocly.yaml'), '--format', 'json',
                          ...skipped.map(rule => `--skip-rule=${rule}`), file]);
let report = null;
try {
    report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{')));
} catch {
    report = null;
}
const listed = report ? report.problems.map(p => `${p.severity} ${p.ruleId}: ${p.message} ` +
                                             `(${(p.location[0] || {}).pointer || ''})`).join('\n') : r.stdout + r.stderr;
ok(report && report.totals.errors === 0 && report.totals.warnings === 0,
   `redocly lint (recommended): ${report ? `${report.totals.errors} errors, ${report.totals.warnings} warnings` :
                                            'no report'}`, listed);

// Spectral 6.16 percent-decodes a path key that holds an escape (a static
// brace is written %7B, as OpenAPI has no other way) and then finds no
// operation under the decoded key, so it reports that key's operations as
// lacking everything: results about a path the document does not have are
// its own misreading, set apart and named, not counted.
const doc = JSON.parse(readFileSync(file, 'utf8'));
const misread = p => p.path[0] === 'paths' && p.path.length > 1 && !(p.path[1] in doc.paths);
const s = run('spectral', ['lint', '--ruleset', join(here, 'spectral.yaml'), '--format', 'json', '--quiet', file]);
let results = null;
try {
    results = JSON.parse(s.stdout);
} catch {
    results = null;
}
const names = ['error', 'warning', 'info', 'hint'];
const ignored = Array.isArray(results) ? results.filter(misread) : [];
if (ignored.length)
    console.log(`# spectral: ${ignored.length} results about paths it percent-decoded (not in the document) ` +
                `set apart: ${[...new Set(ignored.map(p => p.path[1]))].join(', ')}`);
const real = Array.isArray(results) ? results.filter(p => !misread(p)) : null;
ok(real && real.length === 0,
   `spectral lint (spectral:oas): ${real ? `${real.length} problems` : 'no report'}`,
   real ? real.map(p => `${names[p.severity]} ${p.code}: ${p.message} (${p.path.join('.')})`).join('\n')
        : s.stdout + s.stderr);
done();
