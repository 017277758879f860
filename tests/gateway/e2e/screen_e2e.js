#!/usr/bin/env node
// End-to-end test of the team screen in headless Chromium (Debian's
// /usr/bin/chromium driven by playwright-core; no browser download).
//
// Starts redis-server, the three services and the gateway on free loopback
// ports, sets up the directory through the gateway's admin routes, opens
// /screen, sends kudos through the HTTP API and waits for the page to show
// them; restarts the gateway and the kudos service and checks the page
// recovers by itself; saves a screenshot. Everything is stopped at the end.
//
// Environment: REDIS_SERVER, LEDGER_BINARY, KUDOS_BINARY, LEADERBOARD_BINARY,
// GATEWAY_BINARY, SCREENSHOT_DIR (default: cwd), CHROMIUM (default
// /usr/bin/chromium).
'use strict';

const { chromium } = require('playwright-core');
const { spawn } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const net = require('net');
const os = require('os');
const path = require('path');

const env = (name, fallback) => process.env[name] || fallback;
const BIN = {
  redis: env('REDIS_SERVER', '/usr/bin/redis-server'),
  ledger: env('LEDGER_BINARY'),
  kudos: env('KUDOS_BINARY'),
  leaderboard: env('LEADERBOARD_BINARY'),
  gateway: env('GATEWAY_BINARY'),
};
const SCREENSHOT_DIR = env('SCREENSHOT_DIR', process.cwd());
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const DEV_SECRET = 'dev-only-jwt-secret-change-me';
const ORG = 'e2e-org';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kudos-e2e-'));
const procs = {};
const log = (...args) => console.log(new Date().toISOString(), ...args);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

async function waitPort(port, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const ok = await new Promise((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error('nothing listens on port ' + port);
}

function start(name, binary, args, port) {
  if (!binary) throw new Error('binary for ' + name + ' not given (set ' + name.toUpperCase() + '_BINARY)');
  const out = fs.openSync(path.join(work, name + '.log'), 'a');
  // Explicit development mode: the services refuse the public dev secrets
  // (which this test signs its tokens with) unless told, like the harness.
  const childEnv = Object.assign({}, process.env, { KUDOS_DEV_INSECURE_DEFAULTS: '1' });
  const child = spawn(binary, args, { stdio: ['ignore', out, out], env: childEnv });
  procs[name] = { child, binary, args, port };
  return waitPort(port);
}

function stop(name, signal = 'SIGTERM') {
  const p = procs[name];
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => p.child.kill('SIGKILL'), 5000);
    p.child.once('exit', () => { clearTimeout(timer); resolve(); });
    p.child.kill(signal);
  });
}

async function restart(name) {
  const p = procs[name];
  await stop(name);
  await start(name, p.binary, p.args, p.port);
}

function mint(sub, roles) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const head = b64({ alg: 'HS256', typ: 'JWT' });
  const body = b64({ sub, org: ORG, roles, iss: 'kudos-platform', aud: 'kudos-api', iat: now, exp: now + 3600 });
  const sig = crypto.createHmac('sha256', DEV_SECRET).update(head + '.' + body).digest('base64url');
  return head + '.' + body + '.' + sig;
}

let gatewayUrl = '';
async function api(method, route, token, body) {
  const response = await fetch(gatewayUrl + route, {
    method,
    headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(method + ' ' + route + ' -> ' + response.status + ' ' + text);
  return JSON.parse(text);
}

async function sendKudos(giver, recipients, message, points, values) {
  return api('POST', '/v1/kudos', mint(giver, ['member']), {
    requestId: crypto.randomUUID(), recipientIds: recipients, message,
    values: values || ['teamwork'], pointsPerRecipient: points,
  });
}

async function main() {
  const ports = {};
  for (const name of ['redis', 'ledger', 'kudos', 'leaderboard', 'gateway']) ports[name] = await freePort();
  const redis = '127.0.0.1:' + ports.redis;
  const addr = (name) => '127.0.0.1:' + ports[name];
  fs.mkdirSync(path.join(work, 'redis'));
  await start('redis', BIN.redis, ['--port', String(ports.redis), '--bind', '127.0.0.1', '--dir',
    path.join(work, 'redis'), '--save', '', '--appendonly', 'no', '--daemonize', 'no'], ports.redis);
  await start('ledger', BIN.ledger, ['--listen=' + addr('ledger'), '--redis=' + redis], ports.ledger);
  await start('kudos', BIN.kudos, ['--listen=' + addr('kudos'), '--redis=' + redis, '--ledger=' + addr('ledger')], ports.kudos);
  await start('leaderboard', BIN.leaderboard, ['--listen=' + addr('leaderboard'), '--redis=' + redis], ports.leaderboard);
  await start('gateway', BIN.gateway, ['--http=' + addr('gateway'), '--kudos=' + addr('kudos'),
    '--ledger=' + addr('ledger'), '--leaderboard=' + addr('leaderboard'), '--sse_retry_ms=500',
    '--max_backoff_ms=1000', '--heartbeat_ms=5000'], ports.gateway);
  gatewayUrl = 'http://' + addr('gateway');
  log('platform up; gateway at', gatewayUrl, 'logs in', work);

  // Directory through the gateway's admin routes.
  const admin = mint('root', ['admin']);
  await api('POST', '/v1/teams', admin, { teamId: 'platform', displayName: 'Platform Team' });
  await api('POST', '/v1/teams', admin, { teamId: 'support', displayName: 'Customer Support' });
  const people = [
    ['alice', 'Alice Martin', 'platform'], ['bob', 'Bob Chen', 'platform'],
    ['carol', 'Carol Diaz', 'platform'], ['dave', 'Dave Okafor', 'platform'],
    ['erin', 'Erin Walsh', 'support'], ['frank', 'Frank Li', 'support'],
  ];
  for (const [personId, displayName, teamId] of people) {
    await api('POST', '/v1/people', admin, { personId, displayName, teamId, active: true });
  }
  await sendKudos('alice', ['bob'], 'Thanks for the thorough code review', 5, ['clear-communication']);
  await sendKudos('erin', ['bob', 'carol'], 'You two fixed the outage in record time', 4, ['service-mindset', 'teamwork']);
  await sendKudos('bob', ['frank'], 'Great follow-up with the customer', 3, ['consistent-follow-up']);

  const browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1920, height: 1080 } });
    page.on('console', (m) => { if (m.type() === 'error') log('page console:', m.text()); });
    const screenToken = mint('lobby-screen', ['screen']);

    // A team the leaderboard does not know yet: its boards are refused upstream
    // (an SSE `error` event), which must not mark the screen as disconnected;
    // once the team exists and is caught up, its boards fill and the banner goes.
    const early = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    await early.goto(gatewayUrl + '/screen?token=' + encodeURIComponent(screenToken) + '&team=late');
    await early.waitForSelector('#banner:has-text("does not exist")', { timeout: 15000 });
    if (!(await early.$('#status.live'))) throw new Error('an upstream refusal marked the screen as not live');
    await api('POST', '/v1/teams', admin, { teamId: 'late', displayName: 'Late Team' });
    await api('POST', '/v1/people', admin, { personId: 'gina', displayName: 'Gina Rossi', teamId: 'late', active: true });
    await sendKudos('alice', ['gina'], 'Welcome aboard, thanks for the onboarding notes', 2, ['empathy']);
    await early.waitForSelector('#board-team_week .row[data-subject="gina"]', { timeout: 15000 });
    await early.waitForSelector('#banner', { state: 'hidden', timeout: 5000 });
    if (!(await early.$('#status.live'))) throw new Error('the screen is not live after its team appeared');
    await early.close();
    log('a screen opened before its team existed went live and filled in');

    await page.goto(gatewayUrl + '/screen?token=' + encodeURIComponent(screenToken) + '&team=platform');
    await page.waitForSelector('#status.live', { timeout: 15000 });
    await page.waitForSelector('#board-team_week .row[data-subject="bob"]', { timeout: 15000 });
    log('screen is live with boards');

    const nonce = crypto.randomBytes(3).toString('hex');
    const message = 'Thanks for unblocking the release ' + nonce;
    const sentAt = Date.now();
    await sendKudos('carol', ['dave'], message, 8, ['on-time-delivery', 'goals-accomplished']);
    await page.waitForSelector(`.kudos-item:has-text("${message}")`, { timeout: 10000 });
    log('kudos shown on the screen after', Date.now() - sentAt, 'ms');
    await page.waitForSelector('#board-team_week .row[data-subject="dave"]', { timeout: 15000 });
    log('board updated after', Date.now() - sentAt, 'ms');

    // Recovery: the gateway restarts, then the kudos service; no reload.
    await restart('gateway');
    log('gateway restarted');
    await page.waitForSelector('#status.live', { timeout: 15000 });
    await restart('kudos');
    log('kudos service restarted');
    const message2 = 'Back online and still thankful ' + nonce;
    let shown = false;
    for (let attempt = 0; attempt < 15 && !shown; attempt++) {
      try {
        await sendKudos('dave', ['alice'], message2, 6, ['empathy']);
      } catch (e) { log('send retry:', e.message); await sleep(500); continue; }
      try {
        await page.waitForSelector(`.kudos-item:has-text("${message2}")`, { timeout: 8000 });
        shown = true;
      } catch (e) { log('not shown yet'); }
    }
    if (!shown) throw new Error('the screen did not recover after restarts');
    await page.waitForSelector('#board-org_week .row[data-subject="alice"]', { timeout: 15000 });
    log('screen recovered after the restarts');
    const reloads = await page.evaluate(() => performance.getEntriesByType('navigation').length);
    if (reloads !== 1) throw new Error('the page reloaded');

    await sleep(1500);  // let the highlight animations settle
    fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const shot = path.join(SCREENSHOT_DIR, 'screen_e2e.png');
    await page.screenshot({ path: shot });
    log('screenshot saved to', shot);
  } finally {
    await browser.close();
  }
}

async function cleanup() {
  for (const name of ['gateway', 'leaderboard', 'kudos', 'ledger', 'redis']) await stop(name);
}

const overall = setTimeout(() => { console.error('e2e: timed out'); cleanup().then(() => process.exit(1)); }, 180000);
main().then(async () => {
  clearTimeout(overall);
  await cleanup();
  fs.rmSync(work, { recursive: true, force: true });
  log('PASS');
  process.exit(0);
}).catch(async (error) => {
  clearTimeout(overall);
  console.error('e2e: FAIL:', error);
  await cleanup();
  for (const file of fs.readdirSync(work).filter((f) => f.endsWith('.log'))) {
    console.error('---- ' + file + ' (tail)');
    console.error(fs.readFileSync(path.join(work, file), 'utf8').split('\n').slice(-30).join('\n'));
  }
  process.exit(1);
});
