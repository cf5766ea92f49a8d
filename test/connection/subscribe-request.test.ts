import { describe, expect, it } from 'vitest'
import {
  fetchStreamRequest,
  lastEventIdOf,
  queryOf,
  subscribeQuery,
  withLastEventId,
} from '../../src/connection/subscribe-request.js'

describe('subscribeQuery', () => {
  it('reads every topic, the client id and the query id', () => {
    expect(subscribeQuery(queryOf('/events?topic=a&topic=b&clientId=u1&lastEventId=e-3'))).toEqual({
      topics: ['a', 'b'],
      clientId: 'u1',
      lastEventId: 'e-3',
    })
  })

  it('takes last_event_id too, and leaves absent fields out (not undefined)', () => {
    const request = subscribeQuery(queryOf('http://host/events?last_event_id=e-1'))
    expect(request).toEqual({ topics: [], lastEventId: 'e-1' })
    expect('clientId' in request).toBe(false)
    expect(subscribeQuery(queryOf(undefined))).toEqual({ topics: [] })
  })
})

describe('lastEventIdOf', () => {
  it('lets a non-empty header win over the query', () => {
    expect(lastEventIdOf('e-9', 'e-1')).toBe('e-9')
  })

  it('counts an empty, missing or repeated header as absent', () => {
    expect(lastEventIdOf('', 'e-1')).toBe('e-1')
    expect(lastEventIdOf('', undefined)).toBeUndefined()
    expect(lastEventIdOf(undefined, 'e-1')).toBe('e-1')
    expect(lastEventIdOf(null, undefined)).toBeUndefined()
    expect(lastEventIdOf(['e-8', 'e-9'], 'e-1')).toBe('e-1')
  })
})

describe('withLastEventId', () => {
  it('returns the same object when the header changes nothing, a copy with the id otherwise', () => {
    const params = { topics: ['a'], lastEventId: 'e-1', expiresAt: 5 }
    expect(withLastEventId(params, undefined)).toBe(params)
    expect(withLastEventId(params, '')).toBe(params)
    expect(withLastEventId(params, 'e-2')).toEqual({
      topics: ['a'],
      lastEventId: 'e-2',
      expiresAt: 5,
    })
  })
})

describe('fetchStreamRequest', () => {
  it('reads the query unless params are given, and applies the header to either', () => {
    const request = new Request('http://x/events?topic=a&lastEventId=e-1', {
      headers: { 'last-event-id': 'e-2' },
    })
    expect(fetchStreamRequest(request)).toEqual({ topics: ['a'], lastEventId: 'e-2' })
    expect(fetchStreamRequest(request, { topics: ['b'], expiresAt: 9 })).toEqual({
      topics: ['b'],
      lastEventId: 'e-2',
      expiresAt: 9,
    })
  })
})
