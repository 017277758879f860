#!/usr/bin/env node
// End-to-end test of the manager's insights page (/insights) in headless
// Chromium (Debian's /usr/bin/chromium driven by playwright-core).
//
// Starts redis-server, ledger, kudos (hosting the feedback service, with a
// one-second survey sweep), leaderboard and the gateway; sets up a directory
// where maria manages the platform team; sends kudos (cross-team ones, a
// reciprocal pair, a member nobody thanks); records service requests; maria
// creates a weekly survey; the invited customers answer through the HTTP API.
// Then, as maria in the browser:
//   - with 4 answers the page shows no score and says why (anonymity threshold 5);
//   - with 5 it shows the real figures: every key figure equals the API's,
//     CSAT 4.20 and net score +40 as computed by hand from the answers, the
//     SVG charts carry the current period's values, the unrecognized list
//     starts with the member never thanked;
//   - a bad token and a member who manages no team get a clear message.
// Saves a screenshot (path printed). Everything is stopped at the end.
//
// Environment: REDIS_SERVER, LEDGER_BINARY, KUDOS_BINARY, LEADERBOARD_BINARY,
// GATEWAY_BINARY, SCREENSHOT_DIR (default: cwd), CHROMIUM (default
// /usr/bin/chromium).
'use strict';

const { chromium } = require('playwright-core');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { Platform, BIN, hasFlag, log, until } = require('./platform');

const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR || process.cwd();
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const platform = new Platform('e2e-insights');

function check(condition, message) {
  if (!condition) throw new Error(message);
}
function near(a, b, message) {
  check(Math.abs(Number(a) - Number(b)) < 1e-6, message + ': ' + a + ' != ' + b);
}

async function main() {
  // The sweep that creates each period's invitations runs every few minutes
  // by default; here every second.
  const sweepFlag = 'survey_interval_s';
  check(hasFlag(BIN.kudos, sweepFlag), 'the kudos binary has no --' + sweepFlag + ' flag');
  await platform.up(['--' + sweepFlag + '=1']);
  const api = platform.api.bind(platform);
  const admin = platform.mint('root', ['admin']);

  // Directory: maria manages the platform team (manager_id of its members).
  for (const [teamId, displayName] of [['platform', 'Platform Team'], ['support', 'Customer Support'],
    ['sales', 'Sales'], ['leads', 'Leads']]) {
    await api('POST', '/v1/teams', admin, { teamId, displayName });
  }
  const people = [
    ['maria', 'Maria Lopez', 'leads', ''],
    ['alice', 'Alice Martin', 'platform', 'maria'], ['bob', 'Bob Chen', 'platform', 'maria'],
    ['carol', 'Carol Diaz', 'platform', 'maria'], ['dave', 'Dave Okafor', 'platform', 'maria'],
    ['erin', 'Erin Walsh', 'support', ''], ['frank', 'Frank Li', 'support', ''],
    ['gina', 'Gina Rossi', 'support', ''], ['hank', 'Hank Meyer', 'support', ''],
    ['ivan', 'Ivan Petrov', 'sales', ''], ['judy', 'Judy Kim', 'sales', ''],
  ];
  for (const [personId, displayName, teamId, managerId] of people) {
    await api('POST', '/v1/people', admin, { personId, displayName, teamId, managerId, active: true });
  }

  // Kudos: three from other teams, a reciprocal pair (alice and bob thank
  // only each other, 3 times each way), dave thanked by nobody.
  await platform.sendKudos('erin', ['bob'], 'Thanks for fixing the export so fast', 5, ['service-mindset']);
  await platform.sendKudos('frank', ['carol'], 'Delivered the report on time', 4, ['on-time-delivery']);
  await platform.sendKudos('ivan', ['carol'], 'Crystal clear release notes', 2, ['clear-communication']);
  for (let i = 0; i < 3; i++) {
    await platform.sendKudos('alice', ['bob'], 'Pairing session ' + i, 3, ['teamwork']);
    await platform.sendKudos('bob', ['alice'], 'Review round ' + i, 3, ['teamwork']);
  }
  // Customers who got work from the platform team: gina, hank and judy
  // without thanking it; erin, frank and ivan record it too, so the first
  // sweep does not depend on how soon the feedback consumer read their kudos.
  for (const customer of ['gina', 'hank', 'judy', 'erin', 'frank', 'ivan']) {
    await api('POST', '/v1/service-requests', platform.mint(customer, ['member']),
      { providerTeamId: 'platform', workItemUrl: 'https://tracker.example/PLAT-' + customer });
  }

  // The consumers are incremental: wait until the insights have every kudos.
  const maria = platform.mint('maria', ['member', 'manager']);
  const teamInsights = () => api('GET', '/v1/teams/platform/insights?window=week', maria);
  await until('the insights of every kudos', async () => {
    const ins = await teamInsights();
    return Number((ins.current || {}).kudosReceived) === 9 && ins;
  });
  const survey = (await api('POST', '/v1/surveys', maria, {
    teamId: 'platform', cadence: 'CADENCE_WEEKLY', invitationsPerPeriod: 10,
    questions: [{ kind: 'QUESTION_KIND_CSAT' }, { kind: 'QUESTION_KIND_RECOMMEND' },
      { kind: 'QUESTION_KIND_TEXT' }, { kind: 'QUESTION_KIND_DIMENSION', dimension: 'DIMENSION_ON_TIME' }],
  })).survey;
  log('survey', survey.surveyId, 'created');

  // The sweep invites the people the team served: erin, frank, ivan (they
  // thanked its members) and gina, hank, judy (service requests only).
  const customers = ['erin', 'frank', 'ivan', 'gina', 'hank', 'judy'];
  const invitations = {};
  for (const customer of customers) {
    invitations[customer] = await until('an invitation for ' + customer, async () => {
      const list = await api('GET', '/v1/invitations', platform.mint(customer, ['member']));
      return (list.invitations || []).find((i) => i.surveyId === survey.surveyId);
    });
  }
  log('every served customer was invited');
  const qid = (inv, kind, dimension) => inv.questions.find((q) => q.kind === kind &&
    (!dimension || q.dimension === dimension)).questionId;
  async function answer(customer, csat, recommend, onTime, comment) {
    const inv = invitations[customer];
    const answers = [
      { questionId: qid(inv, 'QUESTION_KIND_CSAT'), score: csat },
      { questionId: qid(inv, 'QUESTION_KIND_RECOMMEND'), score: recommend },
      { questionId: qid(inv, 'QUESTION_KIND_DIMENSION', 'DIMENSION_ON_TIME'), score: onTime },
    ];
    if (comment) answers.push({ questionId: qid(inv, 'QUESTION_KIND_TEXT'), text: comment });
    await api('POST', '/v1/invitations/' + encodeURIComponent(inv.invitationId) + ':respond',
      platform.mint(customer, ['member']), { requestId: crypto.randomUUID(), answers });
  }
  // CSAT 5,4,5,3,4 -> mean 4.20; recommend 9,10,8,6,9 -> 3 promoters,
  // 1 passive, 1 detractor -> net score (3 - 1) / 5 = +40.
  await answer('erin', 5, 9, 5, 'Fast and friendly');
  await answer('frank', 4, 10, 4);
  await answer('ivan', 5, 8, 4);
  await answer('gina', 3, 6, 3, 'Took a while to hear back');


  const browser = await chromium.launch({
    executablePath: CHROMIUM, headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const errors = [];
    const open = async (token, query) => {
      const page = await browser.newPage({ viewport: { width: 1360, height: 1300 } });
      page.on('console', (m) => { if (m.type() === 'error') log('page console:', m.text()); });
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(platform.url + '/insights?token=' + encodeURIComponent(token) + (query || ''));
      return page;
    };

    // Errors: a token the services refuse, a member who manages no team.
    const forged = await open(platform.mint('maria', ['member', 'manager']).slice(0, -4) + 'AAAA');
    await forged.waitForSelector('#notice:has-text("UNAUTHENTICATED")', { timeout: 15000 });
    await forged.close();
    const member = await open(platform.mint('alice', ['member']));
    await member.waitForSelector('#notice:has-text("You manage no team")', { timeout: 15000 });
    await member.close();
    log('a refused token and a member without a team get a clear message');

    // Four answers: below the anonymity threshold, the page says why.
    const page = await open(maria, '&window=week&periods=6');
    await page.waitForSelector('body[data-ready]', { timeout: 20000 });
    const teams = await page.$$eval('#team option', (os) => os.map((o) => o.value));
    check(JSON.stringify(teams) === '["platform"]', 'maria manages exactly platform, the picker has ' + teams);
    const threshold = await page.textContent('#score-threshold');
    check(/fewer than\s*5/.test(threshold), 'the threshold notice names 5: ' + threshold);
    check((await page.textContent('#fig-service .value')) === 'hidden', 'no service score below the threshold');
    const current = (await teamInsights()).current.period;
    await page.waitForSelector(`#chart-score g.hidden-period[data-period="${current}"]`);
    log('below the threshold the page shows why there is no score');

    // The fifth answer passes the threshold; the page is refreshed through
    // its own controls.
    await answer('hank', 4, 9, 5);
    const ready = await page.getAttribute('body', 'data-ready');
    await page.selectOption('#periods', '8');
    await page.waitForSelector(`body:not([data-ready="${ready}"])`, { timeout: 20000 });
    await page.waitForSelector('#score-csat', { timeout: 10000 });

    const ins = await teamInsights();
    const score = (await api('GET', '/v1/teams/platform/service-score?window=week', maria)).score;
    check(!score.belowThreshold && Number(score.responses) === 5, 'the API has 5 responses: ' + JSON.stringify(score));
    near(score.csatMean, 4.2, 'CSAT mean from the answers');
    near(score.netScore, 40, 'net score from the answers');
    check((await page.textContent('#score-csat')) === '4.20', 'the page shows CSAT 4.20');
    check((await page.textContent('#score-net')) === '+40', 'the page shows net score +40');
    check((await page.textContent('#score-responses')).startsWith('5 responses'), 'the page shows 5 responses');
    check((await page.textContent('#score')).includes('Fast and friendly'), 'comments above the threshold');

    // Every key figure is the API's.
    const c = ins.current;
    const figure = async (id) => Number(await page.getAttribute('#' + id, 'data-value'));
    near(await figure('fig-participation'), c.participationPercent, 'participation');
    near(await figure('fig-reach'), c.reachPercent, 'reach');
    near(await figure('fig-gini'), c.pointsGini, 'Gini');
    near(await figure('fig-top10'), c.top10PointsPercent, 'top 10% share');
    near(await figure('fig-crossteam'), c.crossTeamPercent, 'cross-team share');
    near(await figure('fig-givers'), c.uniqueGiversMean, 'unique givers');
    near(await figure('fig-reciprocity'), (c.reciprocityFlags || []).length, 'reciprocity flags');
    near(await figure('fig-service'), 4.2, 'service score figure');
    // ... and what the history implies: 3 of 4 members recognized (dave is
    // not), 2 gave (alice, bob), 3 of 9 kudos received from other teams.
    near(c.reachPercent, 75, 'reach of the history');
    near(c.participationPercent, 50, 'participation of the history');
    near(c.crossTeamPercent, 100 / 3, 'cross-team share of the history');
    const pair = await page.$('#reciprocity tr.pair[data-a="alice"][data-b="bob"]');
    check(pair, 'the alice/bob pair is flagged on the page');
    const rows = await page.$$eval('#unrecognized tr.person', (trs) => trs.map((tr) => [tr.dataset.person, tr.dataset.days]));
    check(rows.length >= 1 && rows[0][0] === 'dave' && rows[0][1] === 'never',
      'dave, never recognized, heads the unrecognized list: ' + JSON.stringify(rows));
    check(!rows.some(([id]) => id === 'alice' || id === 'bob' || id === 'carol'), 'recognized people are not listed');

    // Charts: the current period's points are the figures.
    const point = (chart, series) => page.getAttribute(`#${chart} [data-series="${series}"][data-period="${current}"]`, 'data-value');
    near(await point('chart-score', 'csat'), 4.2, 'CSAT point of the current period');
    near(await point('chart-score', 'net'), 40, 'net score point of the current period');
    near(await point('chart-coverage', 'reach'), c.reachPercent, 'reach bar of the current period');
    near(await point('chart-coverage', 'participation'), c.participationPercent, 'participation bar of the current period');
    const periods = await page.$$eval('#chart-coverage rect[data-series="reach"]', (rs) => rs.map((r) => r.dataset.period));
    check(periods.length === 8 && periods[7] === current, 'the coverage chart spans 8 weeks ending ' + current + ': ' + periods);
    check(!(await page.isVisible('#notice')), 'no error notice once every figure loaded');
    check(errors.length === 0, 'page errors: ' + errors.join('; '));
    log('the page shows the real figures');

    fs.mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const shot = path.join(SCREENSHOT_DIR, 'insights_e2e.png');
    await page.screenshot({ path: shot, fullPage: true });
    log('screenshot saved to', shot);
  } finally {
    await browser.close();
  }
}

const overall = setTimeout(() => {
  console.error('e2e: timed out');
  platform.down(true).then(() => process.exit(1));
}, 200000);
main().then(async () => {
  clearTimeout(overall);
  await platform.down(false);
  log('PASS');
  process.exit(0);
}).catch(async (error) => {
  clearTimeout(overall);
  console.error('e2e: FAIL:', error);
  await platform.down(true);
  process.exit(1);
});
