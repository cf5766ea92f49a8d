/**
 * Token buckets per publisher (a token's subject, the publish key, or an IP address): `rate`
 * tokens per second up to `burst`. The map is bounded: past `maxKeys`, the least recently used
 * bucket is forgotten (a forgotten publisher starts again with a full bucket, never less).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    private readonly rate: number,
    /** Most tokens a bucket holds: the largest batch that can pass. */
    readonly burst: number,
    private readonly maxKeys = 10_000,
  ) {
    if (!(rate > 0) || !Number.isFinite(rate))
      throw new RangeError(
        `Expected \`publishRatePerSecond\` to be a positive number, got \`${rate}\``,
      )
    if (!Number.isSafeInteger(burst) || burst < 1)
      throw new RangeError(`Expected \`publishBurst\` to be a positive integer, got \`${burst}\``)
  }

  /**
   * Takes `cost` tokens (a batch takes one per event) for `key`: `0` when allowed, else the seconds
   * to wait (for `Retry-After`). A cost above the burst can never pass: callers refuse it first.
   */
  take(key: string, now = Date.now(), cost = 1): number {
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now }
    this.buckets.delete(key)
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.rate)
    bucket.at = now
    this.buckets.set(key, bucket)
    if (this.buckets.size > this.maxKeys) {
      const oldest = this.buckets.keys().next().value
      if (oldest !== undefined) this.buckets.delete(oldest)
    }
    if (bucket.tokens >= cost) {
      bucket.tokens -= cost
      return 0
    }
    return Math.max(1, Math.ceil((cost - bucket.tokens) / this.rate))
  }
}
