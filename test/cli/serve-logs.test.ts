/**
 * `ssehub serve`'s log lines, through the real CLI process (`--log-format json`, parsed line by
 * line): the start line, sampled drops and auth refusals, and the shutdown lines.
 */
import { hostname } from 'node:os'
import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { killAll, startCliHub, type CliProcess } from '../helpers/cli.js'
import { openStream, type RawStream } from '../helpers/raw-stream.js'
import { waitFor } from '../helpers/wait.js'

type Line = Record<string, unknown> & { time: string; level: string; msg: string; event: string }

const running: CliProcess[] = []
const open: { close?(): void; destroy?(): void }[] = []
afterEach(async () => {
  for (const item of open.splice(0)) {
    item.close?.()
    item.destroy?.()
  }
  await killAll(running)
})

async function hub(args: string[]): Promise<{ url: string; cli: CliProcess }> {
  const started = await startCliHub(['--log-format', 'json', '--heartbeat-ms', 'off', ...args])
  running.push(started.cli)
  return started
}

/** Every stdout line, parsed: each must be one JSON object. */
function lines(cli: CliProcess): Line[] {
  return cli
    .stdout()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Line)
}

/** SIGTERM, exit 0, and the lines written. */
async function stop(cli: CliProcess): Promise<Line[]> {
  cli.child.kill('SIGTERM')
  expect(await cli.exited).toBe(0)
  expect(cli.stderr()).toBe('')
  return lines(cli)
}

async function stats(url: string): Promise<Record<string, number>> {
  return (await (await fetch(`${url}/stats`)).json()) as Record<string, number>
}

async function stream(url: string): Promise<RawStream> {
  const s = await openStream(url)
  open.push(s)
  return s
}

describe('ssehub serve --log-format json', () => {
  it('starts with where it listens, the broker, the auth and the limits that are on; ends with the shutdown', async () => {
    const { url, cli } = await hub([
      '--publish-key',
      'k',
      '--max-connections',
      'off',
      '--max-connections-per-ip',
      '7',
      '--trust-proxy',
      'loopback,10.0.0.0/8',
    ])
    const s = await stream(`${url}/events?topic=a`)
    await waitFor(async () => (await stats(url)).connections === 1, 'the stream')
    const written = await stop(cli)
    await s.ended
    expect(written.map((line) => `${line.level} ${line.event}`)).toEqual([
      'info start',
      'info shutdown',
      'info stopped',
    ])
    const [start, shutdown, stopped] = written as [Line, Line, Line]
    expect(start).toEqual({
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) as unknown,
      level: 'info',
      msg: expect.stringMatching(
        new RegExp(`^ssehub listening on ${url} \\(durable broker, data in /\\S+\\)$`),
      ) as unknown,
      event: 'start',
      version: expect.stringMatching(/^\d+\.\d+\.\d+/) as unknown,
      pid: cli.child.pid,
      url,
      protocol: 'http/1.1',
      broker: 'durable',
      dataDir: expect.stringMatching(/^\//) as unknown,
      // One node: its id; no presence (a single hub's store serves one process).
      node: `${hostname()}:${cli.child.pid}`,
      auth: 'publish-key',
      // --max-connections off: left out.
      maxConnectionsPerClient: 100,
      maxConnectionsPerIp: 7,
      overflow: 'reject',
      maxQueuedBytes: 262144,
      publishRatePerSecond: 1000,
      publishBurst: 2000,
      trustProxy: 'loopback,10.0.0.0/8',
    })
    expect(shutdown).toMatchObject({ msg: 'ssehub shutting down: ending 1 stream', streams: 1 })
    expect(stopped).toMatchObject({
      event: 'stopped',
      streams: 1,
      ms: expect.any(Number) as unknown,
    })
  })

  it('writes one line per kind of drop, then how many more there were: evictions and slow consumers', async () => {
    const { url, cli } = await hub([
      '--max-connections',
      '3',
      '--overflow',
      'evict',
      '--max-queued-bytes',
      '65536',
    ])
    // Evictions: 12 streams one after another, room for 3.
    for (let i = 0; i < 12; i++) await stream(`${url}/events?topic=e&clientId=c${i}`)
    await waitFor(async () => (await stats(url)).evictions === 9, '9 evictions')
    for (const item of open.splice(0)) item.close?.()
    await waitFor(async () => (await stats(url)).connections === 0, 'the streams gone')
    // Slow consumers: 3 sockets that ask for a stream and never read, fed until the hub drops them.
    for (let i = 0; i < 3; i++) {
      const socket: Socket = connect(Number(new URL(url).port), '127.0.0.1')
      open.push(socket)
      socket.write(`GET /events?topic=big&clientId=s${i} HTTP/1.1\r\nHost: x\r\n\r\n`)
      socket.pause()
    }
    await waitFor(async () => (await stats(url)).connections === 3, 'the stalled streams')
    const payload = JSON.stringify({ topic: 'big', data: 'x'.repeat(200_000) })
    for (let published = 0; ((await stats(url)).slowConsumerCloses ?? 0) < 3; published++) {
      expect(published, 'publishes before every stalled stream was dropped').toBeLessThan(500)
      const response = await fetch(`${url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: payload,
      })
      expect(response.status).toBe(200)
      await response.body?.cancel()
    }
    const written = await stop(cli)
    expect(
      written.map((line) => [line.event, line.kind ?? null, line.count ?? null, line.level]),
    ).toEqual([
      ['start', null, null, 'info'],
      ['evicted', null, null, 'warn'],
      ['slow-consumer', null, null, 'warn'],
      ['shutdown', null, null, 'info'],
      // The counts still in their window, written before the last line.
      ['suppressed', 'evicted', 8, 'warn'],
      ['suppressed', 'slow-consumer', 2, 'warn'],
      ['stopped', null, null, 'info'],
    ])
    expect(written[1]).toMatchObject({
      msg: 'evicted a connection to make room (--overflow evict)',
      connection: expect.any(String) as unknown,
      clientId: 'c0',
      remoteAddress: '127.0.0.1',
    })
    expect(written[2]).toMatchObject({
      msg: 'closed a slow consumer (it did not read; --max-queued-bytes)',
      clientId: expect.stringMatching(/^s[0-2]$/) as unknown,
      remoteAddress: '127.0.0.1',
    })
  })

  it('writes auth refusals rate-limited, without the query (tokens travel there)', async () => {
    const { url, cli } = await hub(['--publish-key', 'the-key'])
    const first = await fetch(`${url}/clients/u1?token=hunter2`, { method: 'DELETE' })
    expect(first.status).toBe(401)
    for (let i = 0; i < 10; i++) {
      const response = await fetch(`${url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"topic":"a","data":"x"}',
      })
      expect(response.status).toBe(401)
    }
    const written = await stop(cli)
    expect(written.map((line) => line.event)).toEqual([
      'start',
      'auth-refused',
      'shutdown',
      'suppressed',
      'stopped',
    ])
    expect(written[1]).toEqual({
      time: expect.any(String) as unknown,
      level: 'warn',
      msg: 'refused DELETE /clients/u1 with 401',
      event: 'auth-refused',
      status: 401,
      code: 'ERR_SSE_UNAUTHORIZED',
      method: 'DELETE',
      path: '/clients/u1',
      remoteAddress: '127.0.0.1',
    })
    expect(written[3]).toMatchObject({ kind: 'auth-refused', count: 10, windowMs: 10_000 })
    expect(cli.stdout()).not.toContain('hunter2')
  })
})
