import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { deadUrl } from '../client/track.js'
import { runCli } from '../helpers/cli.js'
import { startSseTestServer, type SseTestServer } from '../helpers/sse-test-server.js'
import { waitFor } from '../helpers/wait.js'

/** The real binary (`node dist/cli/main.js listen ...`; `npm test` builds first). */
let server: SseTestServer

beforeEach(async () => {
  server = await startSseTestServer()
})

afterEach(async () => {
  await server.close()
})

describe('ssehub listen (the binary)', () => {
  it('prints one JSON line per event and exits 0 after --max-events', async () => {
    const cli = runCli(['listen', `${server.url}/counter`, '--json', '--max-events', '4'])
    expect(await cli.exited).toBe(0)
    expect(cli.stdout()).toBe(
      [1, 2, 3, 4].map((n) => `{"type":"message","data":"${n}","lastEventId":"${n}"}\n`).join(''),
    )
    expect(cli.stderr()).toBe('')
  })

  it('exits 0 on 204, 1 with one line on 500 and on a wrong Content-Type, 2 on bad usage', async () => {
    const noContent = runCli(['listen', `${server.url}/status/204`])
    expect(await noContent.exited).toBe(0)
    const failed = runCli(['listen', `${server.url}/status/500`])
    expect(await failed.exited).toBe(1)
    expect(failed.stderr()).toBe(
      `ssehub listen: server answered 500 Internal Server Error for ${server.url}/status/500\n`,
    )
    const wrongType = runCli(['listen', `${server.url}/wrong-type`])
    expect(await wrongType.exited).toBe(1)
    expect(wrongType.stderr().split('\n')).toHaveLength(2)
    const usage = runCli(['listen', '--max-events', 'x', `${server.url}/counter`])
    expect(await usage.exited).toBe(2)
    expect(usage.stderr().split('\n')).toHaveLength(2)
  })

  it('an unreachable URL: one stderr line per failed attempt, exit 1 after --max-attempts', async () => {
    const url = await deadUrl()
    const port = new URL(url).port
    const refused = `Connection to ${url} failed: fetch failed (connect ECONNREFUSED 127.0.0.1:${port})`
    const cli = runCli(['listen', url, '--max-attempts', '1'])
    expect(await cli.exited).toBe(1)
    expect(cli.stderr()).toBe(
      `ssehub listen: ${refused}; retry 1 of 1 in 1000 ms\n` +
        `ssehub listen: gave up after 1 reconnection attempt (--max-attempts 1): ${refused}\n`,
    )
    expect(cli.stdout()).toBe('')
  })

  it('exits 1 with one line on 205 (only 200 opens a stream); --help lists --max-attempts', async () => {
    const reset = runCli(['listen', `${server.url}/status/205?sse=1`])
    expect(await reset.exited).toBe(1)
    expect(reset.stderr()).toBe(
      `ssehub listen: server answered 205 Reset Content for ${server.url}/status/205\n`,
    )
    const help = runCli(['listen', '--help'])
    expect(await help.exited).toBe(0)
    expect(help.stdout()).toContain('--max-attempts N')
  })

  it('exits 0 on SIGINT', async () => {
    const cli = runCli(['listen', `${server.url}/silent`, '--json'])
    await waitFor(() => cli.stdout() !== '', 'the first event', 10_000)
    cli.child.kill('SIGINT')
    expect(await cli.exited).toBe(0)
    expect(cli.stdout()).toBe('{"type":"message","data":"hit 1","lastEventId":"1"}\n')
  })
})
