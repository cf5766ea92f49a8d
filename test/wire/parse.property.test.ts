import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeEventText, type SseEvent } from '../../src/wire/encode.js'
import type { ParsedEvent } from '../../src/wire/parse.js'
import { parseChunks, splitBytes, splitText } from './parse-helpers.js'
import { vectors } from './vectors.js'

/** Characters that exercise the parser's rules, mixed with any code point. */
const char = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom('\r', '\n', '\r\n', ':', ' ', '\0', '\uFEFF', 'é', '😀'),
  },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 5, arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }) },
)
const anyText = fc.string({ unit: char, maxLength: 40 })
const lineFree = (text: string): string => text.replace(/[\r\n]/g, '')
const cuts = fc.array(fc.nat(), { maxLength: 30 })

/** A stream line: a known field with a random value, a comment, a blank line or noise. */
const line = fc.oneof(
  fc
    .tuple(fc.constantFrom('data', 'event', 'id', 'retry', 'Data', 'foo', ''), anyText)
    .map(([field, value]) => `${field}:${lineFree(value)}`),
  fc.constantFrom('', '', 'data', 'id', 'retry: 15', ': comment', 'event'),
  anyText.map(lineFree),
)
const stream = fc
  .tuple(
    fc.array(fc.tuple(line, fc.constantFrom('\n', '\r', '\r\n')), { maxLength: 25 }),
    fc.boolean(),
  )
  .map(([lines, bom]) => (bom ? '\uFEFF' : '') + lines.map(([text, end]) => text + end).join(''))

describe('createParser: properties', () => {
  it('random byte splits of the spec examples and our vectors give the same events as whole', () => {
    for (const vector of vectors) {
      fc.assert(
        fc.property(cuts, (points) => {
          const parsed = parseChunks(splitBytes(vector.stream, points))
          expect(parsed.events).toEqual(vector.events)
          expect(parsed.retries).toEqual(vector.retries ?? [])
          expect(parsed.comments).toEqual(vector.comments ?? [])
        }),
        { numRuns: 50 },
      )
    }
  })

  it('any stream: random byte splits and random text splits give the same as whole', () => {
    fc.assert(
      fc.property(stream, cuts, cuts, (text, byteCuts, textCuts) => {
        const whole = parseChunks([text])
        expect(parseChunks(splitBytes(text, byteCuts))).toEqual(whole)
        expect(parseChunks(splitText(text, textCuts))).toEqual(whole)
      }),
      { numRuns: 500 },
    )
  })

  it('any event encoded by encodeEventText parses back to itself', () => {
    const event: fc.Arbitrary<SseEvent> = fc.record(
      {
        id: anyText.map((text) => text.replace(/[\r\n\0]/g, '')),
        event: anyText.map(lineFree),
        data: anyText,
        retry: fc.nat(),
      },
      { requiredKeys: [] },
    )
    fc.assert(
      fc.property(fc.array(event, { maxLength: 8 }), cuts, (events, points) => {
        const text = events.map((e) => encodeEventText(e)).join('')
        const expected: ParsedEvent[] = []
        let lastEventId = ''
        for (const e of events) {
          if (e.id !== undefined) lastEventId = e.id
          // The encoder writes one `data:` line per CR, LF or CRLF; the parser joins with LF.
          if (e.data !== undefined) {
            expected.push({
              type: e.event === undefined || e.event === '' ? 'message' : e.event,
              data: e.data.replace(/\r\n|\r/g, '\n'),
              lastEventId,
            })
          }
        }
        const parsed = parseChunks(splitBytes(text, points))
        expect(parsed.events).toEqual(expected)
        expect(parsed.retries).toEqual(
          events.flatMap((e) => (e.retry === undefined ? [] : [e.retry])),
        )
        expect(parsed.lastEventId).toBe(lastEventId)
      }),
      { numRuns: 500 },
    )
  })
})
