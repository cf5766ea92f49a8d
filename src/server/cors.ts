/**
 * CORS: which origins may read the API's answers, and the preflight answer. Configured with
 * `corsOrigins` (`'*'`, a list of exact origins, or `null` for none).
 */

/**
 * True when `value` is an origin: `scheme://host[:port]`, nothing else. A path or a trailing slash
 * never matches a browser's `Origin` header, so such an entry is a configuration mistake.
 */
export function isOrigin(value: string): boolean {
  return /^https?:\/\/[^/\s]+$/.test(value)
}

/** The CORS headers of an answer to a request from `origin`. */
export function corsHeaders(
  origins: '*' | readonly string[] | null,
  origin: string | undefined,
): Record<string, string> {
  if (origins === null || origin === undefined) return {}
  if (origins === '*') return { 'access-control-allow-origin': '*' }
  if (!origins.includes(origin)) return {}
  return {
    'access-control-allow-origin': origin,
    'access-control-allow-credentials': 'true',
    vary: 'Origin',
  }
}

/** What a preflight (`OPTIONS`) adds for an allowed origin: the methods and headers it may use. */
export function preflightHeaders(cors: Readonly<Record<string, string>>): Record<string, string> {
  if (cors['access-control-allow-origin'] === undefined) return {}
  return {
    'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
    'access-control-allow-headers': 'Authorization, Content-Type, Last-Event-ID, Idempotency-Key',
    'access-control-max-age': '600',
  }
}
