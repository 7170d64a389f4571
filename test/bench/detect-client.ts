// Loopback load for the detection benchmark, run as a child process so that the client's own
// allocations never land in the measured server's heap. Seeded: the same arguments send the same
// sequence of URLs. The mix changes every `phase` requests (random weights, some routes nearly
// idle, others busy), as real traffic does over a day; a fixed mix would make per-route counts
// collinear (see MEASURING.md §5).
import http from 'node:http';
import { mulberry32 } from '../helpers';

interface ClientConfig {
  port: number;
  total: number;
  concurrency: number;
  seed: number;
  /** Requests per second over all connections; 0 = as fast as possible. */
  rate: number;
  /** Requests per phase of the mix; 0 = a fixed uniform mix. */
  phase: number;
  /**
   * How far the mix swings between phases: `wide` draws each route's weight as u² (some routes
   * nearly idle for a phase, others busy); `mild` as 0.5 + u (every route keeps roughly its fair
   * share over a run). Default `wide`.
   */
  mix?: 'wide' | 'mild';
  /** URL pickers: one entry per route, each a list of concrete URLs to rotate through. */
  routes: string[][];
}


async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2]) as ClientConfig;
  const rng = mulberry32(cfg.seed);
  const agent = new http.Agent({ keepAlive: true, maxSockets: cfg.concurrency });
  let weights = cfg.routes.map(() => 1);
  let sent = 0;
  let done = 0;
  let errors = 0;
  const t0 = performance.now();
  const pick = (): string => {
    if (cfg.phase > 0 && sent % cfg.phase === 0) weights = cfg.routes.map(() => (cfg.mix === 'mild' ? 0.5 + rng() : rng() ** 2));
    const sum = weights.reduce((a, b) => a + b, 0);
    let u = rng() * sum;
    let r = 0;
    for (; r < weights.length - 1; r++) { u -= weights[r]; if (u < 0) break; }
    const urls = cfg.routes[r];
    return urls[Math.floor(rng() * urls.length)];
  };
  const one = (path: string): Promise<void> => new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: cfg.port, path, agent }, (res) => {
      if (res.statusCode !== 200) errors++;
      res.resume();
      res.on('end', () => resolve());
    });
    req.on('error', () => { errors++; resolve(); });
  });
  const worker = async (): Promise<void> => {
    while (sent < cfg.total) {
      const path = pick();
      sent++;
      if (cfg.rate > 0) {
        const due = t0 + (sent / cfg.rate) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      await one(path);
      done++;
      if (done % 250 === 0 && process.send) process.send({ done });
    }
  };
  await Promise.all(Array.from({ length: cfg.concurrency }, worker));
  agent.destroy();
  const ms = performance.now() - t0;
  if (process.send) process.send({ finished: true, done, errors, ms });
}

main().catch((e) => { console.error(e); process.exit(1); });
