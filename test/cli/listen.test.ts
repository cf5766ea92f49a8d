import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { UsageError, type CliIo } from '../../src/cli/io.js'
import { listenHelp, runListen } from '../../src/cli/listen.js'
import { deadUrl } from '../client/track.js'
import { startSseTestServer, type SseTestServer } from '../helpers/sse-test-server.js'
import { waitFor } from '../helpers/wait.js'
import { startWptServer } from '../helpers/wpt-server.js'

let server: SseTestServer

beforeEach(async () => {
  server = await startSseTestServer()
})

afterEach(async () => {
  await server.close()
})

interface Captured {
  readonly io: CliIo
  readonly controller: AbortController
  stdout(): string
  stderr(): string
}

function capture(): Captured {
  let out = ''
  let err = ''
  const controller = new AbortController()
  return {
    io: {
      stdout: (text) => (out += text),
      stderr: (text) => (err += text),
      env: {},
      signal: controller.signal,
    },
    controller,
    stdout: () => out,
    stderr: () => err,
  }
}

async function listen(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = capture()
  const code = await runListen(args, c.io)
  return { code, stdout: c.stdout(), stderr: c.stderr() }
}

const json = (type: string, data: string, lastEventId: string): string =>
  `{"type":${JSON.stringify(type)},"data":${JSON.stringify(data)},"lastEventId":${JSON.stringify(lastEventId)}}\n`

describe('ssehub listen', () => {
  it('--json --max-events: one JSON object per event and line, across a reconnection; exit 0', async () => {
    const result = await listen([`${server.url}/counter`, '--json', '--max-events', '5'])
    expect(result).toEqual({
      code: 0,
      stdout: ['1', '2', '3', '4', '5'].map((n) => json('message', n, n)).join(''),
      stderr: '',
    })
    expect(server.hits('/counter')[1]!.headers['last-event-id']).toBe('3')
  })

  it('--json keeps types, multi-line data and ids exactly', async () => {
    const result = await listen([`${server.url}/mixed`, '--json', '--no-reconnect'])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(
      [
        json('message', 'YHOO\n+2\n10', ''),
        json('add', '73857293', ''),
        json('message', 'first\n second', '7'),
        json('message', 'nul id ignored', '7'),
        json('message', 'id reset', ''),
        json('message', 'Blåbærsyltetøy 一定能 😀', ''),
        json('message', '', ''),
        json('message', 'empty type', ''),
      ].join(''),
    )
  })

  it('prints SSE text without --json', async () => {
    const result = await listen([`${server.url}/counter?count=2`, '--max-events', '2'])
    expect(result.stdout).toBe(
      'event: message\nid: 1\ndata: 1\n\nevent: message\nid: 2\ndata: 2\n\n',
    )
    const mixed = await listen([`${server.url}/mixed`, '--max-events', '1'])
    expect(mixed.stdout).toBe('event: message\ndata: YHOO\ndata: +2\ndata: 10\n\n')
  })

  it('exits 0 when the server answers 204', async () => {
    expect(await listen([`${server.url}/status/204`])).toEqual({ code: 0, stdout: '', stderr: '' })
    const after = await listen([`${server.url}/then-204`, '--json'])
    expect(after).toEqual({ code: 0, stdout: json('message', 'first', '1'), stderr: '' })
  })

  it('exits 1 with one line naming the status on a 4xx or 5xx answer', async () => {
    expect(await listen([`${server.url}/status/500`])).toEqual({
      code: 1,
      stdout: '',
      stderr: `ssehub listen: server answered 500 Internal Server Error for ${server.url}/status/500\n`,
    })
    const notFound = await listen([`${server.url}/status/404`, '--json'])
    expect(notFound.code).toBe(1)
    expect(notFound.stderr).toBe(
      `ssehub listen: server answered 404 Not Found for ${server.url}/status/404\n`,
    )
    expect(server.hits('/status/500')).toHaveLength(1)
  })

  it('exits 1 with one line on a 2xx other than 200 and 204 (the spec: only 200 opens)', async () => {
    for (const [status, text] of [
      [205, 'Reset Content'],
      [210, 'unknown'],
      [299, 'unknown'],
      [201, 'Created'],
    ] as const) {
      expect(await listen([`${server.url}/status/${status}?sse=1`, '--json'])).toEqual({
        code: 1,
        stdout: '',
        stderr: `ssehub listen: server answered ${status} ${text} for ${server.url}/status/${status}\n`,
      })
      expect(server.hits(`/status/${status}`)).toHaveLength(1)
    }
  })

  it('exits 1 with one line on a wrong Content-Type', async () => {
    expect(await listen([`${server.url}/wrong-type`])).toEqual({
      code: 1,
      stdout: '',
      stderr: `ssehub listen: expected Content-Type text/event-stream, got application/json (status 200) from ${server.url}/wrong-type\n`,
    })
  })

  it('--no-reconnect: exit 0 at the end of the stream, 1 with one line when the connection fails', async () => {
    expect(await listen([`${server.url}/end-after-one`, '--json', '--no-reconnect'])).toEqual({
      code: 0,
      stdout: json('message', 'one', '1'),
      stderr: '',
    })
    const url = await deadUrl()
    const failed = await listen([url, '--no-reconnect'])
    expect(failed.code).toBe(1)
    expect(failed.stderr).toMatch(
      /^ssehub listen: Connection to http:\/\/127\.0\.0\.1:\d+\/gone failed: fetch failed.*\n$/,
    )
    expect(failed.stderr.split('\n')).toHaveLength(2)
  })

  it('sends --header, --method and --data; --data alone means POST', async () => {
    const result = await listen([
      `${server.url}/post-echo`,
      '--json',
      '--max-events',
      '1',
      '--header',
      'Authorization: Bearer abc',
      '--header',
      'Content-Type:application/json',
      '--method',
      'put',
      '--data',
      '{"a":1}',
    ])
    const event = JSON.parse(result.stdout) as { data: string }
    expect(JSON.parse(event.data)).toEqual({
      method: 'PUT',
      contentType: 'application/json',
      authorization: 'Bearer abc',
      accept: 'text/event-stream',
      body: '{"a":1}',
    })
    const post = await listen([`${server.url}/post-echo`, '--max-events', '1', '--data', 'x=1'])
    expect(post.stdout).toContain('"method":"POST"')
    expect(post.stdout).toContain('"body":"x=1"')
  })

  it('prints one stderr line per failed attempt, with the cause and the next delay', async () => {
    const url = await deadUrl()
    const port = new URL(url).port
    const c = capture()
    const done = runListen([url, '--json'], c.io)
    await waitFor(() => c.stderr() !== '', 'the first failed attempt')
    c.controller.abort()
    expect(await done).toBe(0)
    expect(c.stderr()).toBe(
      `ssehub listen: Connection to ${url} failed: fetch failed (connect ECONNREFUSED 127.0.0.1:${port}); retry 1 in 1000 ms\n`,
    )
    expect(c.stdout()).toBe('')
  })

  it('--max-attempts N: one line per failed attempt, then exit 1 with one line naming the cause', async () => {
    const url = await deadUrl()
    const port = new URL(url).port
    const refused = `Connection to ${url} failed: fetch failed (connect ECONNREFUSED 127.0.0.1:${port})`
    expect(await listen([url, '--max-attempts', '1'])).toEqual({
      code: 1,
      stdout: '',
      stderr:
        `ssehub listen: ${refused}; retry 1 of 1 in 1000 ms\n` +
        `ssehub listen: gave up after 1 reconnection attempt (--max-attempts 1): ${refused}\n`,
    })
  })

  it('--max-attempts is reset by a stream that opens: a clean end is not a failed attempt', async () => {
    const result = await listen([
      `${server.url}/counter?count=1`,
      '--max-attempts',
      '1',
      '--max-events',
      '3',
      '--json',
    ])
    expect(result).toEqual({
      code: 0,
      stdout: ['1', '2', '3'].map((n) => json('message', n, n)).join(''),
      stderr: '',
    })
  })

  it('--last-event-id beyond Latin-1 is sent as its UTF-8 bytes, and ids beyond it are followed', async () => {
    const wpt = await startWptServer()
    try {
      const result = await listen([
        `${wpt.url}/last-event-id`,
        '--json',
        '--max-events',
        '1',
        '--last-event-id',
        'é\u2026',
      ])
      expect(result).toEqual({ code: 0, stdout: json('message', 'é\u2026', 'é\u2026'), stderr: '' })
      // No --last-event-id: the server's `id: …` goes back on the reconnection.
      const followed = await listen([`${wpt.url}/last-event-id`, '--json', '--max-events', '2'])
      expect(followed.stdout).toBe(
        json('message', 'hello', '\u2026') + json('message', '\u2026', '\u2026'),
      )
      expect(wpt.hits('/last-event-id').map((r) => r.lastEventIdHex)).toEqual([
        'c3a9e280a6',
        undefined,
        'e280a6',
      ])
    } finally {
      await wpt.close()
    }
  })

  it('--last-event-id is sent as Last-Event-ID', async () => {
    const result = await listen([
      `${server.url}/echo-last-event-id`,
      '--json',
      '--max-events',
      '2',
      '--last-event-id',
      '41',
    ])
    expect(result.stdout).toBe(json('message', '41', 'next') + json('message', 'next', 'next'))
  })

  it('exits 0 when the signal aborts (SIGINT/SIGTERM)', async () => {
    const c = capture()
    const done = runListen([`${server.url}/silent`, '--json'], c.io)
    await waitFor(() => c.stdout() !== '', 'the first event')
    c.controller.abort()
    expect(await done).toBe(0)
    expect(c.stdout()).toBe(json('message', 'hit 1', '1'))
    expect(c.stderr()).toBe('')
  })

  it('--help prints the help, which documents the output and exit codes', async () => {
    expect(await listen(['--help'])).toEqual({ code: 0, stdout: listenHelp, stderr: '' })
    expect(listenHelp).toContain('--json')
    expect(listenHelp).toContain('Exit status: 0 when the server answers 204')
    expect(listenHelp).toContain('--max-attempts N')
    expect(listenHelp).toContain('only a 200 answer with Content-Type text/event-stream opens')
  })

  it('throws UsageError for bad flags', async () => {
    const c = capture()
    const bad = [
      [],
      ['http://a/', 'http://b/'],
      ['http://a/', '--bogus'],
      ['ftp://a/'],
      ['not a url'],
      ['http://a/', '--max-events', '0'],
      ['http://a/', '--max-events', '2x'],
      ['http://a/', '--header', 'no colon'],
      ['http://a/', '--header', ': empty name'],
      ['http://a/', '--method', 'GET', '--data', 'x'],
      ['http://a/', '--method', 'BAD METHOD'],
      ['http://a/', '--json=yes'],
      ['http://a/', '--max-attempts', '0'],
      ['http://a/', '--max-attempts', 'x'],
      ['http://a/', '--max-attempts', '2', '--no-reconnect'],
      ['http://ada:secret@a/'],
      ['http://a/', '--method', 'TRACE'],
    ]
    for (const args of bad) {
      await expect(runListen(args, c.io), args.join(' ')).rejects.toBeInstanceOf(UsageError)
    }
    await expect(runListen(['http://a/', '--bogus'], c.io)).rejects.toThrow(/--bogus/)
    await expect(runListen([], c.io)).rejects.toThrow(
      "listen expects one URL, got none; see 'ssehub listen --help'",
    )
    await expect(runListen(['http://ada:secret@a/x?k=1'], c.io)).rejects.toThrow(
      /^listen: The request to http:\/\/a\/x cannot be made: .*credentials/,
    )
    expect(c.stdout()).toBe('')
  })
})
