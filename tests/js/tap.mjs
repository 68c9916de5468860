// tap.mjs - TAP output for the checks written in JavaScript, which
// tests/tap.h's tap_relay() passes on: ok() prints a test line (and, on
// failure, what went wrong as comments), done() the plan and the exit status.
let n = 0, failed = 0;

export function ok(cond, desc, detail) {
    n++;
    if (!cond)
        failed++;
    console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${desc}`);
    if (!cond && detail)
        for (const line of String(detail).split('\n').slice(0, 40))
            console.log(`#   ${line.slice(0, 2000)}`);
    return cond;
}

export function done() {
    console.log(`1..${n}`);
    process.exit(failed ? 1 : 0);
}
