// The slice of autocannon's API the benchmarks use (it ships no types of its own).
declare module 'autocannon' {
  namespace autocannon {
    interface Histogram { average: number; mean: number; p50: number; p99: number; total: number }
    interface Result {
      requests: Histogram;
      latency: Histogram;
      duration: number;
      errors: number;
      timeouts: number;
      non2xx: number;
    }
    interface Options { url: string; connections?: number; duration?: number; amount?: number; overallRate?: number }
  }
  function autocannon(opts: autocannon.Options): Promise<autocannon.Result>;
  export = autocannon;
}
