import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'
import { isSseError } from '../../src/errors.js'
import { createParser, type ParsedEvent } from '../../src/wire/index.js'
import { vectors, type Vector } from './vectors.js'
import { bytewise, charwise, ev, parseChunks, splitBytes, type Parsed } from './parse-helpers.js'

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..')

function expectVector(parsed: Parsed, vector: Vector): void {
  expect(parsed.events).toEqual(vector.events)
  expect(parsed.retries).toEqual(vector.retries ?? [])
  expect(parsed.comments).toEqual(vector.comments ?? [])
  expect(parsed.errors).toEqual([])
  const lastEventId = vector.lastEventId ?? vector.events.at(-1)?.lastEventId ?? ''
  expect(parsed.lastEventId).toBe(lastEventId)
}

describe('createParser: the event stream interpretation rules', () => {
  for (const vector of vectors) {
    describe(vector.name, () => {
      it('fed whole, as text', () => {
        expectVector(parseChunks([vector.stream]), vector)
      })
      it('fed whole, as UTF-8 bytes', () => {
        expectVector(parseChunks([new TextEncoder().encode(vector.stream)]), vector)
      })
      it('fed byte by byte', () => {
        expectVector(parseChunks(bytewise(vector.stream)), vector)
      })
      it('fed character by character', () => {
        expectVector(parseChunks(charwise(vector.stream)), vector)
      })
    })
  }
})

describe('createParser: chunk boundaries', () => {
  it('joins a CR at the end of one chunk and an LF at the start of the next into one line end', () => {
    const parsed = parseChunks(['data: a\r', '\ndata: b\r', '\n\r', '\n'])
    expect(parsed.events).toEqual([ev('a\nb')])
  })

  it('dispatches on a CR at the end of a chunk without waiting for the next chunk', () => {
    const events: ParsedEvent[] = []
    const parser = createParser({ onEvent: (event) => events.push(event) })
    parser.feed('data: now\r\r')
    expect(events).toEqual([ev('now')])
    // The LF that may follow belongs to the CR already seen: it is not another blank line.
    parser.feed('\ndata: next\n\n')
    expect(events).toEqual([ev('now'), ev('next')])
  })

  it('an LF after a CR that ended a chunk is skipped once, even after empty chunks', () => {
    const parsed = parseChunks(['data: a\r', '', new Uint8Array(0), '\n', '\n'])
    expect(parsed.events).toEqual([ev('a')])
  })

  it('drops the BOM of the stream even when its bytes arrive one by one, and only once', () => {
    const parsed = parseChunks([
      Uint8Array.of(0xef),
      Uint8Array.of(0xbb),
      Uint8Array.of(0xbf),
      Uint8Array.of(0xef, 0xbb, 0xbf),
      'data: a\n\ndata: b\n\n',
    ])
    // The second BOM is part of the first field name, which is then unknown.
    expect(parsed.events).toEqual([ev('b')])
  })

  it('keeps a BOM that is not the first character of the stream', () => {
    expect(parseChunks(['', 'd', '\uFEFFata: a\n\ndata: b\n\n']).events).toEqual([ev('b')])
  })

  it('decodes multibyte characters split across chunks (eventsource-parser fixtures)', () => {
    const fixture = JSON.parse(
      readFileSync(
        resolve(repoRoot, 'test/wire/fixtures/eventsource-parser-multibyte.json'),
        'utf8',
      ),
    ) as { MULTIBYTE_LINES: string[]; MULTIBYTE_EMOJIS: string[] }
    const lines = fixture.MULTIBYTE_LINES
    const emojis = fixture.MULTIBYTE_EMOJIS
    expect(lines.length).toBeGreaterThan(10)
    expect(emojis.length).toBeGreaterThan(1000)
    const stream =
      lines.map((line, i) => `id: ${i}\ndata: ${line}\n\n`).join('') +
      `event: emojis\ndata: ${emojis.join('')}\ndata: ${emojis.slice(0, 10).join('\u200b')}\n\n`
    const expected = [
      ...lines.map((line, i) => ev(line, 'message', String(i))),
      ev(
        `${emojis.join('')}\n${emojis.slice(0, 10).join('\u200b')}`,
        'emojis',
        String(lines.length - 1),
      ),
    ]
    expect(parseChunks([stream]).events).toEqual(expected)
    expect(parseChunks(bytewise(stream)).events).toEqual(expected)
    for (const size of [2, 3, 5, 7, 13]) {
      const cuts = Array.from({ length: Math.ceil((stream.length * 4) / size) }, (_, i) => i * size)
      expect(parseChunks(splitBytes(stream, cuts)).events).toEqual(expected)
    }
  })

  it('replaces invalid UTF-8 with U+FFFD, as the spec’s UTF-8 decode does', () => {
    const bytes = [
      ...new TextEncoder().encode('data: a'),
      0xff,
      0xc3,
      ...new TextEncoder().encode('b\n\n'),
    ]
    expect(parseChunks([Uint8Array.from(bytes)]).events).toEqual([ev('a\uFFFD\uFFFDb')])
  })

  it('takes text and bytes in the same stream', () => {
    const parsed = parseChunks(['data: a', new TextEncoder().encode('é\n'), '\n'])
    expect(parsed.events).toEqual([ev('aé')])
  })
})

describe('createParser: limits', () => {
  it('drops a line longer than maxLineChars with an ERR_SSE_LINE_TOO_LONG error and goes on', () => {
    for (const chunks of [
      ['data: ' + 'x'.repeat(20) + '\ndata: ok\n\n'],
      charwise('data: ' + 'x'.repeat(20) + '\ndata: ok\n\n'),
      ['data: xxxx', 'x'.repeat(20), 'xx\r', '\ndata: ok\n\n'],
    ]) {
      const parsed = parseChunks(chunks, { maxLineChars: 16 })
      expect(parsed.errors).toHaveLength(1)
      expect(isSseError(parsed.errors[0])).toBe(true)
      expect(parsed.errors[0]!.code).toBe('ERR_SSE_LINE_TOO_LONG')
      expect(parsed.errors[0]!.message).toMatch(/maxLineChars \(16/)
      expect(parsed.events).toEqual([ev('ok')])
    }
  })

  it('keeps memory bounded while an over-long line keeps coming', () => {
    const parsed = parseChunks(
      ['data: '].concat(
        Array.from({ length: 1000 }, () => 'y'.repeat(100)),
        ['\n', 'data: z\n\n'],
      ),
      { maxLineChars: 1000 },
    )
    expect(parsed.errors).toHaveLength(1)
    expect(parsed.events).toEqual([ev('z')])
  })

  it('accepts a line of exactly maxLineChars', () => {
    const line = 'data: ' + 'x'.repeat(10)
    expect(parseChunks([line + '\n\n'], { maxLineChars: line.length }).events).toEqual([
      ev('x'.repeat(10)),
    ])
    expect(parseChunks(charwise(line + '\n\n'), { maxLineChars: line.length }).errors).toEqual([])
  })

  it('drops a whole event with more data than maxEventChars, up to its blank line', () => {
    const stream = 'event: big\ndata: 12345\ndata: 12345\nid: 9\ndata: 1\n\ndata: next\n\n'
    for (const chunks of [[stream], charwise(stream)]) {
      const parsed = parseChunks(chunks, { maxEventChars: 10 })
      expect(parsed.errors.map((error) => error.code)).toEqual(['ERR_SSE_LINE_TOO_LONG'])
      expect(parsed.errors[0]!.message).toMatch(/maxEventChars \(10/)
      expect(parsed.events).toEqual([ev('next')])
    }
  })

  it('throws from feed() when there is no onError, after parsing the rest of the chunk', () => {
    const events: ParsedEvent[] = []
    const parser = createParser({ onEvent: (event) => events.push(event), maxLineChars: 8 })
    expect(() => parser.feed('data: far too long\ndata: ok\n\n')).toThrow(/maxLineChars \(8/)
    expect(events).toEqual([ev('ok')])
    parser.feed('data: m\n\n')
    expect(events).toEqual([ev('ok'), ev('m')])
  })

  it('null disables a limit', () => {
    const data = 'x'.repeat(100_000)
    const parsed = parseChunks([`data: ${data}\n\n`], { maxLineChars: null, maxEventChars: null })
    expect(parsed.events).toEqual([ev(data)])
  })

  it('rejects bad options up front', () => {
    expect(() => createParser({} as never)).toThrow(TypeError)
    expect(() => createParser(undefined as never)).toThrow(/onEvent/)
    expect(() => createParser({ onEvent: () => {}, maxLineChars: 0 })).toThrow(RangeError)
    expect(() => createParser({ onEvent: () => {}, maxEventChars: 1.5 })).toThrow(
      'Expected `maxEventChars` to be a positive integer or null, got `1.5` (number)',
    )
  })
})

describe('createParser: linear time', () => {
  it('parses a 2 MB line fed byte by byte, and a 100 000-line event, in linear time', () => {
    // A quadratic parser (rescanning or re-copying the pending line per chunk) would take hours
    // here: 2e6 chunks times a 1e6-character average re-copy.
    const data = 'x'.repeat(2_000_000)
    const chunks = bytewise(`data: ${data}\n\n`)
    const started = Date.now()
    expect(parseChunks(chunks).events[0]?.data.length).toBe(data.length)
    const lines = Array.from({ length: 100_000 }, (_, i) => `data: line ${i}\n`).join('')
    const parsed = parseChunks([lines + '\n'])
    expect(parsed.events[0]?.data.split('\n')).toHaveLength(100_000)
    expect(Date.now() - started).toBeLessThan(15_000)
  })

  it('does not rescan for colons: many colon-less lines before a far colon', () => {
    const stream = 'data\n'.repeat(200_000) + '\n' + 'data: ' + 'x:'.repeat(10) + '\n\n'
    const parsed = parseChunks([stream])
    expect(parsed.events).toHaveLength(2)
    expect(parsed.events[1]).toEqual(ev('x:'.repeat(10)))
  })
})

describe('createParser: reset and lastEventId', () => {
  it('reset() drops a partial line and event and arms the BOM rule again', () => {
    const events: ParsedEvent[] = []
    const parser = createParser({ onEvent: (event) => events.push(event) })
    parser.feed(Uint8Array.of(0xef, 0xbb, 0xbf))
    parser.feed('id: 1\ndata: partial\ndata: li')
    parser.feed(Uint8Array.of(0xc3)) // the first byte of a two-byte character
    parser.reset()
    expect(parser.lastEventId).toBe('')
    parser.feed(Uint8Array.of(0xef, 0xbb, 0xbf))
    parser.feed('data: fresh\n\n')
    expect(events).toEqual([ev('fresh')])
  })

  it('reset() forgets a pending CR, so an LF starting the next stream is a blank line', () => {
    const events: ParsedEvent[] = []
    const parser = createParser({ onEvent: (event) => events.push(event) })
    parser.feed('data: a\r')
    parser.reset()
    parser.feed('\ndata: b\n\n')
    expect(events).toEqual([ev('b')])
  })

  it('starts from the lastEventId option and from reset({lastEventId})', () => {
    const events: ParsedEvent[] = []
    const parser = createParser({ onEvent: (event) => events.push(event), lastEventId: '41' })
    expect(parser.lastEventId).toBe('41')
    parser.feed('data: a\n\n')
    parser.reset({ lastEventId: '99' })
    parser.feed('data: b\n\nid: 100\ndata: c\n\n')
    expect(events).toEqual([
      ev('a', 'message', '41'),
      ev('b', 'message', '99'),
      ev('c', 'message', '100'),
    ])
  })

  it('keeps the unparsed rest of a chunk when a callback throws', () => {
    const events: ParsedEvent[] = []
    let throwOnce = true
    const parser = createParser({
      onEvent(event) {
        events.push(event)
        if (throwOnce) {
          throwOnce = false
          throw new Error('consumer failed')
        }
      },
    })
    expect(() => parser.feed('data: a\r\ndata: b\n\ndata: c\n\ndata: d')).toThrow('consumer failed')
    parser.feed('\n\n')
    expect(events).toEqual([ev('a\nb'), ev('c'), ev('d')])
  })

  it('keeps the rest of a chunk when a callback throws on the line that completes a pending one', () => {
    const comments: string[] = []
    const events: ParsedEvent[] = []
    const parser = createParser({
      onEvent: (event) => events.push(event),
      onComment(comment) {
        comments.push(comment)
        if (comments.length === 1) throw new Error('comment handler failed')
      },
    })
    parser.feed(': hel')
    expect(() => parser.feed('lo\r')).toThrow('comment handler failed')
    parser.feed('\ndata: x\n\n')
    comments.length = 0
    parser.feed(': hel')
    expect(() => parser.feed('lo\r\ndata: y\n\n')).toThrow('comment handler failed')
    parser.feed('')
    expect(() => {
      parser.feed(': again\n')
    }).not.toThrow()
    expect(comments).toEqual(['hello', 'again'])
    expect(events).toEqual([ev('x'), ev('y')])
  })
})
