import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveOptions } from '../../src/core/options';

test('defaults: on in dev, off under NODE_ENV=production, /__leaks, loopback-only', () => {
  const dev = resolveOptions(undefined, {});
  assert.equal(dev.enabled, true);
  assert.equal(dev.mode, 'dev');
  assert.equal(dev.path, '/__leaks');
  assert.equal(dev.prefix, 'leakwatch_');
  assert.equal(dev.authorizeIsDefault, true);
  assert.equal(dev.autoProbe, true);
  const prod = resolveOptions({}, { NODE_ENV: 'production' });
  assert.equal(prod.enabled, false);
  assert.equal(prod.mode, 'production');
  assert.equal(prod.autoProbe, false);
  const forced = resolveOptions({ enabled: true, autoProbe: true }, { NODE_ENV: 'production' });
  assert.equal(forced.enabled, true);
  assert.equal(forced.autoProbe, false, 'autoProbe never runs in production');
  // One request in 8 is sampled in dev mode, one in 16 in production (the Fastify overhead budget).
  assert.equal(dev.sampleEvery, 8);
  assert.equal(prod.sampleEvery, 16);
  assert.equal(resolveOptions({ mode: 'production' }, {}).sampleEvery, 16);
  assert.equal(resolveOptions({ mode: 'dev' }, { NODE_ENV: 'production' }).sampleEvery, 8);
  assert.equal(resolveOptions({ sampleEvery: 8 }, { NODE_ENV: 'production' }).sampleEvery, 8);
});

test('the caller\'s object is never mutated', () => {
  const input = Object.freeze({ path: '/leaks/', maxRoutes: 10 });
  const r = resolveOptions(input, {});
  assert.equal(r.path, '/leaks');
  assert.deepEqual(input, { path: '/leaks/', maxRoutes: 10 });
});

test('bad options throw a TypeError naming the option and the value received', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ path: 'leaks' }, /"path".*"leaks"/],
    [{ path: '/' }, /"path".*"\/"/],
    [{ path: '/a b' }, /"path".*"\/a b"/],
    [{ maxRoutes: 0 }, /"maxRoutes".*received 0/],
    [{ samplingInterval: 100 }, /"samplingInterval".*received 100/],
    [{ samplingInterval: '8192' }, /"samplingInterval".*received "8192"/],
    [{ loadRate: -1 }, /"loadRate".*received -1/],
    [{ loadRate: 2.5 }, /"loadRate".*received 2.5/],
    [{ loadRate: '500' }, /"loadRate".*received "500"/],
    [{ cpuBudget: 0 }, /"cpuBudget".*received 0/],
    [{ cpuBudget: -0.1 }, /"cpuBudget".*received -0.1/],
    [{ cpuBudget: Infinity }, /"cpuBudget".*received Infinity/],
    [{ cpuBudget: '0.1' }, /"cpuBudget".*received "0.1"/],
    [{ calmBudget: 0 }, /"calmBudget".*received 0/],
    [{ calmBudget: NaN }, /"calmBudget".*received NaN/],
    [{ calmBudget: 101 }, /"calmBudget".*received 101/],
    [{ calmBudget: -Infinity }, /"calmBudget".*received -Infinity/],
    [{ calmBudget: '0.05' }, /"calmBudget".*received "0.05"/],
    [{ maxRoutes: 1.5 }, /"maxRoutes".*received 1\.5/],
    [{ maxRoutes: '10' }, /"maxRoutes".*received "10"/],
    [{ enabled: 'yes' }, /"enabled".*received "yes"/],
    [{ authorize: true }, /"authorize".*received true/],
    [{ registry: {} }, /"registry".*received an object/],
    [{ prefix: 'my-prefix' }, /"prefix".*"my-prefix"/],
    [{ mode: 'test' }, /"mode".*"test"/],
    [{ workers: -2 }, /"workers".*-2/],
    [{ logger: console.log }, /"logger".*a function/],
    [{ pth: '/x' }, /unknown option "pth"/],
    ['/x', /options must be an object; received "\/x"/],
    [null, /options must be an object; received null/],
  ];
  for (const [input, re] of cases) {
    assert.throws(() => resolveOptions(input as any, {}), (e: any) => e instanceof TypeError && re.test(e.message), `for ${JSON.stringify(input)}`);
  }
});

test('loadRate: 500 requests/s by default, 0 allowed (never step back)', () => {
  assert.equal(resolveOptions({}, {}).loadRate, 500);
  assert.equal(resolveOptions({ loadRate: 0 }, {}).loadRate, 0);
});

test('cpuBudget: no cap (Infinity) by default; any share above 0 up to 100', () => {
  assert.equal(resolveOptions({}, {}).cpuBudget, Infinity);
  assert.equal(resolveOptions({ cpuBudget: 1 }, {}).cpuBudget, 1);
  assert.equal(resolveOptions({ cpuBudget: 0.1 }, {}).cpuBudget, 0.1);
  assert.equal(resolveOptions({ cpuBudget: 0.01 }, {}).cpuBudget, 0.01);
});

test('calmBudget: a fiftieth of the app CPU by default; any share above 0 up to 100, or Infinity (never calm)', () => {
  assert.equal(resolveOptions({}, {}).calmBudget, 0.02);
  assert.equal(resolveOptions({ calmBudget: 0.2 }, {}).calmBudget, 0.2);
  assert.equal(resolveOptions({ calmBudget: 100 }, {}).calmBudget, 100);
  assert.equal(resolveOptions({ calmBudget: Infinity }, {}).calmBudget, Infinity);
});

test('samplingInterval: 2048 in dev mode, off (0) in production unless set', () => {
  assert.equal(resolveOptions({ mode: 'dev' }, {}).samplingInterval, 2048);
  assert.equal(resolveOptions({}, { NODE_ENV: 'production' }).samplingInterval, 0);
  assert.equal(resolveOptions({ mode: 'production', samplingInterval: 32768 }, {}).samplingInterval, 32768);
  assert.equal(resolveOptions({ samplingInterval: 0 }, {}).samplingInterval, 0);
});
