import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './helpers';

// The real thing a user gets: the tarball from `npm pack`, installed into a fresh project,
// loaded by both module systems, with its types checked by TypeScript under node16 resolution.
test('npm pack tarball installs and loads from require and import, with types', { timeout: 240_000 }, () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'leakwatch-pack-'));
  try {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const out = execFileSync(npm, ['pack', '--json', '--pack-destination', tmp, '--ignore-scripts'], { cwd: repoRoot, encoding: 'utf8' });
    const info = JSON.parse(out)[0];
    const files: string[] = info.files.map((f: { path: string }) => f.path);
    assert.ok(files.includes('dist/src/express/index.js'));
    assert.ok(files.includes('dist/src/esm/fastify.mjs'));
    // The EJS views and their assets are read at run time, so every one of them must ship.
    const views = fs.existsSync(path.join(repoRoot, 'views'))
      ? (fs.readdirSync(path.join(repoRoot, 'views'), { recursive: true }) as string[])
        .filter((f) => fs.statSync(path.join(repoRoot, 'views', f)).isFile()).map((f) => 'views/' + f.split(path.sep).join('/'))
      : [];
    for (const v of views) assert.ok(files.includes(v), `${v} is in the tarball`);
    assert.ok(!files.some((f) => f.startsWith('dist/test/')), 'tests are not shipped');
    const app = path.join(tmp, 'app');
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }));
    execFileSync(npm, ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', path.join(tmp, info.filename)], { cwd: app, stdio: 'pipe' });

    fs.writeFileSync(path.join(app, 'cjs.cjs'), `
      const core = require('leakwatch');
      const { leakwatch } = require('leakwatch/express');
      const fastify = require('leakwatch/fastify');
      const mw = leakwatch({ notice: false });
      const out = {
        core: Object.keys(core).sort(),
        express: typeof leakwatch, mwName: mw.name, arity: mw.length,
        fastifyNamed: typeof fastify.fastifyLeakwatch, fastifyDefault: fastify.default === fastify.fastifyLeakwatch,
        fastifyName: fastify.fastifyLeakwatch[Symbol.for('fastify.display-name')],
      };
      mw.close();
      console.log(JSON.stringify(out));`);
    fs.writeFileSync(path.join(app, 'esm.mjs'), `
      import * as core from 'leakwatch';
      import { leakwatch } from 'leakwatch/express';
      import expressDefault from 'leakwatch/express';
      import fastifyDefault, { fastifyLeakwatch } from 'leakwatch/fastify';
      const mw = leakwatch({ notice: false });
      console.log(JSON.stringify({
        core: Object.keys(core).filter((k) => k !== 'default').sort(),
        express: typeof leakwatch, same: expressDefault === leakwatch, mwName: mw.name,
        fastifyNamed: typeof fastifyLeakwatch, fastifyDefault: fastifyDefault === fastifyLeakwatch,
      }));
      mw.close();`);
    const cjs = JSON.parse(execFileSync(process.execPath, ['cjs.cjs'], { cwd: app, encoding: 'utf8' }));
    const esm = JSON.parse(execFileSync(process.execPath, ['esm.mjs'], { cwd: app, encoding: 'utf8' }));
    for (const name of ['createMonitor', 'LeakMonitor']) {
      assert.ok(cjs.core.includes(name), `require('leakwatch').${name}`);
      assert.ok(esm.core.includes(name), `import { ${name} } from 'leakwatch'`);
    }
    assert.deepEqual(esm.core.filter((k: string) => !cjs.core.includes(k)), [], 'ESM exposes nothing CJS lacks');
    assert.equal(cjs.express, 'function');
    assert.equal(cjs.mwName, 'leakwatchMiddleware');
    assert.equal(cjs.arity, 3);
    assert.equal(cjs.fastifyNamed, 'function');
    assert.equal(cjs.fastifyDefault, true);
    assert.equal(cjs.fastifyName, 'leakwatch');
    assert.equal(esm.express, 'function');
    assert.equal(esm.same, true);
    assert.equal(esm.mwName, 'leakwatchMiddleware');
    assert.equal(esm.fastifyDefault, true);

    // Types resolve for both module systems through the exports map.
    fs.writeFileSync(path.join(app, 'check.cts'), `
      import { leakwatch, type LeakwatchOptions } from 'leakwatch/express';
      import { fastifyLeakwatch } from 'leakwatch/fastify';
      import { createMonitor, type RouteSummary, type Verdict } from 'leakwatch';
      const o: LeakwatchOptions = { path: '/__leaks', maxRoutes: 10 };
      const v: Verdict = 'growing';
      const s: RouteSummary | undefined = undefined;
      leakwatch(o).close(); createMonitor(o).close(); void fastifyLeakwatch; void v; void s;`);
    fs.writeFileSync(path.join(app, 'check.mts'), `
      import { leakwatch } from 'leakwatch/express';
      import fastifyLeakwatch from 'leakwatch/fastify';
      import { createMonitor, type Verdict } from 'leakwatch';
      const v: Verdict = 'leaking';
      leakwatch({ maxRoutes: 5 }).close(); createMonitor().close(); void fastifyLeakwatch; void v;`);
    const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'node16', '--moduleResolution', 'node16', '--skipLibCheck', '--types', 'node',
      '--typeRoots', path.join(repoRoot, 'node_modules', '@types'), 'check.cts', 'check.mts'], { cwd: app, stdio: 'pipe' });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
