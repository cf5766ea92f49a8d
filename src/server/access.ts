/**
 * Who may do what: the publish key, JWT grants, and the two rules every route uses — the
 * publisher rule (`POST /publish`, `/publish/batch`) and the one operator rule (close, revoke,
 * list clients, the dashboard feed, the demos). Rate limits per publisher live here too, since
 * they are keyed by who publishes: they apply to token holders (by subject) and to anonymous
 * publishers on a public address (by IP); the publish key holder and the anonymous loopback mode
 * are the application's own backend, never throttled.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { ErrorCodes, SseError } from '../errors.js'
import type { PublishInput } from '../hub/types.js'
import { Authenticator, matchesSelector, type JwtOptions, type TokenGrant } from './auth.js'
import { RateLimiter } from './rate-limit.js'

/** Who is making a request. */
export type Principal =
  | { readonly kind: 'key' }
  | { readonly kind: 'token'; readonly grant: TokenGrant }
  | { readonly kind: 'anonymous' }

const ANONYMOUS: Principal = { kind: 'anonymous' }
const KEY: Principal = { kind: 'key' }

/** What access rules read of a request. */
export interface AccessRequest {
  readonly headers: IncomingHttpHeaders
  readonly remoteAddress: string | undefined
  /** The query string (tokens may travel in `token`). */
  query(): URLSearchParams
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** The access rules of one server. */
export class Access {
  /** With no key and no JWT, the hub is open (the listen() guard keeps that to loopback). */
  readonly open: boolean
  readonly auth: Authenticator
  private readonly keyDigest: Buffer | null
  private readonly limiter: RateLimiter | null
  /** Whether anonymous publishers are rate-limited (by IP). */
  private readonly limitsAnonymous: boolean
  private readonly unauthorized: SseError

  /**
   * @param rate.anonymousIsPublic `allowAnonymousPublish`: anonymous publishers may come from a
   * public address, so they are rate-limited. Without it an open hub only listens on loopback
   * (the listen() guard): its anonymous publishers are the app's own backend, not limited.
   */
  constructor(
    publishKey: string | null,
    jwt: JwtOptions,
    rate: { perSecond: number | null; burst: number | null; anonymousIsPublic: boolean },
  ) {
    this.keyDigest = publishKey === null ? null : sha256(publishKey)
    this.auth = new Authenticator(jwt)
    this.open = this.keyDigest === null && !this.auth.enabled
    this.limiter =
      rate.perSecond === null
        ? null
        : new RateLimiter(rate.perSecond, rate.burst ?? 2 * rate.perSecond)
    this.limitsAnonymous = rate.anonymousIsPublic
    this.unauthorized = new SseError(
      ErrorCodes.UNAUTHORIZED,
      this.auth.enabled
        ? 'This endpoint needs a token or the publish key: send `Authorization: Bearer <token or key>`.'
        : 'This endpoint needs the publish key: send `Authorization: Bearer <key>`.',
    )
  }

  /** True when the request carries the publish key. */
  isPublishKey(headers: IncomingHttpHeaders): boolean {
    if (this.keyDigest === null) return false
    const match = /^Bearer\s+(.+)$/i.exec(headers.authorization ?? '')
    // Compare digests of equal length in constant time: no timing leak of the key or its length.
    return match !== null && timingSafeEqual(sha256(match[1]!.trim()), this.keyDigest)
  }

  /**
   * The principal when it is known without verifying a signature (the key, or anyone on an open
   * hub), else `null`: the synchronous publish path uses it, tokens take the asynchronous one.
   */
  quickPublisher(headers: IncomingHttpHeaders): Principal | null {
    if (this.open) return ANONYMOUS
    return this.isPublishKey(headers) ? KEY : null
  }

  /** The publish key, a verified token (401 when bad), or nobody. */
  async principalOf(req: AccessRequest): Promise<Principal> {
    if (this.isPublishKey(req.headers)) return KEY
    if (this.auth.enabled) {
      const token = this.auth.tokenOf(req, req.query())
      if (token !== undefined) return { kind: 'token', grant: await this.auth.verify(token) }
    }
    return ANONYMOUS
  }

  /** The publisher rule: 401 unless the hub is open or the request has the key or a valid token. */
  async publisher(req: AccessRequest): Promise<Principal> {
    if (this.open) return ANONYMOUS
    const principal = await this.principalOf(req)
    if (principal.kind === 'anonymous') throw this.unauthorized
    return principal
  }

  /**
   * The one operator rule (close, revoke, list clients, the dashboard feed, the demos): an open
   * hub, the key, or a token that may publish `*`; else 401 (nobody) or 403 (a lesser token).
   */
  async operator(req: AccessRequest, where: { readonly message?: string } = {}): Promise<void> {
    if (this.open) return
    const principal = await this.principalOf(req)
    if (principal.kind === 'key') return
    if (principal.kind === 'token') {
      if (principal.grant.publish.includes('*')) return
      throw new SseError(
        ErrorCodes.FORBIDDEN,
        'This endpoint needs the publish key or a token that may publish `*`.',
      )
    }
    throw where.message === undefined
      ? this.unauthorized
      : new SseError(ErrorCodes.UNAUTHORIZED, where.message)
  }

  /**
   * The rule of `POST /relays/<id>/abort`, a right of its own (a viewer may not stop a
   * generation for everyone): an open hub, the key, a token that may publish `*`, or a token whose
   * `abort` selectors match `topic`; else 401 (nobody) or 403.
   */
  async aborter(req: AccessRequest, topic: string): Promise<void> {
    if (this.open) return
    const principal = await this.principalOf(req)
    if (principal.kind === 'key') return
    if (principal.kind === 'anonymous') throw this.unauthorized
    const { grant } = principal
    if (grant.publish.includes('*') || grant.abort.some((s) => matchesSelector(s, topic))) return
    throw new SseError(
      ErrorCodes.FORBIDDEN,
      `Stopping ${JSON.stringify(topic)} needs the publish key or a token whose \`ssehub.abort\` selectors match it (its abort selectors: ${JSON.stringify(grant.abort)}).`,
    )
  }

  /** 403 unless a token's grant allows the targets of `input`. */
  authorizeInput(principal: Principal, input: PublishInput): void {
    if (principal.kind !== 'token') return
    const topics =
      input.topic === undefined ? [] : typeof input.topic === 'string' ? [input.topic] : input.topic
    this.auth.authorizePublish(principal.grant, {
      topics: Array.isArray(topics) ? topics.map(String) : [String(topics)],
      clientId: input.clientId !== undefined,
      all: input.all === true,
    })
  }

  /** True when `principal`'s publishes are rate-limited: a token, or anonymous on a public hub. */
  private limits(principal: Principal): boolean {
    return principal.kind === 'token' || (principal.kind === 'anonymous' && this.limitsAnonymous)
  }

  /** Largest batch a rate-limited publisher may send at once (`null`: no limit). */
  batchLimit(principal: Principal): number | null {
    return this.limiter === null || !this.limits(principal) ? null : this.limiter.burst
  }

  /** Seconds this publisher must wait before publishing `cost` events (0: now). */
  publishWait(principal: Principal, remoteAddress: string | undefined, cost = 1): number {
    if (this.limiter === null || !this.limits(principal)) return 0
    return this.limiter.take(
      principal.kind === 'token' ? `sub:${principal.grant.sub ?? ''}` : `ip:${remoteAddress}`,
      Date.now(),
      cost,
    )
  }
}
