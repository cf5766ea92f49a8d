import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { networkCause, publishHelp, runPublish } from '../../src/cli/publish.js'
import { killAll, runCli, startCliHub, type CliProcess } from '../helpers/cli.js'
import { startHub, type TestHub } from '../helpers/hub-server.js'
import { openStream } from '../helpers/raw-stream.js'

const KEY = 'k'.repeat(32)
const running: CliProcess[] = []
let hub: TestHub | undefined

afterEach(async () => {
  await killAll(running)
  await hub?.close()
  hub = undefined
})

/** Runs `ssehub publish` in-process; resolves with its exit code and exact output. */
async function publish(argv: string[], env: Record<string, string> = {}) {
  let stdout = ''
  let stderr = ''
  const code = await runPublish(argv, {
    stdout: (text) => (stdout += text),
    stderr: (text) => (stderr += text),
    env,
    signal: new AbortController().signal,
  })
  return { code, stdout, stderr }
}

/** A loopback port nothing listens on (listened on, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('ssehub publish', () => {
  it('sends the key of --key, which wins over $SSEHUB_PUBLISH_KEY', async () => {
    hub = await startHub({ publishKey: KEY })
    const s = await openStream(`${hub.url}/events?topic=news`)
    try {
      await s.waitForText('id: ')
      const flag = await publish(['--topic', 'news', '--hub', hub.url, '--key', KEY, 'one'], {
        SSEHUB_PUBLISH_KEY: 'wrong',
      })
      expect(flag).toEqual({
        code: 0,
        stdout: expect.stringMatching(/^[0-9a-z]+-\d+\n$/),
        stderr: '',
      })
      const env = await publish(['--topic', 'news', '--hub', hub.url, 'two'], {
        SSEHUB_PUBLISH_KEY: KEY,
      })
      expect(env.code).toBe(0)
      await s.waitForEvents(2)
      expect(s.events.map((e) => e.data)).toEqual(['one', 'two'])
    } finally {
      s.close()
    }
  })

  it('on a 401 says how to pass the key, or which key was refused', async () => {
    hub = await startHub({ publishKey: KEY })
    const refusal = 'This endpoint needs the publish key: send `Authorization: Bearer <key>`.'
    expect(await publish(['--topic', 'a', '--hub', hub.url, 'x'])).toEqual({
      code: 1,
      stdout: '',
      stderr: `ssehub publish: hub answered 401: ${refusal} Pass the key with --key <key> or $SSEHUB_PUBLISH_KEY.\n`,
    })
    expect(await publish(['--topic', 'a', '--hub', hub.url, '--key', 'nope', 'x'])).toEqual({
      code: 1,
      stdout: '',
      stderr: `ssehub publish: hub answered 401: ${refusal} The key given by --key was refused; check it, or pass another with --key <key>.\n`,
    })
    const fromEnv = await publish(['--topic', 'a', '--hub', hub.url, 'x'], {
      SSEHUB_PUBLISH_KEY: 'nope',
    })
    expect(fromEnv.stderr).toContain('The key given by $SSEHUB_PUBLISH_KEY was refused')
  })

  it('prints the network cause when the hub cannot be reached', async () => {
    const port = await closedPort()
    expect(
      await publish([
        '--topic',
        'a',
        '--hub',
        `http://127.0.0.1:${port}`,
        '--key',
        KEY,
        '--attempts',
        '1',
        'x',
      ]),
    ).toEqual({
      code: 1,
      stdout: '',
      stderr: `ssehub publish: cannot reach http://127.0.0.1:${port}/publish: ECONNREFUSED 127.0.0.1:${port}\n`,
    })
  })

  it('names the cause of each kind of fetch failure', () => {
    const failed = (cause: unknown) => Object.assign(new TypeError('fetch failed'), { cause })
    const refused = (address: string) =>
      Object.assign(new Error(`connect ECONNREFUSED ${address}`), { code: 'ECONNREFUSED' })
    expect(networkCause(failed(refused('127.0.0.1:8080')))).toBe('ECONNREFUSED 127.0.0.1:8080')
    expect(
      networkCause(
        failed(
          Object.assign(new Error('getaddrinfo ENOTFOUND hub.invalid'), { code: 'ENOTFOUND' }),
        ),
      ),
    ).toBe('ENOTFOUND hub.invalid')
    // localhost tried on ::1 and 127.0.0.1: both addresses.
    const both = Object.assign(
      new AggregateError([refused('::1:8080'), refused('127.0.0.1:8080')]),
      {
        code: 'ECONNREFUSED',
      },
    )
    expect(networkCause(failed(both))).toBe('ECONNREFUSED ::1:8080, ECONNREFUSED 127.0.0.1:8080')
    expect(
      networkCause(
        failed(
          Object.assign(new Error('Connect Timeout Error'), { code: 'UND_ERR_CONNECT_TIMEOUT' }),
        ),
      ),
    ).toBe('UND_ERR_CONNECT_TIMEOUT Connect Timeout Error')
    expect(networkCause(failed(new Error('bad port')))).toBe('bad port')
    expect(networkCause(new TypeError('fetch failed'))).toBe('fetch failed')
  })

  it('documents --key and the variable in --help', async () => {
    expect(await publish(['--help'])).toEqual({ code: 0, stdout: publishHelp, stderr: '' })
    expect(publishHelp).toMatch(/--key <key> .*\n.*\[default: \$SSEHUB_PUBLISH_KEY\]/)
  })

  it('as the built bin: publishes to a topic, a client and all, printing the event id', async () => {
    const started = await startCliHub(['--heartbeat-ms', 'off'], { SSEHUB_PUBLISH_KEY: 'k' })
    running.push(started.cli)
    const { url } = started
    const s = await openStream(`${url}/events?topic=news&clientId=u1`)
    try {
      await s.waitForText('id: ')
      const env = { SSEHUB_URL: url, SSEHUB_PUBLISH_KEY: 'k' }
      const one = runCli(['publish', '--topic', 'news', '--event', 'headline', 'hello'], env)
      expect(await one.exited).toBe(0)
      expect(one.stdout()).toMatch(/^[0-9a-z]+-1\n$/)
      const two = runCli(['publish', '--client', 'u1', '--json', '{"a":1}'], env)
      expect(await two.exited).toBe(0)
      const three = runCli(['publish', '--all', '--hub', url, '--key', 'k', 'bye'])
      expect(await three.exited).toBe(0)
      await s.waitForEvents(3)
      expect(s.events.map((e) => [e.event, e.data])).toEqual([
        ['headline', 'hello'],
        [undefined, '{"a":1}'],
        [undefined, 'bye'],
      ])
    } finally {
      s.close()
    }
  })

  it('as the built bin: one line and exit 1 when refused or unreachable; exit 2 on usage errors', async () => {
    const started = await startCliHub([], { SSEHUB_PUBLISH_KEY: 'k' })
    running.push(started.cli)
    const refused = runCli(['publish', '--topic', 'a', 'x'], { SSEHUB_URL: started.url })
    expect(await refused.exited).toBe(1)
    expect(refused.stderr()).toMatch(/^ssehub publish: hub answered 401: .*Bearer.*--key.*\n$/)
    const port = await closedPort()
    const toClosedPort = (attempts: string) =>
      runCli([
        'publish',
        '--topic',
        'a',
        '--hub',
        `http://127.0.0.1:${port}`,
        '--attempts',
        attempts,
        'x',
      ])
    const unreachable = toClosedPort('1')
    expect(await unreachable.exited).toBe(1)
    expect(unreachable.stderr()).toBe(
      `ssehub publish: cannot reach http://127.0.0.1:${port}/publish: ECONNREFUSED 127.0.0.1:${port}\n`,
    )
    // Retried (the event may land once the hub is back): a line per failed attempt, then why.
    const retried = toClosedPort('2')
    expect(await retried.exited).toBe(1)
    expect(retried.stderr()).toMatch(
      new RegExp(
        `^ssehub publish: attempt 1 of 2 failed \\(cannot reach http://127\\.0\\.0\\.1:${port}/publish: ECONNREFUSED [^)]+\\); retrying in \\d+ ms with the same idempotency key\\nssehub publish: cannot reach http://127\\.0\\.0\\.1:${port}/publish: ECONNREFUSED 127\\.0\\.0\\.1:${port} \\(after 2 attempts\\)\\n$`,
      ),
    )
    const noTarget = runCli(['publish', 'x'])
    expect(await noTarget.exited).toBe(2)
    expect(noTarget.stderr()).toBe(
      'ssehub: publish needs a target: --topic T, --client C or --all\n',
    )
  })
})
