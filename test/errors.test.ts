import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { ErrorCodes, ErrorStatus, SseError, isSseError, type ErrorCode } from '../src/errors.js'

describe('error codes', () => {
  it('docs/errors.md lists exactly the codes of ErrorCodes', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
    const documented = [...doc.matchAll(/^\| `(ERR_SSE_[A-Z_]+)`/gm)].map((m) => m[1])
    expect(documented.sort()).toEqual(Object.values(ErrorCodes).sort())
  })

  it('docs/errors.md gives each code the HTTP status of ErrorStatus (— for none)', () => {
    const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
    const rows = [...doc.matchAll(/^\| `(ERR_SSE_[A-Z_]+)`\s*\|\s*([^|]+?)\s*\|/gm)]
    const documented = Object.fromEntries(rows.map((m) => [m[1], m[2]]))
    const expected = Object.fromEntries(
      Object.entries(ErrorStatus).map(([code, status]) => [
        code,
        status === null ? '—' : String(status),
      ]),
    )
    expect(documented).toEqual(expected)
  })

  it('takes the status from the code, never from the throw site', () => {
    for (const [code, status] of Object.entries(ErrorStatus)) {
      expect(new SseError(code as ErrorCode, 'x').status).toBe(status ?? 500)
    }
  })

  it('brands errors so that isSseError works across copies of the package', () => {
    const error = new SseError(ErrorCodes.BAD_REQUEST, 'x', { cause: new Error('root') })
    expect(isSseError(error)).toBe(true)
    expect(isSseError(new Error('x'))).toBe(false)
    expect(isSseError({ code: 'ERR_SSE_BAD_REQUEST' })).toBe(false)
    expect(error).toMatchObject({ name: 'SseError', code: 'ERR_SSE_BAD_REQUEST', status: 400 })
    expect((error.cause as Error).message).toBe('root')
  })
})
