// The explorer and the training report in a real browser: Debian's chromium,
// headless, driven by playwright-core (pinned in package-lock.json).
//   node tests/browser/run.mjs TAPEGRAD_BINARY WORK_DIR [SCREENSHOT_DIR]
// Pages load from file:// with every other request refused and recorded; a
// request, a console error or an uncaught exception fails the run.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';

const [bin, work, shots] = process.argv.slice(2);
if (!bin || !work) {
  console.error('usage: run.mjs TAPEGRAD_BINARY WORK_DIR [SCREENSHOT_DIR]');
  process.exit(2);
}
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(browserPath)) {
  console.error(`run.mjs: ${browserPath} not found (tools/deps.sh browser installs Debian's chromium)`);
  process.exit(2);
}
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });
const tg = (...args) => execFileSync(bin, args, { cwd: work, encoding: 'utf8' });

// The pages under test, made by the command line as a user would.
const ex2 = path.join(work, 'example2.html'), ex3 = path.join(work, 'example3.html');
const expr = path.join(work, 'grad.html');
tg('example', '2', '--html', ex2);
tg('example', '3', '--html', ex3);
tg('grad', 'max(x*y, x+y) + x*x', '--at', 'x=1.5,y=-2', '--html', expr);
const trace2 = tg('example', '2', '--trace');
tg('train', '--data', 'moons', '--epochs', '4', '--hidden', '8', '--out', path.join(work, 'run'), '--quiet',
  '--no-plot');
const report = path.join(work, 'run', 'report.html');

// The backward sweep of a trace, as the steps the page should show: the seed,
// then the lines of each swept node.
function traceSteps(text) {
  const lines = text.split('\n');
  const seed = lines.findIndex((l) => l.endsWith('(seed)'));
  assert.ok(seed > 0, 'the trace has a seed line');
  const steps = [{ node: /^grad_(\w+) =/.exec(lines[seed])[1], lines: [lines[seed]] }];
  for (let i = seed + 1; i < lines.length && lines[i] !== ''; ++i) {
    const m = /^grad_\w+ \+= (?:grad_(\w+) ×|\w+_backward\(grad_(\w+)\))/.exec(lines[i]);
    assert.ok(m, `a backward line: ${lines[i]}`);
    const node = m[1] || m[2];
    if (steps[steps.length - 1].node !== node || steps.length === 1) steps.push({ node, lines: [] });
    steps[steps.length - 1].lines.push(lines[i]);
  }
  return steps;
}

const profile = fs.mkdtempSync(path.join(work, 'profile-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: browserPath,
  headless: true,
  viewport: { width: 1400, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const requests = [], problems = [];
await context.route('**/*', (route) => {
  const url = route.request().url();
  if (url.startsWith('file://')) return route.continue();
  requests.push(url);
  return route.abort();
});

async function open(file) {
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${file}: console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`${file}: ${e.message}`));
  page.on('request', (r) => { if (!r.url().startsWith('file://')) requests.push(r.url()); });
  await page.goto('file://' + file);
  await page.waitForFunction(() => window.tapegradExplorers !== undefined);
  return page;
}
const shot = async (page, name) => { if (shots) await page.screenshot({ path: path.join(shots, name) }); };
const current = (page) => page.evaluate(() => Array.from(document.querySelectorAll('g.node.tg-current')).map((g) => g.id));
const arith = (page) => page.locator('.tg-step-arith').first().textContent();
const gradText = (page, id) => page.evaluate((id) => {
  const t = Array.from(document.getElementById(id).querySelectorAll('text')).find((e) => e.textContent.startsWith('grad '));
  return t ? t.textContent : null;
}, id);
let checks = 0;
const check = (cond, msg) => { assert.ok(cond, msg); ++checks; };

// 1. Worked example 2, step by step against `tapegrad example 2 --trace`.
{
  const page = await open(ex2);
  const steps = traceSteps(trace2);
  check(steps.length === 6, `example 2 sweeps the seed and 5 nodes (got ${steps.length})`);
  const leaves = ['s1', 's2', 's3', 's4', 's5'];
  const finals = {};
  for (const id of leaves) finals[id] = /grad_(\w+) \((\w+)\) = (\S+)/.exec(trace2.split('\n').find((l) => l.startsWith(`grad_${id} (`)))[3];
  check((await current(page)).length === 0, 'nothing is highlighted before the sweep');
  for (const id of leaves) check((await gradText(page, id)) === 'grad ?', `${id} shows "grad ?" before the sweep`);
  await shot(page, 'explorer-start.png');
  for (let k = 0; k < steps.length; ++k) {
    if (k % 2) await page.keyboard.press('ArrowRight'); else await page.click('.tg-next');
    const cur = await current(page);
    check(cur.length === 1 && cur[0] === steps[k].node, `step ${k + 1}: ${steps[k].node} highlighted (got ${cur})`);
    check((await arith(page)) === steps[k].lines.join('\n'), `step ${k + 1}: the arithmetic is the trace's lines`);
    // The edges this step sends gradients down are highlighted, and only they.
    const lit = await page.evaluate(() => Array.from(document.querySelectorAll('g.edge.tg-edge-current')).length);
    check(lit === (k === 0 ? 0 : steps[k].lines.length), `step ${k + 1}: ${lit} edges highlighted`);
    // A leaf shows "grad ?" until a step has sent it something.
    const reached = new Set(steps.slice(1, k + 1).flatMap((s) => s.lines.map((l) => /^grad_(\w+)/.exec(l)[1])));
    for (const id of leaves) {
      const t = await gradText(page, id);
      if (reached.has(id)) check(t === `grad ${finals[id]}`, `step ${k + 1}: ${id} shows its gradient ${finals[id]} (got ${t})`);
      else check(t === 'grad ?', `step ${k + 1}: ${id} is not yet computed (got ${t})`);
    }
    const active = await page.locator('.tg-trace .tg-active').allTextContents();
    check(active.join('\n') === steps[k].lines.join('\n'), `step ${k + 1}: the trace panel marks the same lines`);
    if (k === 4) await shot(page, 'explorer-step.png');
  }
  await page.click('.tg-next');  // past the end: stays at the last step
  check((await current(page))[0] === steps[steps.length - 1].node, 'next at the end stays');
  await page.keyboard.press('ArrowLeft');
  check((await current(page))[0] === steps[steps.length - 2].node, 'ArrowLeft goes back one step');
  await page.click('.tg-reset');
  check((await current(page)).length === 0 && (await gradText(page, 's1')) === 'grad ?', 'reset goes back to the start');
  await page.click('.tg-play');
  await page.waitForFunction((n) => document.querySelector('.tg-explorer').dataset.pos === String(n), steps.length, { timeout: 20000 });
  check((await page.textContent('.tg-play')).includes('play'), 'play stops at the end');
  await page.hover('#s6');
  const info = await page.textContent('.tg-info');
  check(info.includes('mul: switches') && info.includes('local partials -1, 2') && info.includes('created at') && info.includes('inspect_cmds.cpp'),
    `hovering s6 shows op, partials and source line: ${info}`);
  // Zoom with the wheel changes the view; fit restores it.
  const before = await page.getAttribute('.tg-graph svg', 'viewBox');
  const box = await page.locator('.tg-graph svg').boundingBox();
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.wheel(0, -300);
  check((await page.getAttribute('.tg-graph svg', 'viewBox')) !== before, 'the wheel zooms');
  await page.click('.tg-fit');
  check((await page.getAttribute('.tg-graph svg', 'viewBox')) === before, 'fit restores the view');
  await page.close();
}

// 2. A tensor graph (worked example 3): steps to the end, heat maps on hover.
{
  const page = await open(ex3);
  const total = await page.evaluate(() => window.tapegradExplorers[0].total);
  for (let k = 0; k < total; ++k) await page.keyboard.press('ArrowRight');
  const w1 = await page.evaluate(() => window.tapegradExplorers[0].data.nodes.find((n) => n.name === 'W1').id);
  await page.hover('#' + w1);
  check((await page.locator('.tg-info svg.tg-heat').count()) === 2, 'W1 shows heat maps of its value and gradient');
  check((await page.textContent('.tg-info')).includes('layer 1'), 'W1 shows its scope');
  const pending = await page.evaluate(() => Array.from(document.querySelectorAll('text.tg-grad-pending')).length);
  check(pending === 0, 'every gradient is computed at the end of the sweep');
  await shot(page, 'explorer-tensor.png');
  await page.close();
}

// 3. An expression from `tapegrad grad`: a max routes one way.
{
  const page = await open(expr);
  const n = await page.evaluate(() => window.tapegradExplorers[0].total);
  for (let k = 0; k < n; ++k) await page.click('.tg-next');
  const lines = await page.locator('.tg-trace .tg-line').allTextContents();
  check(lines.some((l) => l.includes('max: routes')), 'the max node says it routes');
  await page.close();
}

// 4. The training report: its charts hold the numbers of metrics.csv.
{
  const page = await open(report);
  const csv = fs.readFileSync(path.join(work, 'run', 'metrics.csv'), 'utf8').trim().split('\n');
  const head = csv[0].split(',');
  const rows = csv.slice(1).map((l) => Object.fromEntries(l.split(',').map((v, i) => [head[i], Number(v)])));
  check(rows.length === 4, 'four epochs in metrics.csv');
  for (const key of ['train_loss', 'test_loss', 'test_accuracy']) {
    const pts = await page.evaluate((key) => Array.from(document.querySelectorAll(`g.tg-series[data-series="${key}"] circle`))
      .map((c) => [Number(c.dataset.x), Number(c.dataset.y)]), key);
    check(pts.length === rows.length, `${key}: one point per epoch`);
    rows.forEach((r, i) => {
      check(pts[i][0] === r.epoch && Math.abs(pts[i][1] - r[key]) <= 5e-7, `${key} at epoch ${r.epoch}: chart ${pts[i][1]}, csv ${r[key]}`);
    });
  }
  const names = await page.evaluate(() => Array.from(document.querySelectorAll('g.tg-series')).map((g) => g.dataset.series));
  for (const p of ['layer0.weight', 'layer0.bias', 'layer1.weight', 'layer1.bias'])
    check(names.includes('grad_norm:' + p) && names.includes('update_ratio:' + p), `gradient norm and update ratio of ${p}`);
  check((await page.locator('.tg-hist').count()) === 4 * 2 * 3, 'weights and gradients of 4 parameters at 3 epochs');
  await page.hover('g.tg-series[data-series="test_accuracy"] circle >> nth=3');
  const tip = await page.textContent('.tg-tooltip');
  check(tip.includes('epoch 4') && tip.includes(String(rows[3].test_accuracy).slice(0, 6)), `hovering a point shows its numbers: ${tip}`);
  await shot(page, 'report.png');
  // The explorer of one training step steps to its end.
  const total = await page.evaluate(() => window.tapegradExplorers[0].total);
  check(total === 5, `the report embeds the explorer of a training step: seed, loss, 2 linear, relu (got ${total})`);
  await page.locator('.tg-explorer').scrollIntoViewIfNeeded();
  for (let k = 0; k < total; ++k) await page.click('.tg-explorer .tg-next');
  check((await page.evaluate(() => document.querySelector('.tg-explorer').dataset.pos)) === String(total), 'the step explorer reaches the end');
  await shot(page, 'report-step.png');
  await page.close();
}

await context.close();
fs.rmSync(profile, { recursive: true, force: true });
check(requests.length === 0, `no network requests (got ${requests.join(', ')})`);
check(problems.length === 0, `no console errors or exceptions:\n${problems.join('\n')}`);
console.log(`browser: ${checks} checks passed`);
