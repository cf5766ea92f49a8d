import { describe, expect, it } from 'vitest'
import {
  encodeCommentText,
  encodeEvent,
  encodeEventText,
  WireFieldError,
} from '../../src/wire/encode.js'

describe('encodeEventText', () => {
  it('writes event, id, retry then data lines, ending with a blank line', () => {
    expect(encodeEventText({ event: 'e', id: '7', retry: 100, data: 'x' })).toBe(
      'event: e\nid: 7\nretry: 100\ndata: x\n\n',
    )
    expect(encodeEventText({ data: '' })).toBe('data: \n\n')
    expect(encodeEventText({ id: 'only' })).toBe('id: only\n\n')
    expect(encodeEventText({})).toBe('')
  })

  it('splits data on CRLF, LF and CR into one data: line each', () => {
    expect(encodeEventText({ data: 'a\r\nb\nc\rd\n' })).toBe(
      'data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n',
    )
    expect(encodeEventText({ data: '\n\ndata: x' })).toBe('data: \ndata: \ndata: data: x\n\n')
  })

  it('rejects CR/LF in event names and ids, NUL in ids, and bad retry values', () => {
    for (const event of ['a\nb', 'a\rb', 'a\r\n'])
      expect(() => encodeEventText({ event, data: 'x' })).toThrow(WireFieldError)
    for (const id of ['a\nb', 'a\rb', 'a\0b'])
      expect(() => encodeEventText({ id, data: 'x' })).toThrow(/id/)
    for (const retry of [-1, 1.5, NaN])
      expect(() => encodeEventText({ retry, data: 'x' })).toThrow(/retry/)
    try {
      encodeEventText({ event: 'a\nb' })
    } catch (error) {
      expect(error).toMatchObject({ code: 'ERR_SSE_INVALID_FIELD', field: 'event' })
    }
  })

  it('encodes UTF-8 bytes', () => {
    expect([...encodeEvent({ data: 'é' })]).toEqual([...Buffer.from('data: é\n\n')])
  })
})

describe('encodeCommentText', () => {
  it('keeps every line of a comment a comment', () => {
    expect(encodeCommentText()).toBe(':\n\n')
    expect(encodeCommentText('hi')).toBe(': hi\n\n')
    expect(encodeCommentText('a\ndata: x\r\nb')).toBe(': a\n: data: x\n: b\n\n')
  })
})
