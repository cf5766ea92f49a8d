import { describe, expect, it } from 'vitest'
import { closest, didYouMean, editDistance } from '../src/closest.js'

describe('editDistance', () => {
  it.each([
    ['', '', 0],
    ['abc', '', 3],
    ['', 'abc', 3],
    ['port', 'port', 0],
    ['prot', 'port', 1], // adjacent swap: one edit
    ['evnt', 'event', 1],
    ['kitten', 'sitting', 3],
    ['SSEHUB_REDSI_URL', 'SSEHUB_REDIS_URL', 1],
  ])('%j -> %j is %i', (a, b, distance) => {
    expect(editDistance(a, b)).toBe(distance)
    expect(editDistance(b, a)).toBe(distance)
  })
})

describe('closest', () => {
  const flags = ['port', 'host', 'redis', 'redis-prefix', 'publish-key']

  it('names the nearest candidate, case-insensitively', () => {
    expect(closest('prot', flags)).toBe('port')
    expect(closest('HOTS', flags)).toBe('host')
    expect(closest('redis-prefx', flags)).toBe('redis-prefix')
  })

  it('names a candidate a truncated name starts', () => {
    expect(closest('SSEHUB_REDIS', ['SSEHUB_REDIS_PREFIX', 'SSEHUB_REDIS_URL'])).toBe(
      'SSEHUB_REDIS_URL',
    )
  })

  it('names none when nothing is close', () => {
    expect(closest('verbose', flags)).toBeUndefined()
    expect(closest('x', [])).toBeUndefined()
  })

  it('words the hint', () => {
    expect(didYouMean('prot', flags, (flag) => `--${flag}`)).toBe('; did you mean --port?')
    expect(didYouMean('verbose', flags)).toBe('')
  })
})
