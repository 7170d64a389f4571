import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as core from '../src/index';
import * as expressEntry from '../src/express/index';
import * as fastifyEntry from '../src/fastify/index';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './helpers';

const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));

// The public shape is a promise to users: this test fails when an export disappears or is renamed.
test('exports: the public shape of the three entry points', () => {
  for (const name of ['createMonitor', 'LeakMonitor', 'PROBE_HEADER', 'resolveOptions', 'UNMATCHED', 'OVERFLOW']) {
    assert.ok(name in core, `leakwatch exports ${name}`);
  }
  assert.equal(typeof expressEntry.leakwatch, 'function');
  assert.equal(expressEntry.default, expressEntry.leakwatch);
  assert.equal(typeof fastifyEntry.fastifyLeakwatch, 'function');
  assert.equal(fastifyEntry.default, fastifyEntry.fastifyLeakwatch);
  const mw = expressEntry.leakwatch({ notice: false });
  assert.equal(mw.name, 'leakwatchMiddleware');
  assert.equal(mw.length, 3);
  assert.ok(mw.monitor instanceof core.LeakMonitor);
  mw.close();
  assert.deepEqual(Object.keys(pkg.exports).sort(), ['.', './express', './fastify', './package.json']);
  assert.equal(pkg.engines.node, '>=20');
});
