/**
 * The durable store as `ssehub serve` runs it by default, through real processes: `kill -9` in
 * the middle of a publish load, a corrupted tail, a full disk. bench/durable/crash.ts runs the
 * kill round 20 times; here it runs 3 times.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import {
  binPath,
  killAll,
  killCli,
  spawnCli,
  startCliHub,
  type CliProcess,
} from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'
import { killRestartRound } from '../helpers/kill-restart.js'
import { openStream } from '../helpers/raw-stream.js'

const root = mkdtempSync(join(tmpdir(), 'ssehub-durable-cli-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))
let dirs = 0
const newDir = (): string => join(root, `d${++dirs}`)

const running: CliProcess[] = []
afterEach(async () => {
  await killAll(running)
})

async function hub(args: string[]) {
  const started = await startCliHub(args)
  running.push(started.cli)
  return started
}

async function publish(url: string, data: string): Promise<Response> {
  return fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ topic: 't', data }),
  })
}

describe('ssehub serve keeps history across kill -9 (durable store, defaults)', () => {
  it.each([1, 2, 3])(
    'round %i: every acknowledged event reaches each of 100 subscribers once, in order, with no reset',
    async () => {
      const result = await killRestartRound({
        args: ['--data-dir', newDir()],
        subscribers: 100,
        publishesPerSecond: 400,
        // A random moment: after 20 to 300 acknowledged publishes.
        killAfterAcks: 20 + Math.floor(Math.random() * 280),
        afterAcks: 100,
      })
      expect(result.problems).toEqual([])
      expect(result.resets).toBe(0)
      expect(result.delivered).toBeGreaterThanOrEqual(result.acknowledged)
    },
    60_000,
  )

  it('negative control: with --store memory the same round gives resets', async () => {
    const result = await killRestartRound({
      args: ['--store', 'memory'],
      subscribers: 10,
      publishesPerSecond: 400,
      killAfterAcks: 50,
      afterAcks: 50,
    })
    expect(result.resets).toBe(10)
    expect(result.problems.some((problem) => /reset/.test(problem))).toBe(true)
  }, 60_000)
})

describe('ssehub serve with its defaults (npm start)', () => {
  it('keeps history in ./ssehub-data of the working directory across a restart', async () => {
    const cwd = newDir()
    mkdirSync(cwd)
    const start = async () => {
      // SSEHUB_DATA_DIR empty: unset, so the default folder is used.
      const cli = spawnCli(process.execPath, [binPath, 'serve', '--port', '0'], {
        cwd,
        env: { SSEHUB_DATA_DIR: '' },
      })
      running.push(cli)
      const match = await waitFor(() => /listening on (http:\/\/\S+)/.exec(cli.stdout()), 'listen')
      return { cli, url: match[1]! }
    }
    const first = await start()
    expect(first.cli.stdout()).toContain(`data in ${join(cwd, 'ssehub-data')})`)
    const { id } = (await (await publish(first.url, 'kept')).json()) as { id: string }
    first.cli.child.kill('SIGTERM')
    expect(await first.cli.exited).toBe(0)
    const second = await start()
    const [epoch] = id.split('-')
    const stream = await openStream(`${second.url}/events?topic=t`, {
      'last-event-id': `${epoch}-0`,
    })
    await stream.waitForText(`id: ${id}\ndata: kept\n\n`)
    stream.close()
  })
})

describe('ssehub serve with a damaged or full store', () => {
  it('a corrupted tail (bytes flipped, or a record cut) is cut and reported: ids beyond it get a reset, ids before it resume', async () => {
    for (const damage of ['flip', 'truncate'] as const) {
      const dataDir = newDir()
      const first = await hub(['--data-dir', dataDir])
      const ids: string[] = []
      for (let i = 0; i < 10; i++)
        ids.push(((await (await publish(first.url, `e${i}`)).json()) as { id: string }).id)
      await killCli(first.cli)
      const log = join(dataDir, 'log')
      const segment = join(log, readdirSync(log).sort().pop()!)
      const bytes = readFileSync(segment)
      if (damage === 'flip') {
        bytes.writeUInt8(bytes.readUInt8(bytes.length - 2) ^ 0xff, bytes.length - 2)
        writeFileSync(segment, bytes)
      } else {
        writeFileSync(segment, bytes.subarray(0, bytes.length - 7))
      }
      const second = await hub(['--data-dir', dataDir])
      // Logged (an error line on stdout), once, as the store opens.
      await waitFor(() => second.cli.stdout().includes('bad tail'), 'the bad tail logged')
      expect(second.cli.stdout()).toMatch(
        /^\S+ error The durable store in \S+ had a bad tail \((checksum mismatch|torn record.*) in \d+\.seg at byte \d+\): \d+ bytes were cut; ids of epoch \w+ after \w+-9 get a reset, and new events have epoch \w+\.( |\n)/m,
      )
      // Beyond the cut: a reset, never a silent gap.
      const beyond = await openStream(`${second.url}/events?topic=t`, { 'last-event-id': ids[9]! })
      await beyond.waitForText('event: ssehub.reset\n')
      expect(beyond.text()).toContain('"reason":"epoch"')
      beyond.close()
      // Before it: exactly the rest.
      const before = await openStream(`${second.url}/events?topic=t`, { 'last-event-id': ids[7]! })
      await before.waitForText(`id: ${ids[8]}\ndata: e8\n\n`)
      expect(before.text()).not.toContain('ssehub.reset')
      before.close()
    }
  }, 30_000)

  // A real full disk: a 1 MiB tmpfs mounted by the test (we run as root). Without the right to
  // mount, the test says so and is skipped.
  const mountPoint = join(root, 'full')
  mkdirSync(mountPoint, { recursive: true })
  const canMount =
    spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]).status === 0
  if (!canMount)
    console.warn('durable-restart.test.ts: cannot mount a tmpfs here; full-disk test skipped')
  afterAll(() => {
    if (canMount) execFileSync('umount', ['-l', mountPoint])
  })

  it.skipIf(!canMount)(
    'a full disk answers 503 with a clear error, corrupts nothing, and publishing recovers when space returns',
    async () => {
      const filler = join(mountPoint, 'filler')
      writeFileSync(filler, Buffer.alloc(512 * 1024))
      const dataDir = join(mountPoint, 'data')
      const { url, cli } = await hub(['--data-dir', dataDir])
      const big = 'x'.repeat(16 * 1024)
      const acknowledged: string[] = []
      let refused: Response | null = null
      for (let i = 0; i < 100 && refused === null; i++) {
        const response = await publish(url, `${i}:${big}`)
        if (response.status === 200) acknowledged.push(`${i}:${big}`)
        else refused = response
      }
      expect(refused?.status).toBe(503)
      const body = (await refused!.json()) as { error: { code: string; message: string } }
      expect(body.error.code).toBe('ERR_SSE_BROKER_UNAVAILABLE')
      expect(body.error.message).toMatch(
        /^The durable store in \S+ is full \(ENOSPC: no space left on device.*\): the event was not stored\. Free space on that disk; publishing works again as soon as there is room\.$/,
      )
      expect((await fetch(`${url}/healthz`)).status).toBe(503)
      // Space returns: the next publish is taken, and health is back.
      rmSync(filler)
      const after = await publish(url, 'after')
      expect(after.status).toBe(200)
      expect((await fetch(`${url}/healthz`)).status).toBe(200)
      // Nothing was corrupted: a restart reads back every acknowledged event, without a cut.
      await killCli(cli)
      const again = await hub(['--data-dir', dataDir])
      expect(again.cli.stderr()).toBe('')
      const replay = await openStream(`${again.url}/events?topic=t`, {
        'last-event-id': `${/"epoch":"(\w+)"/.exec(await (await fetch(`${again.url}/healthz`)).text())![1]}-0`,
      })
      await replay.waitForText('data: after\n\n')
      const data = [...replay.text().matchAll(/^data: (.*)$/gm)].map((m) => m[1])
      expect(data).toEqual([...acknowledged, 'after'])
      replay.close()
      expect(statSync(dataDir).isDirectory()).toBe(true)
    },
    30_000,
  )
})
