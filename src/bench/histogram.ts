/**
 * A log-scale latency histogram in microseconds: 40 buckets per factor e (2.5 % resolution),
 * fixed size, so a worker records millions of samples without allocating and the main thread
 * merges the workers' counts.
 */
export const BUCKETS = 800
const PER_E = 40

/** The bucket of a latency in microseconds. */
export function bucketOf(us: number): number {
  if (!(us > 0)) return 0
  const index = Math.floor(Math.log(us + 1) * PER_E)
  return index >= BUCKETS ? BUCKETS - 1 : index
}

/** The upper bound of a bucket, in microseconds. */
export function bucketUpperUs(index: number): number {
  return Math.exp((index + 1) / PER_E) - 1
}

/** Adds `from` into `into`. */
export function merge(into: Float64Array, from: ArrayLike<number>): void {
  for (let i = 0; i < BUCKETS; i++) into[i]! += from[i] ?? 0
}

/** Latency summary in ms; NaN when empty. */
export interface LatencySummary {
  readonly samples: number
  readonly p50Ms: number
  readonly p90Ms: number
  readonly p99Ms: number
  readonly maxMs: number
}

/** The p-th percentile (0..100) in ms, from bucket upper bounds. */
export function percentileMs(counts: Float64Array, p: number): number {
  let total = 0
  for (let i = 0; i < BUCKETS; i++) total += counts[i]!
  if (total === 0) return NaN
  const rank = Math.max(1, Math.ceil((p / 100) * total))
  let seen = 0
  for (let i = 0; i < BUCKETS; i++) {
    seen += counts[i]!
    if (seen >= rank) return Math.round(bucketUpperUs(i)) / 1000
  }
  return NaN
}

/** p50/p90/p99/max of a histogram (max is the upper bound of its last non-empty bucket). */
export function summarize(counts: Float64Array): LatencySummary {
  let samples = 0
  let last = -1
  for (let i = 0; i < BUCKETS; i++) {
    samples += counts[i]!
    if (counts[i]! > 0) last = i
  }
  return {
    samples,
    p50Ms: percentileMs(counts, 50),
    p90Ms: percentileMs(counts, 90),
    p99Ms: percentileMs(counts, 99),
    maxMs: last < 0 ? NaN : Math.round(bucketUpperUs(last)) / 1000,
  }
}

/** Microseconds on the monotonic clock, the same in every thread of the process. */
export function nowUs(): number {
  const [s, ns] = process.hrtime()
  return s * 1e6 + Math.floor(ns / 1000)
}
