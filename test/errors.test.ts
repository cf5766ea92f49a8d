import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ErrorCodes, SseError, isSseError } from '../src/errors.js'

describe('error codes', () => {
  it('docs/errors.md lists exactly the codes of ErrorCodes', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
    const documented = [...doc.matchAll(/^\| `(ERR_SSE_[A-Z_]+)`/gm)].map((m) => m[1])
    expect(documented.sort()).toEqual(Object.values(ErrorCodes).sort())
  })

  it('brands errors so that isSseError works across copies of the package', () => {
    const error = new SseError(ErrorCodes.BAD_REQUEST, 'x', {
      status: 400,
      cause: new Error('root'),
    })
    expect(isSseError(error)).toBe(true)
    expect(isSseError(new Error('x'))).toBe(false)
    expect(isSseError({ code: 'ERR_SSE_BAD_REQUEST' })).toBe(false)
    expect(error).toMatchObject({ name: 'SseError', code: 'ERR_SSE_BAD_REQUEST', status: 400 })
    expect((error.cause as Error).message).toBe('root')
  })
})
