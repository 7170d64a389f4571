// Runs the whole suite on Node 20, 22 and 24: V8's memory APIs and GC differ between them.
// The `node` npm package provides the other versions (`npx -p node@24 node …`).
// Usage: node test/matrix.mjs [20 22 24]
import { spawnSync } from 'node:child_process';

const versions = process.argv.slice(2).length ? process.argv.slice(2) : ['20', '22', '24'];
const build = spawnSync('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
if (build.status !== 0) process.exit(build.status ?? 1);
const results = [];
for (const v of versions) {
  const current = process.versions.node.split('.')[0] === v;
  const cmd = current ? process.execPath : 'npx';
  const args = current ? ['test/run.mjs'] : ['-y', '-p', `node@${v}`, 'node', 'test/run.mjs'];
  console.log(`\n=== Node ${v}${current ? ` (${process.version}, this process)` : ' (npm package "node")'} ===`);
  const r = spawnSync(cmd, args, { stdio: 'inherit' });
  results.push([v, r.status === 0]);
}
console.log('\nNode  result');
for (const [v, ok] of results) console.log(`${v.padEnd(5)} ${ok ? 'pass' : 'FAIL'}`);
process.exit(results.every(([, ok]) => ok) ? 0 : 1);
