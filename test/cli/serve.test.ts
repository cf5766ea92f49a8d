import { afterEach, describe, expect, it } from 'vitest'
import { openStream } from '../helpers/raw-stream.js'
import { killAll, runCli, startCliHub, type CliProcess } from '../helpers/cli.js'

const running: CliProcess[] = []
afterEach(async () => {
  await killAll(running)
})

async function hub(args: string[] = [], env: Record<string, string> = {}) {
  const started = await startCliHub(args, env)
  running.push(started.cli)
  return started
}

describe('ssehub serve', () => {
  it('serves the API, and shuts down gracefully on SIGTERM: streams end, exit 0', async () => {
    const { url, cli } = await hub(['--heartbeat-ms', 'off'])
    // One text log line: time, level, the address scripts grep for, then its fields.
    expect(cli.stdout()).toMatch(
      /^\d{4}-\d\d-\d\dT[\d:.]+Z info {2}ssehub listening on http:\/\/127\.0\.0\.1:\d+ \(durable broker, data in \/\S+\) event=start version=\S+ pid=\d+ url=http:\/\/127\.0\.0\.1:\d+ protocol=http\/1\.1 broker=durable dataDir=\/\S+ node=\S+:\d+ auth=open maxConnections=10000 [^\n]*\n$/,
    )
    const s = await openStream(`${url}/events?topic=a`)
    await s.waitForText('id: ')
    cli.child.kill('SIGTERM')
    await s.ended
    expect(await cli.exited).toBe(0)
  })

  it('reads options from SSEHUB_* env vars; a flag wins over the variable', async () => {
    const { url } = await hub(['--retry-ms', '1234'], {
      SSEHUB_RETRY_MS: '999',
      SSEHUB_PUBLISH_KEY: 'k',
    })
    const s = await openStream(`${url}/events?topic=a`)
    await s.waitForText('retry: 1234\n\n')
    const response = await fetch(`${url}/publish`, {
      method: 'POST',
      body: new URLSearchParams({ topic: 'a', data: 'x' }),
    })
    expect(response.status).toBe(401)
    s.close()
  })

  it('prints every option with its default and env var in --help', async () => {
    const cli = runCli(['serve', '--help'])
    expect(await cli.exited).toBe(0)
    expect(cli.stdout()).toContain('--port <value>')
    expect(cli.stdout()).toMatch(/--publish-key <value>.*SSEHUB_PUBLISH_KEY/)
    expect(cli.stdout()).toMatch(/--heartbeat-ms <value>.*default: 15000/)
    expect(cli.stdout()).toContain('--allow-anonymous-publish')
  })

  it.each([
    [['--bogus'], /unknown option --bogus/],
    [['--port', 'abc'], /--port expects/],
    [['--port'], /--port needs a value/],
    [['--overflow', 'drop'], /'reject' or 'evict'/],
    [['--heartbeat-ms', '-5'], /--heartbeat-ms expects/],
    [['--host', '0.0.0.0', '--port', '0'], /without a publish key/],
    [['nonsense'], /unknown command/],
    [
      ['--jwt-public-key', '/nonexistent.pem'],
      /--jwt-public-key: cannot read \/nonexistent.pem \(ENOENT\)/,
    ],
    [['--jwt-secret', 'short'], /32 bytes/],
    [['--redis', 'localhost:6379'], /--redis expects a URL/],
    [['--redis', 'redis://127.0.0.1:1'], /cannot reach Redis at redis:\/\/127.0.0.1:1/],
  ])('refuses %j with one line on stderr and exit 2', async (args, message) => {
    const cli = runCli(args)
    expect(await cli.exited).toBe(2)
    expect(cli.stderr()).toMatch(message)
    expect(cli.stderr().trimEnd().split('\n')).toHaveLength(1)
  })

  it('refuses a bad env var the same way', async () => {
    const cli = runCli(['serve'], { SSEHUB_MAX_CONNECTIONS: 'lots' })
    expect(await cli.exited).toBe(2)
    expect(cli.stderr()).toMatch(
      /^ssehub: SSEHUB_MAX_CONNECTIONS expects a positive integer or 'off', got "lots"\n$/,
    )
  })
})
