// dashboard_check.mjs - the local development dashboard in a real browser:
// Debian's Chromium, headless, driven by playwright-core (no browser is
// downloaded).  Loads each view of a running app's dashboard and checks what
// it shows, sends a request through the API explorer and follows it to its
// trace.  Prints TAP; exits 1 on any failure, on an uncaught page error or a
// console error.
//   node dashboard_check.mjs http://127.0.0.1:PORT
// KEEL_DASHBOARD_SCREENSHOTS=DIR saves a screenshot of each view there
// (never in the repository).
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const base = process.argv[2];
if (!base) {
    console.error('usage: node dashboard_check.mjs DASHBOARD_URL');
    process.exit(2);
}
const WAIT = 30000;
let n = 0, failed = 0;
function ok(cond, desc) {
    n++;
    if (!cond) failed++;
    console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${desc}`);
}

const profile = mkdtempSync(join(tmpdir(), 'keel-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] || await context.newPage();
page.setDefaultTimeout(WAIT);
const problems = [];
page.on('pageerror', (e) => problems.push('page error: ' + e.message));
// An API answer of 4xx (the refused write above) is logged by Chromium as a
// failed resource; the page shows those itself.  Any other console error counts.
page.on('console', (m) => {
    const expected = m.text().startsWith('Failed to load resource') && (m.location().url || '').includes('/api/');
    if (m.type() === 'error' && !expected) problems.push('console error: ' + m.text() + ' at ' + (m.location().url || '?'));
});

async function shot(name) {
    if (process.env.KEEL_DASHBOARD_SCREENSHOTS)
        await page.screenshot({ path: join(process.env.KEEL_DASHBOARD_SCREENSHOTS, name + '.png'), fullPage: true });
}

async function view(hash) {
    await page.goto(base + '/' + hash);
    await page.waitForSelector('main[aria-busy="false"]');
}

async function check(desc, fn) {
    try {
        ok(await fn(), desc);
    } catch (e) {
        ok(false, desc + ' (' + e.message.split('\n')[0] + ')');
    }
}

try {
    // Service catalog.
    await view('#catalog');
    await shot('catalog');
    await check('the catalog lists the todo and hello services', async () =>
        (await page.locator('[data-testid="service-todo"] h2').textContent()) === 'todo' &&
        (await page.locator('[data-testid="service-hello"]').count()) === 1);
    await check('with GET /todo/:id and its response fields', async () => {
        const ep = page.locator('[data-endpoint="todo.get"]');
        const text = await ep.textContent();
        return text.includes('/todo/:id') && text.includes('response') && text.includes('title') && text.includes('int64');
    });
    await check('with its doc comment', async () =>
        (await page.locator('[data-endpoint="todo.get"]').textContent()).includes('Returns one item.'));
    await check('and the auth service\'s secret by name', async () =>
        (await page.locator('[data-testid="service-auth"]').textContent()).includes('ADMIN_TOKEN'));

    // Architecture.
    await view('#architecture');
    await shot('architecture');
    await check('the architecture diagram has the todo service and its database, joined', async () =>
        (await page.locator('svg#architecture [data-node="service:todo"]').count()) === 1 &&
        (await page.locator('svg#architecture [data-node="db:todo"]').count()) === 1 &&
        (await page.locator('svg#architecture [data-edge="todo->db:todo"]').count()) === 1);
    await check('the secret ADMIN_TOKEN, the external database and a keel_call', async () =>
        (await page.locator('svg#architecture [data-node="secret:ADMIN_TOKEN"]').count()) === 1 &&
        (await page.locator('svg#architecture [data-edge="auth->secret:ADMIN_TOKEN"]').count()) === 1 &&
        (await page.locator('svg#architecture [data-node="extdb:legacy"]').count()) === 1);

    // Databases and the read-only query box.
    await view('#databases');
    await shot('databases');
    await check('the databases view shows todo\'s migrations, applied', async () =>
        (await page.locator('[data-database="todo"] [data-migration="0001_create_todo_item.up.sql"]').textContent())
            .includes('applied'));
    await page.selectOption('#query-db', 'todo');
    await page.fill('#query-sql', 'SELECT count(*) AS n FROM todo_item');
    await page.click('#query-run');
    await check('a read-only query shows its column and row', async () => {
        await page.waitForSelector('#query-table');
        return (await page.locator('#query-table th').first().textContent()) === 'n';
    });
    await page.fill('#query-sql', 'DELETE FROM todo_item');
    await page.click('#query-run');
    await check('a write is refused and the error shown', async () => {
        await page.waitForSelector('#query-error');
        return (await page.locator('#query-error').textContent()).includes('permission_denied');
    });

    // The API explorer: POST /todo, then its trace.
    await view('#explorer');
    await page.selectOption('#explorer-endpoint', 'todo.create');
    await page.fill('#explorer-body', JSON.stringify({ title: 'from the dashboard' }));
    await page.click('#explorer-send');
    await page.waitForSelector('#explorer-status');
    await shot('explorer');
    await check('the explorer sends POST /todo: status 200', async () =>
        (await page.locator('#explorer-status').textContent()) === 'status 200');
    await check('and shows the answer', async () =>
        (await page.locator('#explorer-response').textContent()).includes('from the dashboard'));
    await page.click('#explorer-trace');
    await page.waitForSelector('#waterfall');
    await page.waitForSelector('main[aria-busy="false"]');
    await shot('trace');
    await check('its trace opens as a waterfall with the endpoint span', async () =>
        (await page.locator('#waterfall [data-span="POST /todo"]').count()) === 1);
    await check('and the INSERT with its SQL', async () =>
        (await page.locator('#waterfall [data-span="INSERT todo"] pre.sql').textContent()).includes('INSERT INTO todo_item'));

    // A failing request shows in the traces list with its status.
    await view('#explorer');
    await page.selectOption('#explorer-endpoint', 'todo.get');
    await page.fill('#explorer-form input[data-field="id"]', '999999999');
    await page.click('#explorer-send');
    await page.waitForSelector('#explorer-status');
    await check('GET /todo/999999999 through the explorer is 404', async () =>
        (await page.locator('#explorer-status').textContent()) === 'status 404');
    await view('#traces');
    await shot('traces');
    await check('the traces view lists it with status 404', async () => {
        const row = page.locator('#traces-table tr[data-trace-id]').filter({ hasText: 'GET /todo/:id' }).first();
        return (await row.locator('td.status').textContent()) === '404' &&
            (await row.textContent()).includes('not_found');
    });
    await check('and the POST before it', async () =>
        (await page.locator('#traces-table tr[data-trace-id]').filter({ hasText: 'POST /todo' }).count()) >= 1);
} catch (e) {
    ok(false, 'the dashboard check ran to the end (' + e.message.split('\n')[0] + ')');
} finally {
    ok(problems.length === 0, 'no page or console errors' + (problems.length ? ': ' + problems.join('; ') : ''));
    await context.close();
    rmSync(profile, { recursive: true, force: true });
}
console.log(`1..${n}`);
process.exit(failed ? 1 : 0);
