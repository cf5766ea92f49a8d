import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { UsageError, type CliIo } from '../../src/cli/io.js'
import { listenHelp, runListen } from '../../src/cli/listen.js'
import { deadUrl } from '../client/track.js'
import { startSseTestServer, type SseTestServer } from '../helpers/sse-test-server.js'
import { waitFor } from '../helpers/wait.js'

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

  it('exits 1 with one line naming the status on a non-2xx answer', async () => {
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
    ]
    for (const args of bad) {
      await expect(runListen(args, c.io), args.join(' ')).rejects.toBeInstanceOf(UsageError)
    }
    await expect(runListen(['http://a/', '--bogus'], c.io)).rejects.toThrow(/--bogus/)
    await expect(runListen([], c.io)).rejects.toThrow(
      "listen expects one URL, got none; see 'ssehub listen --help'",
    )
    expect(c.stdout()).toBe('')
  })
})
