/**
 * The relay configured as an operator configures it: `--relay-upstream` (its key read from the
 * variable it names), `--llm-url` as the upstream `default`, the mock model while the demos are
 * on, and what a bad setting answers. Real `ssehub serve` processes and a fake upstream.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { parseServeArgs } from '../../src/cli/serve-options.js'
import { killAll, runCli, startCliHub, type CliProcess } from '../helpers/cli.js'
import { startFakeLlm, type FakeLlm } from '../helpers/fake-llm.js'
import { openStream, type RawStream } from '../helpers/raw-stream.js'
import { relayText } from '../helpers/relay-viewer.js'
import { waitFor } from '../helpers/wait.js'

const running: CliProcess[] = []
const streams: RawStream[] = []
let llm: FakeLlm | undefined
afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close()
  await killAll(running)
  await llm?.close()
  llm = undefined
})

async function serve(args: string[], env: Record<string, string> = {}): Promise<string> {
  const { url, cli } = await startCliHub(['--heartbeat-ms', 'off', ...args], env)
  running.push(cli)
  return url
}

const startRelay = (url: string, id: string, upstream = 'default') =>
  fetch(`${url}/relays`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id, upstream, body: { messages: [{ role: 'user', content: 'Hi' }] } }),
  })

async function watch(url: string, id: string): Promise<RawStream> {
  const stream = await openStream(`${url}/events?from=start&topic=relay/${id}`)
  streams.push(stream)
  return stream
}

describe('--relay-upstream', () => {
  it('reads NAME=URL[,key-env=VAR][,model=MODEL], repeated or separated by `;`', () => {
    const env = { OPENAI_KEY: 'sk-1', LOCAL_KEY: 'sk-2' }
    const config = parseServeArgs(
      [
        '--relay-upstream',
        'openai=https://api.openai.com/v1,key-env=OPENAI_KEY,model=gpt-4o-mini',
        '--relay-upstream',
        'local=http://127.0.0.1:8000;vllm=http://10.0.0.2:8000/v1/chat/completions,key-env=LOCAL_KEY',
      ],
      env,
    )
    expect(config.options.relayUpstreams).toEqual({
      openai: { url: 'https://api.openai.com/v1', apiKey: 'sk-1', model: 'gpt-4o-mini' },
      local: { url: 'http://127.0.0.1:8000', apiKey: null, model: null },
      vllm: { url: 'http://10.0.0.2:8000/v1/chat/completions', apiKey: 'sk-2', model: null },
    })
    const fromEnv = parseServeArgs([], { SSEHUB_RELAY_UPSTREAM: 'a=http://h:1;b=http://h:2' })
    expect(Object.keys(fromEnv.options.relayUpstreams ?? {})).toEqual(['a', 'b'])
  })

  it.each([
    [['a=ftp://h'], /expects NAME=URL\[,key-env=VAR\]\[,model=MODEL\]/],
    [['http://h:1'], /expects NAME=URL/],
    [['a=http://h,kee-env=X'], /unknown setting "kee-env" of upstream a; did you mean key-env\?/],
    [['a=http://h,key-env=NOT_SET'], /takes its API key from \$NOT_SET, which is not set/],
    [['a=http://h', 'a=http://i'], /the upstream a is given twice/],
  ])('refuses %j with one line that says why', (values, message) => {
    const args = values.flatMap((value) => ['--relay-upstream', value])
    expect(() => parseServeArgs(args, {})).toThrow(message)
  })

  it('relays from the named upstream with the key from its variable; `--llm-url` is the upstream default', async () => {
    llm = await startFakeLlm({ tokens: ['Hello', ',', ' world'], delayMs: 5 })
    const url = await serve(
      [
        '--relay-upstream',
        `fake=${llm.url},key-env=FAKE_LLM_KEY,model=fake-1`,
        '--llm-url',
        llm.url,
      ],
      { FAKE_LLM_KEY: 'sk-from-env' },
    )
    expect((await startRelay(url, 'r1', 'fake')).status).toBe(202)
    const viewer = await watch(url, 'r1')
    await viewer.ended
    expect(relayText(viewer)).toBe('Hello, world')
    expect((await startRelay(url, 'r2')).status).toBe(202)
    await waitFor(() => llm!.requests.length === 2 && llm!.requests[1]!.finished, 'the default')
    expect(llm.requests.map((r) => [r.authorization, r.body.model])).toEqual([
      ['Bearer sk-from-env', 'fake-1'],
      [undefined, 'gpt-4o-mini'],
    ])
  })

  it('with nothing configured, the upstream default is the mock model while the demos are on, and none with --no-demos', async () => {
    const url = await serve([])
    expect((await startRelay(url, 'm')).status).toBe(202)
    const viewer = await watch(url, 'm')
    await viewer.waitForText('event: token')
    expect(relayText(viewer)).toMatch(/^Server-Sent /)
    const bare = await serve(['--no-demos'])
    const refused = await startRelay(bare, 'm')
    expect(refused.status).toBe(400)
    expect(((await refused.json()) as { error: { message: string } }).error.message).toBe(
      'No relay upstream is configured on this hub; start it with --relay-upstream default=URL.',
    )
  })

  it('refuses --llm-url together with --relay-upstream default=..., and --llm-key without --llm-url', async () => {
    const both = runCli([
      'serve',
      '--port',
      '0',
      '--llm-url',
      'http://127.0.0.1:9',
      '--relay-upstream',
      'default=http://127.0.0.1:9',
    ])
    expect(await both.exited).toBe(2)
    expect(both.stderr().trim().split('\n')).toEqual([
      'ssehub: --llm-url sets the relay upstream default, and --relay-upstream default=... sets it too: keep one',
    ])
    const keyOnly = runCli(['serve', '--port', '0', '--llm-key', 'sk'])
    expect(await keyOnly.exited).toBe(2)
    expect(keyOnly.stderr()).toContain('--llm-key applies to --llm-url')
  })

  it('on SIGTERM, a running generation ends with its final event before the streams close; the durable store keeps it across the restart', async () => {
    llm = await startFakeLlm({
      tokens: Array.from({ length: 200 }, (_, i) => `t${i} `),
      delayMs: 50,
    })
    const dataDir = mkdtempSync(join(tmpdir(), 'ssehub-relay-'))
    try {
      const url = await serve(['--llm-url', llm.url, '--data-dir', dataDir])
      await startRelay(url, 'long')
      const viewer = await watch(url, 'long')
      await viewer.waitForText('event: token')
      running[0]!.child.kill('SIGTERM')
      await viewer.ended
      const final = viewer.events.at(-1)!
      expect(final.event).toBe('error')
      expect(JSON.parse(final.data)).toMatchObject({
        outcome: 'aborted',
        reason: 'aborted',
        message: 'The hub shut down before the generation finished.',
      })
      expect(await running[0]!.exited).toBe(0)
      await waitFor(() => llm!.requests[0]!.cancelled, 'the upstream cancelled')
      // Restarted on the same folder: the answer so far and its end are still there, and the
      // id still starts nothing.
      const again = await serve(['--llm-url', llm.url, '--data-dir', dataDir])
      const later = await watch(again, 'long')
      await later.ended
      expect(later.events.map((event) => [event.id, event.event, event.data])).toEqual(
        viewer.events.map((event) => [event.id, event.event, event.data]),
      )
      expect(((await (await startRelay(again, 'long')).json()) as { state: string }).state).toBe(
        'ended',
      )
      expect(llm.requests).toHaveLength(1)
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})

describe('relays with --workers 2', () => {
  it('one generation for starts on both workers; viewers on both get it; an abort ends it on both', async () => {
    llm = await startFakeLlm({
      tokens: Array.from({ length: 100 }, (_, i) => `w${i} `),
      delayMs: 40,
    })
    const url = await serve(['--workers', '2', '--relay-upstream', `default=${llm.url}`])
    await waitFor(
      async () =>
        ((await (await fetch(`${url}/stats`)).json()) as { cluster: { nodes: unknown[] } }).cluster
          .nodes.length === 2,
      'two workers',
      10_000,
    )
    // Two viewers at once: the primary hands them to different workers (the fewest connections).
    const viewers = await Promise.all(
      ['v1', 'v2'].map(async (clientId) => {
        const stream = await openStream(
          `${url}/events?from=start&topic=relay/w&clientId=${clientId}`,
        )
        streams.push(stream)
        return stream
      }),
    )
    const nodes = await waitFor(async () => {
      const body = (await (await fetch(`${url}/clients`)).json()) as {
        connections: { node: string }[]
      }
      return body.connections.length === 2 ? new Set(body.connections.map((c) => c.node)) : null
    }, 'both viewers in the presence')
    expect(nodes.size).toBe(2)
    // Starts on separate connections, at once: exactly one begins the generation.
    const starts = await Promise.all(
      [1, 2, 3, 4].map(
        async () => (await (await startRelay(url, 'w')).json()) as { started: boolean },
      ),
    )
    expect(starts).toHaveLength(4)
    expect(starts.filter((start) => start.started)).toHaveLength(1)
    await Promise.all(viewers.map((viewer) => viewer.waitForText('event: token')))
    const aborted = await fetch(`${url}/relays/w/abort`, { method: 'POST' })
    expect(await aborted.json()).toMatchObject({ aborted: true, state: 'ended' })
    for (const viewer of viewers) {
      await viewer.ended
      const finals = viewer.events.filter((e) => e.event === 'done' || e.event === 'error')
      expect(finals.map((e) => JSON.parse(e.data) as { reason: string })).toMatchObject([
        { reason: 'aborted' },
      ])
    }
    expect(relayText(viewers[0]!)).toBe(relayText(viewers[1]!))
    await waitFor(() => llm!.requests[0]?.cancelled === true, 'the upstream cancelled')
    expect(llm.requests).toHaveLength(1)
  })
})
