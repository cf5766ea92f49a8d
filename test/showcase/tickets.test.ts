import { describe, expect, it } from 'vitest'
import { createTicketStore, TICKET_DEFAULTS } from '../../src/showcase/tickets.js'

describe('dashboard tickets', () => {
  it('redeems a ticket once, within its lifetime', () => {
    let now = 1_000
    const store = createTicketStore({ ttlMs: 100, now: () => now })
    const a = store.issue()
    const b = store.issue()
    expect(a).toMatch(/^[\w-]{43}$/)
    expect(a).not.toBe(b)
    expect(store.redeem(a)).toBe(true)
    expect(store.redeem(a)).toBe(false)
    expect(store.redeem('not-issued')).toBe(false)
    now += 100
    expect(store.redeem(b)).toBe(false)
    expect(store.size).toBe(0)
  })

  it('holds at most maxTickets: one more forgets the oldest', () => {
    const store = createTicketStore({ maxTickets: 3, now: () => 0 })
    const [first, ...rest] = [store.issue(), store.issue(), store.issue(), store.issue()]
    expect(store.size).toBe(3)
    expect(store.redeem(first)).toBe(false)
    expect(rest.map((t) => store.redeem(t))).toEqual([true, true, true])
  })

  it('drops expired tickets as it goes, without a timer', () => {
    let now = 0
    const store = createTicketStore({ ttlMs: 10, now: () => now })
    for (let i = 0; i < 50; i++) store.issue()
    now = 10
    store.issue()
    expect(store.size).toBe(1)
  })

  it('defaults to 30 s and 1,000 tickets, as the docs say', () => {
    expect(TICKET_DEFAULTS).toEqual({ ttlMs: 30_000, maxTickets: 1_000 })
    let now = 0
    const store = createTicketStore({ now: () => now })
    const tickets = Array.from({ length: 1_001 }, () => store.issue())
    expect(store.size).toBe(1_000)
    expect(store.redeem(tickets[0]!)).toBe(false)
    now = 29_999
    expect(store.redeem(tickets[1]!)).toBe(true)
    now = 30_000
    expect(store.redeem(tickets[2]!)).toBe(false)
  })
})
