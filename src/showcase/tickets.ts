/**
 * Dashboard tickets: how the dashboard page opens its feed without putting the publish key in a
 * URL. The page POSTs the key once per connection attempt (`Authorization: Bearer`, never a URL)
 * and gets a random ticket that opens one feed: single-use, short-lived, so a URL that a proxy
 * or a browser history keeps holds a ticket already spent.
 */
import { randomBytes } from 'node:crypto'

/** Every default of {@link TicketStoreOptions}, written once (docs/web.md and docs/security.md quote them). */
export const TICKET_DEFAULTS = Object.freeze({
  /** A ticket not redeemed within this many ms is refused. */
  ttlMs: 30_000,
  /** Unspent tickets held at most: minting one more forgets the oldest. */
  maxTickets: 1_000,
} as const)

/** Options of {@link createTicketStore}. */
export interface TicketStoreOptions {
  /** @default 30_000 */
  readonly ttlMs?: number
  /** @default 1_000 */
  readonly maxTickets?: number
  /** The clock, in ms. @default Date.now */
  readonly now?: () => number
}

/** Single-use, expiring tickets in a bounded store. */
export interface TicketStore {
  /** A new ticket: 32 random bytes, base64url (43 characters). */
  issue(): string
  /** True, once, for a ticket issued here, unspent, not expired and not forgotten. */
  redeem(ticket: string): boolean
  /** Unspent tickets held now (expired ones may linger until the next issue or redeem). */
  readonly size: number
}

/**
 * Creates a ticket store. No timer: every ticket lives `ttlMs`, so the Map's insertion order is
 * also expiry order, and expired tickets are dropped from its front on each call (amortised
 * O(1)). When `maxTickets` unspent tickets are held, a new one forgets the oldest: only operators
 * can mint tickets, and a runaway script of theirs costs memory no more than the bound.
 */
export function createTicketStore(options: TicketStoreOptions = {}): TicketStore {
  const ttlMs = options.ttlMs ?? TICKET_DEFAULTS.ttlMs
  const maxTickets = options.maxTickets ?? TICKET_DEFAULTS.maxTickets
  // Read Date.now at each call, not once: a test may fake the clock after the store exists.
  const now = options.now ?? ((): number => Date.now())
  const tickets = new Map<string, number>()

  const sweep = (at: number): void => {
    for (const [ticket, expiresAt] of tickets) {
      if (expiresAt > at) return
      tickets.delete(ticket)
    }
  }

  return {
    issue() {
      const at = now()
      sweep(at)
      while (tickets.size >= maxTickets) tickets.delete(tickets.keys().next().value!)
      const ticket = randomBytes(32).toString('base64url')
      tickets.set(ticket, at + ttlMs)
      return ticket
    },
    redeem(ticket) {
      const at = now()
      sweep(at)
      const expiresAt = tickets.get(ticket)
      if (expiresAt === undefined) return false
      tickets.delete(ticket)
      return expiresAt > at
    },
    get size() {
      return tickets.size
    },
  }
}
