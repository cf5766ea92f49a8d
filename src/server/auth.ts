import { createPublicKey, type KeyObject } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose'
import { ErrorCodes, SseError } from '../errors.js'

/** JWT options of the hub server. Setting any of the three key sources turns JWT auth on. */
export interface JwtOptions {
  /** HS256 shared secret (`--jwt-secret`, env `SSEHUB_JWT_SECRET`). @default null */
  readonly jwtSecret?: string | null
  /** RS256/ES256 public key, PEM text (`--jwt-public-key FILE`). @default null */
  readonly jwtPublicKey?: string | null
  /** A JWKS URL for RS256/ES256 keys (`--jwt-jwks-url`). @default null */
  readonly jwtJwksUrl?: string | null
  /** Cookie that may carry the token, for browsers' EventSource. @default 'ssehub_token' */
  readonly tokenCookie?: string
  /** Accept a `token` query parameter (URLs get logged: prefer short-lived tokens). @default true */
  readonly allowQueryToken?: boolean
  /** Topic selectors (`name` or `prefix/*`) that need a subscriber token. @default [] */
  readonly privateTopics?: readonly string[]
}

/** Every default of {@link JwtOptions}, written once: JWT auth is off until a key is given. */
export const JWT_DEFAULTS: {
  readonly [K in keyof JwtOptions]-?: Exclude<JwtOptions[K], undefined>
} = Object.freeze({
  jwtSecret: null,
  jwtPublicKey: null,
  jwtJwksUrl: null,
  tokenCookie: 'ssehub_token',
  allowQueryToken: true,
  privateTopics: [],
})

/** The `ssehub` claim of a token, plus the parts of the payload the hub uses. */
export interface TokenGrant {
  /** The token's subject: it becomes the connection's client id. */
  readonly sub: string | undefined
  /** Topic selectors it may publish to (`*` also allows client ids and `all`). */
  readonly publish: readonly string[]
  /** Topic selectors it may subscribe to. */
  readonly subscribe: readonly string[]
  /** Relay topic selectors (`relay/<id>`, `relay/*`) whose generations it may stop. */
  readonly abort: readonly string[]
  /** Expiry, ms since the epoch. */
  readonly expiresAt: number | undefined
  /** Issued at, ms since the epoch. */
  readonly issuedAt: number | undefined
}

/** True when `topic` matches `selector`: an exact name, `prefix/*` (any depth below) or `*`. */
export function matchesSelector(selector: string, topic: string): boolean {
  if (selector === '*') return true
  if (selector.endsWith('/*')) return topic.startsWith(selector.slice(0, -1))
  return selector === topic
}

function selectors(value: unknown): string[] {
  return Array.isArray(value)
    ? value.filter((item): item is string => typeof item === 'string')
    : []
}

function unauthorized(message: string): SseError {
  return new SseError(ErrorCodes.UNAUTHORIZED, message)
}

/** Reads one cookie from a `Cookie` header without a parser dependency (names are plain tokens). */
function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq !== -1 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim())
      } catch {
        return undefined
      }
    }
  }
  return undefined
}

/**
 * Verifies tokens and answers the hub server's questions: may this request subscribe to that
 * topic, as which client id; may it publish there. Revocations are kept per client id for
 * `revocationTtlMs`: a token issued before a revocation is refused.
 */
export class Authenticator {
  /** True when a JWT key source is configured. */
  readonly enabled: boolean
  private readonly key: Uint8Array | KeyObject | ReturnType<typeof createRemoteJWKSet> | null
  private readonly algorithms: string[]
  private readonly cookie: string
  private readonly queryToken: boolean
  private readonly privateTopics: readonly string[]
  private readonly revoked = new Map<string, number>()
  private readonly revocationTtlMs: number
  private readonly maxRevocations: number

  constructor(
    options: JwtOptions,
    limits: { revocationTtlMs?: number; maxRevocations?: number } = {},
  ) {
    const sources = [options.jwtSecret, options.jwtPublicKey, options.jwtJwksUrl].filter(
      (s) => s !== undefined && s !== null,
    )
    if (sources.length > 1) {
      throw new RangeError('Give one of `jwtSecret`, `jwtPublicKey` or `jwtJwksUrl`, not several')
    }
    if (options.jwtSecret !== undefined && options.jwtSecret !== null) {
      // RFC 7518: an HS256 key must be at least as long as the hash (32 bytes).
      if (Buffer.byteLength(options.jwtSecret) < 32) {
        throw new RangeError(
          'Expected `jwtSecret` to be at least 32 bytes long (HS256 needs a 256-bit key)',
        )
      }
      this.key = new TextEncoder().encode(options.jwtSecret)
      this.algorithms = ['HS256']
    } else if (options.jwtPublicKey !== undefined && options.jwtPublicKey !== null) {
      this.key = createPublicKey(options.jwtPublicKey)
      this.algorithms = ['RS256', 'ES256']
    } else if (options.jwtJwksUrl !== undefined && options.jwtJwksUrl !== null) {
      this.key = createRemoteJWKSet(new URL(options.jwtJwksUrl))
      this.algorithms = ['RS256', 'ES256']
    } else {
      this.key = null
      this.algorithms = []
    }
    this.enabled = this.key !== null
    this.cookie = options.tokenCookie ?? JWT_DEFAULTS.tokenCookie
    this.queryToken = options.allowQueryToken ?? JWT_DEFAULTS.allowQueryToken
    this.privateTopics = options.privateTopics ?? JWT_DEFAULTS.privateTopics
    this.revocationTtlMs = limits.revocationTtlMs ?? 86_400_000
    this.maxRevocations = limits.maxRevocations ?? 100_000
  }

  /** The token of a request: `Authorization: Bearer`, then the cookie, then `?token=`. */
  tokenOf(req: Pick<IncomingMessage, 'headers'>, query: URLSearchParams): string | undefined {
    const header = req.headers.authorization
    const bearer = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (bearer !== null) return bearer[1]
    const cookie = readCookie(req.headers.cookie, this.cookie)
    if (cookie !== undefined && cookie !== '') return cookie
    if (this.queryToken) return query.get('token') ?? undefined
    return undefined
  }

  /**
   * Verifies `token` (signature, `exp`, `nbf`, revocation).
   * @throws {SseError} 401 saying what is wrong with it.
   */
  async verify(token: string): Promise<TokenGrant> {
    if (this.key === null) throw unauthorized('JWT auth is not configured on this hub.')
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(token, this.key as Parameters<typeof jwtVerify>[1], {
        algorithms: this.algorithms,
      }))
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired)
        throw unauthorized('The token has expired; get a fresh one and reconnect.')
      if (error instanceof joseErrors.JWSSignatureVerificationFailed) {
        throw unauthorized('The token signature is invalid; it was not issued for this hub.')
      }
      throw unauthorized(`The token was refused: ${(error as Error).message}.`)
    }
    const claim = (payload.ssehub ?? {}) as {
      publish?: unknown
      subscribe?: unknown
      abort?: unknown
    }
    const grant: TokenGrant = {
      sub: typeof payload.sub === 'string' ? payload.sub : undefined,
      publish: selectors(claim.publish),
      subscribe: selectors(claim.subscribe),
      abort: selectors(claim.abort),
      expiresAt: payload.exp === undefined ? undefined : payload.exp * 1000,
      issuedAt: payload.iat === undefined ? undefined : payload.iat * 1000,
    }
    if (grant.sub !== undefined) {
      const revokedAt = this.revoked.get(grant.sub)
      if (
        revokedAt !== undefined &&
        Date.now() - revokedAt < this.revocationTtlMs &&
        (grant.issuedAt ?? 0) <= revokedAt
      ) {
        throw unauthorized(
          `The tokens of ${JSON.stringify(grant.sub)} were revoked; sign in again.`,
        )
      }
    }
    return grant
  }

  /** True when `topic` needs a subscriber token. */
  isPrivate(topic: string): boolean {
    return this.privateTopics.some((selector) => matchesSelector(selector, topic))
  }

  /**
   * Resolves what a subscription may be: the client id (the token's `sub` when a token is given),
   * after checking every topic and the requested client id.
   * @throws {SseError} 401 when a token is needed and missing, 403 when it does not allow the request.
   */
  async authorizeSubscribe(
    token: string | undefined,
    topics: readonly string[],
    clientId: string | undefined,
  ): Promise<{ clientId: string | undefined; expiresAt: number | undefined }> {
    if (!this.enabled) return { clientId, expiresAt: undefined }
    const needsToken = clientId !== undefined || topics.some((topic) => this.isPrivate(topic))
    if (token === undefined) {
      if (needsToken) {
        throw unauthorized(
          clientId !== undefined
            ? 'Subscribing as a client id needs a token whose `sub` is that id (Authorization header, cookie or `token` parameter).'
            : `Topic ${JSON.stringify(topics.find((topic) => this.isPrivate(topic)))} is private: send a subscriber token.`,
        )
      }
      return { clientId: undefined, expiresAt: undefined }
    }
    const grant = await this.verify(token)
    if (clientId !== undefined && clientId !== grant.sub) {
      throw new SseError(
        ErrorCodes.FORBIDDEN,
        `The token is for client ${JSON.stringify(grant.sub ?? null)}, not ${JSON.stringify(clientId)}; leave clientId out to use the token's.`,
      )
    }
    for (const topic of topics) {
      if (
        this.isPrivate(topic) &&
        !grant.subscribe.some((selector) => matchesSelector(selector, topic))
      ) {
        throw new SseError(
          ErrorCodes.FORBIDDEN,
          `The token does not allow subscribing to ${JSON.stringify(topic)} (its subscribe selectors: ${JSON.stringify(grant.subscribe)}).`,
        )
      }
    }
    return { clientId: grant.sub, expiresAt: grant.expiresAt }
  }

  /**
   * Checks a publisher token against the targets of a publish.
   * @throws {SseError} 403 naming the first target it does not cover.
   */
  authorizePublish(
    grant: TokenGrant,
    target: { topics: readonly string[]; clientId: boolean; all: boolean },
  ): void {
    const everything = grant.publish.includes('*')
    const forbidden = (what: string): SseError =>
      new SseError(
        ErrorCodes.FORBIDDEN,
        `The token does not allow publishing to ${what} (its publish selectors: ${JSON.stringify(grant.publish)}).`,
      )
    if ((target.clientId || target.all) && !everything)
      throw forbidden(target.all ? 'all' : 'a client id')
    for (const topic of target.topics) {
      if (!grant.publish.some((selector) => matchesSelector(selector, topic)))
        throw forbidden(JSON.stringify(topic))
    }
  }

  /** Records that tokens of `clientId` issued until `at` are revoked. Bounded in count and age. */
  revoke(clientId: string, at: number): void {
    this.revoked.delete(clientId)
    this.revoked.set(clientId, at)
    const oldest = Date.now() - this.revocationTtlMs
    for (const [id, when] of this.revoked) {
      if (this.revoked.size <= this.maxRevocations && when >= oldest) break
      this.revoked.delete(id)
    }
  }
}
