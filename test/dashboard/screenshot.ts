// Takes the README's screenshot of the overview from the demo with its own traffic:
//   npm run screenshot   →   examples/screenshots/overview.png
// It also reports how long after start the overview first showed a `growing` route next to a
// `stable` or `warming-up` one (the issue asks for that within 30 s of `npm start`).
import fs from 'node:fs';
import path from 'node:path';
import { get, repoRoot } from '../helpers';
import { launch, newContext, watch, horizontalOverflow } from './browser';
import { startDemo } from './demo';

async function main(): Promise<void> {
  const t0 = Date.now();
  const demo = await startDemo(Number(process.env.DEMO_RPS ?? 200)); // npm start's default rate
  if (!demo) throw new Error('examples/demo/server.js is missing');
  const browser = await launch();
  try {
    let firstSeenMs: number | null = null;
    let verdicts: Record<string, number> = {};
    const minMs = Number(process.env.SHOT_AFTER_MS ?? 25_000);
    while (Date.now() - t0 < 60_000) {
      const routes = (await get(demo.port, '/__leaks/api/routes')).json().routes as Array<{ verdict: string }>;
      verdicts = {};
      for (const r of routes) verdicts[r.verdict] = (verdicts[r.verdict] ?? 0) + 1;
      const ok = (verdicts.growing ?? 0) + (verdicts.leaking ?? 0) > 0 && (verdicts.stable ?? 0) + (verdicts['warming-up'] ?? 0) > 0;
      if (ok && firstSeenMs === null) firstSeenMs = Date.now() - t0;
      if (firstSeenMs !== null && Date.now() - t0 >= minMs) break;
      await new Promise((r) => setTimeout(r, 500));
    }
    const ctx = await newContext(browser, 1400, 900);
    const page = await ctx.newPage();
    const seen = watch(page);
    await page.goto(`http://127.0.0.1:${demo.port}/__leaks`);
    const out = path.join(repoRoot, 'examples', 'screenshots', 'overview.png');
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await page.screenshot({ path: out, fullPage: true });
    const overflow = await horizontalOverflow(page);
    console.log(JSON.stringify({
      screenshot: path.relative(repoRoot, out),
      takenAfterMs: Date.now() - t0,
      growingNextToStableOrWarmingUpAfterMs: firstSeenMs,
      verdicts,
      consoleErrors: seen.errors,
      horizontalOverflowPx: overflow,
    }, null, 2));
    await ctx.close();
  } finally {
    await browser.close();
    await demo.close();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
