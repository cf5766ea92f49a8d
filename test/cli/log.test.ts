import { afterEach, describe, expect, it, vi } from 'vitest'
import { LOG_SAMPLE_WINDOW_MS, LogSampler, createLogger, formatLogLine } from '../../src/cli/log.js'

const time = new Date('2026-01-02T03:04:05.678Z')

describe('formatLogLine', () => {
  it('writes text as `<time> <level> <message> key=value`, quoting values that need it', () => {
    expect(
      formatLogLine('text', time, 'warn', 'refused POST /publish with 401', {
        event: 'auth-refused',
        status: 401,
        remoteAddress: '::1',
        note: 'two words',
        eq: 'a=b',
        missing: undefined,
        none: null,
        ok: true,
      }),
    ).toBe(
      '2026-01-02T03:04:05.678Z warn  refused POST /publish with 401 event=auth-refused status=401 remoteAddress=::1 note="two words" eq="a=b" none=null ok=true\n',
    )
  })

  it('writes JSON lines with time, level and msg first', () => {
    const line = formatLogLine('json', time, 'info', 'ssehub stopped', {
      event: 'stopped',
      streams: 3,
      missing: undefined,
    })
    expect(line).toBe(
      '{"time":"2026-01-02T03:04:05.678Z","level":"info","msg":"ssehub stopped","event":"stopped","streams":3}\n',
    )
  })

  it('never lets a message or a value break the line', () => {
    const text = formatLogLine('text', time, 'error', 'bad\nthing\r', { path: '/a\nb' })
    expect(text).toBe('2026-01-02T03:04:05.678Z error bad\\nthing\\r path="/a\\nb"\n')
    const json = formatLogLine('json', time, 'error', 'bad\nthing', {})
    expect(json.split('\n')).toHaveLength(2)
  })
})

describe('LogSampler', () => {
  afterEach(() => {
    vi.useRealTimers()
  })

  function sampled(): { lines: string[]; sampler: LogSampler } {
    const lines: string[] = []
    const logger = createLogger({
      format: 'json',
      write: (line) => lines.push(line),
      now: () => time,
    })
    return { lines, sampler: new LogSampler(logger) }
  }
  const parsed = (lines: string[]): Record<string, unknown>[] =>
    lines.map((line) => JSON.parse(line) as Record<string, unknown>)

  it('writes the first event of a kind per window, and one count of the rest when it ends', () => {
    vi.useFakeTimers()
    const { lines, sampler } = sampled()
    for (let i = 0; i < 50; i++)
      sampler.event('evicted', 'warn', `evicted ${i}`, { connection: String(i) })
    sampler.event('auth-refused', 'warn', 'refused', { status: 401 })
    expect(parsed(lines)).toEqual([
      expect.objectContaining({ msg: 'evicted 0', event: 'evicted', connection: '0' }),
      expect.objectContaining({ msg: 'refused', event: 'auth-refused', status: 401 }),
    ])
    vi.advanceTimersByTime(LOG_SAMPLE_WINDOW_MS - 1)
    expect(lines).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(parsed(lines.slice(2))).toEqual([
      {
        time: time.toISOString(),
        level: 'warn',
        msg: '49 more evicted events in the last 10 s, not logged one by one',
        event: 'suppressed',
        kind: 'evicted',
        count: 49,
        windowMs: LOG_SAMPLE_WINDOW_MS,
      },
    ])
    // A new window: the next event is written again, with its details.
    sampler.event('evicted', 'warn', 'evicted 50', { connection: '50' })
    expect(parsed(lines.slice(3))).toEqual([expect.objectContaining({ msg: 'evicted 50' })])
    // Nothing held back: nothing more to say.
    vi.advanceTimersByTime(LOG_SAMPLE_WINDOW_MS * 3)
    expect(lines).toHaveLength(4)
  })

  it('writes the pending counts on flush (at shutdown), once', () => {
    vi.useFakeTimers()
    const { lines, sampler } = sampled()
    for (let i = 0; i < 3; i++) sampler.event('slow-consumer', 'warn', 'slow')
    sampler.flush()
    sampler.flush()
    expect(parsed(lines).map((line) => [line.event, line.count])).toEqual([
      ['slow-consumer', undefined],
      ['suppressed', 2],
    ])
    vi.advanceTimersByTime(LOG_SAMPLE_WINDOW_MS)
    expect(lines).toHaveLength(2)
  })
})
