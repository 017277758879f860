// The platform for a browser test: redis-server, the three services and the
// gateway as real processes on free loopback ports, development tokens, and
// a small JSON client of the gateway. Used by insights_e2e.js.
//
// Environment: REDIS_SERVER, LEDGER_BINARY, KUDOS_BINARY, LEADERBOARD_BINARY,
// GATEWAY_BINARY.
'use strict';

const { spawn, spawnSync } = require('child_process');
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
const DEV_SECRET = 'dev-only-jwt-secret-change-me';

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

// Whether a binary knows a flag (absl prints every flag with --helpfull).
function hasFlag(binary, flag) {
  const out = spawnSync(binary, ['--helpfull'], { encoding: 'utf8', timeout: 10000 });
  return ((out.stdout || '') + (out.stderr || '')).includes('-' + flag + ' ') ||
    ((out.stdout || '') + (out.stderr || '')).includes('-' + flag + ')');
}

class Platform {
  constructor(org) {
    this.org = org;
    this.work = fs.mkdtempSync(path.join(os.tmpdir(), 'kudos-e2e-'));
    this.procs = {};
    this.url = '';
  }

  start(name, binary, args, port) {
    if (!binary) throw new Error('binary for ' + name + ' not given (set ' + name.toUpperCase() + '_BINARY)');
    const out = fs.openSync(path.join(this.work, name + '.log'), 'a');
    // Explicit development mode: the services refuse the public dev secrets
    // (which the tokens here are signed with) unless told, like the harness.
    const childEnv = Object.assign({}, process.env, { KUDOS_DEV_INSECURE_DEFAULTS: '1' });
    const child = spawn(binary, args, { stdio: ['ignore', out, out], env: childEnv });
    this.procs[name] = { child, binary, args, port };
    return waitPort(port);
  }

  stop(name, signal = 'SIGTERM') {
    const p = this.procs[name];
    if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => p.child.kill('SIGKILL'), 5000);
      p.child.once('exit', () => { clearTimeout(timer); resolve(); });
      p.child.kill(signal);
    });
  }

  // kudosArgs: extra flags of the kudos binary (e.g. the survey sweep's).
  async up(kudosArgs = []) {
    const ports = {};
    for (const name of ['redis', 'ledger', 'kudos', 'leaderboard', 'gateway']) ports[name] = await freePort();
    const redis = '127.0.0.1:' + ports.redis;
    const addr = (name) => '127.0.0.1:' + ports[name];
    fs.mkdirSync(path.join(this.work, 'redis'));
    await this.start('redis', BIN.redis, ['--port', String(ports.redis), '--bind', '127.0.0.1', '--dir',
      path.join(this.work, 'redis'), '--save', '', '--appendonly', 'no', '--daemonize', 'no'], ports.redis);
    await this.start('ledger', BIN.ledger, ['--listen=' + addr('ledger'), '--redis=' + redis], ports.ledger);
    await this.start('kudos', BIN.kudos, ['--listen=' + addr('kudos'), '--redis=' + redis,
      '--ledger=' + addr('ledger')].concat(kudosArgs), ports.kudos);
    await this.start('leaderboard', BIN.leaderboard, ['--listen=' + addr('leaderboard'), '--redis=' + redis], ports.leaderboard);
    await this.start('gateway', BIN.gateway, ['--http=' + addr('gateway'), '--kudos=' + addr('kudos'),
      '--ledger=' + addr('ledger'), '--leaderboard=' + addr('leaderboard'), '--sse_retry_ms=500',
      '--max_backoff_ms=1000', '--heartbeat_ms=5000'], ports.gateway);
    this.url = 'http://' + addr('gateway');
    log('platform up; gateway at', this.url, 'logs in', this.work);
  }

  async down(keepLogs) {
    for (const name of ['gateway', 'leaderboard', 'kudos', 'ledger', 'redis']) await this.stop(name);
    if (keepLogs) {
      for (const file of fs.readdirSync(this.work).filter((f) => f.endsWith('.log'))) {
        console.error('---- ' + file + ' (tail)');
        console.error(fs.readFileSync(path.join(this.work, file), 'utf8').split('\n').slice(-30).join('\n'));
      }
    } else {
      fs.rmSync(this.work, { recursive: true, force: true });
    }
  }

  mint(sub, roles, lifetimeS = 3600) {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    const head = b64({ alg: 'HS256', typ: 'JWT' });
    const body = b64({ sub, org: this.org, roles, iss: 'kudos-platform', aud: 'kudos-api', iat: now, exp: now + lifetimeS });
    const sig = crypto.createHmac('sha256', DEV_SECRET).update(head + '.' + body).digest('base64url');
    return head + '.' + body + '.' + sig;
  }

  // JSON call through the gateway; throws with the status and error body.
  async api(method, route, token, body) {
    const response = await fetch(this.url + route, {
      method,
      headers: { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) {
      const error = new Error(method + ' ' + route + ' -> ' + response.status + ' ' + text);
      error.status = response.status;
      throw error;
    }
    return JSON.parse(text);
  }

  sendKudos(giver, recipients, message, points, values) {
    return this.api('POST', '/v1/kudos', this.mint(giver, ['member']), {
      requestId: crypto.randomUUID(), recipientIds: recipients, message,
      values: values || ['teamwork'], pointsPerRecipient: points,
    });
  }
}

// Polls fn until it returns a truthy value (returned) or the time is up.
async function until(what, fn, timeoutMs = 30000, everyMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (e) { last = e; }
    await sleep(everyMs);
  }
  throw new Error('timed out waiting for ' + what + (last ? ' (last error: ' + last.message + ')' : ''));
}

module.exports = { Platform, BIN, hasFlag, log, sleep, until };
