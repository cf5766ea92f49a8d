/**
 * Token buckets per publisher (a token's subject, the publish key, or an IP address): `rate`
 * tokens per second up to `burst`. The map is bounded: past `maxKeys`, the least recently used
 * bucket is forgotten (a forgotten publisher starts again with a full bucket, never less).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly maxKeys = 10_000,
  ) {
    if (!(rate > 0) || !Number.isFinite(rate))
      throw new RangeError(
        `Expected \`publishRatePerSecond\` to be a positive number, got \`${rate}\``,
      )
    if (!Number.isSafeInteger(burst) || burst < 1)
      throw new RangeError(`Expected \`publishBurst\` to be a positive integer, got \`${burst}\``)
  }

  /** Takes one token for `key`: `0` when allowed, else the seconds to wait (for `Retry-After`). */
  take(key: string, now = Date.now()): number {
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now }
    this.buckets.delete(key)
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate)
    bucket.at = now
    this.buckets.set(key, bucket)
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value
      if (oldest !== undefined) this.buckets.delete(oldest)
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return 0
    }
    return Math.max(1, Math.ceil((1 - bucket.tokens) / this.rate))
  }
}
