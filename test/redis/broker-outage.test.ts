/**
 * Redis goes away under a running `ssehub serve --redis` and comes back on the same port: the
 * node says so in its log (one line each way) and `/healthz` tells the present, never a stale
 * error.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCliHub, type CliProcess } from '../helpers/cli.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

let redis: TestRedis
let cli: CliProcess | undefined
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  if (cli !== undefined && cli.child.exitCode === null) {
    cli.child.kill('SIGKILL')
    await cli.exited
  }
  await redis?.stop()
})

interface Health {
  readonly status: number
  readonly body: {
    status: string
    broker: { ok: boolean; details: Record<string, unknown> }
  }
}

async function health(url: string): Promise<Health> {
  const response = await fetch(`${url}/healthz`)
  return { status: response.status, body: (await response.json()) as Health['body'] }
}

const events = (process: CliProcess): string[] =>
  process
    .stdout()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => (JSON.parse(line) as { event: string }).event)

describe('a Redis outage under ssehub serve', () => {
  it('is logged once as broker-down and once as broker-up; /healthz is degraded with the error, then ok without it', async () => {
    const started = await startCliHub([
      '--redis',
      redis.url,
      '--redis-prefix',
      'outage:{h}:',
      '--log-format',
      'json',
    ])
    cli = started.cli
    const { url } = started
    const before = await health(url)
    expect(before.status).toBe(200)
    expect(before.body.broker.details).not.toHaveProperty('lastError')

    await redis.down()
    const degraded = await waitFor(
      async () => {
        const now = await health(url)
        return now.status === 503 && now.body.broker.details.lastError !== undefined ? now : null
      },
      '/healthz degraded',
      10_000,
    )
    expect(degraded.body).toMatchObject({ status: 'degraded', broker: { ok: false } })
    expect(degraded.body.broker.details.lastError).toEqual(expect.any(String))
    expect(Date.parse(String(degraded.body.broker.details.lastErrorAt))).toBeGreaterThan(0)
    await waitFor(() => events(cli!).includes('broker-down'), 'the broker-down line')

    await redis.up()
    const recovered = await waitFor(
      async () => {
        const now = await health(url)
        return now.status === 200 ? now : null
      },
      '/healthz ok again',
      15_000,
    )
    expect(recovered.body).toMatchObject({ status: 'ok', broker: { ok: true } })
    expect(recovered.body.broker.details).not.toHaveProperty('lastError')
    expect(recovered.body.broker.details).not.toHaveProperty('lastErrorAt')
    await waitFor(() => events(cli!).includes('broker-up'), 'the broker-up line')
    // Publishing works again.
    const published = await fetch(`${url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"topic":"a","data":"back"}',
    })
    expect(published.status).toBe(200)

    cli.child.kill('SIGTERM')
    expect(await cli.exited).toBe(0)
    const lines = cli
      .stdout()
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
    // Exactly one line each way, however many retries the outage took; nothing else went wrong.
    expect(lines.map((line) => line.event)).toEqual([
      'start',
      'broker-down',
      'broker-up',
      'shutdown',
      'stopped',
    ])
    expect(lines[1]).toMatchObject({
      level: 'warn',
      broker: 'redis',
      cause: expect.any(String) as unknown,
    })
    expect(lines[2]).toMatchObject({
      level: 'info',
      broker: 'redis',
      downMs: expect.any(Number) as unknown,
    })
    expect(lines[2]!.msg).toMatch(/^broker back \(redis\) after \d+\.\d s$/)
  })
})
