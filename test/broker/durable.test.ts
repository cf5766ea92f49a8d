import {
  cpSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import type { BrokerSink, Publication } from '../../src/broker/broker.js'
import {
  DURABLE_BROKER_DEFAULTS,
  DurableBroker,
  resolveDurableBrokerOptions,
  type DurableBrokerOptions,
} from '../../src/broker/durable.js'
import { MEMORY_BROKER_DEFAULTS } from '../../src/broker/memory.js'
import { waitFor } from '../helpers/wait.js'
import { describeBrokerContract, noopSink } from './contract.js'

const root = mkdtempSync(join(tmpdir(), 'ssehub-durable-'))
let dirs = 0
const newDir = (): string => join(root, `d${++dirs}`)
afterAll(() => rmSync(root, { recursive: true, force: true }))

describeBrokerContract('durable', {
  make: (options) => Promise.resolve(new DurableBroker({ dataDir: newDir(), ...options })),
})

const opened: DurableBroker[] = []
afterEach(async () => {
  for (const broker of opened.splice(0)) await broker.close()
})

/** A started broker that records what its sink gets. */
async function open(options: DurableBrokerOptions) {
  const broker = new DurableBroker(options)
  opened.push(broker)
  const delivered: Publication[] = []
  const errors: Error[] = []
  const sink: BrokerSink = {
    ...noopSink,
    publication: (p) => delivered.push(p),
    error: (e) => errors.push(e),
  }
  await broker.start(sink)
  return { broker, delivered, errors }
}

/** What a crash would leave: a copy of the folder taken while the broker has it open. */
function crashImage(dir: string): string {
  const copy = newDir()
  cpSync(dir, copy, { recursive: true })
  return copy
}

function lastSegment(dir: string): string {
  const files = readdirSync(join(dir, 'log')).sort()
  return join(dir, 'log', files[files.length - 1]!)
}

async function publishAll(broker: DurableBroker, count: number, from = 0, topic = 'a') {
  const ids: string[] = []
  for (let i = from; i < from + count; i++)
    ids.push((await broker.publish({ keys: [topic], data: `e${i}` })).id)
  return ids
}

describe('DurableBroker', () => {
  it('keeps history, ids and the epoch across a clean restart', async () => {
    const dataDir = newDir()
    const first = await open({ dataDir })
    const ids = await publishAll(first.broker, 5)
    const epoch = first.broker.epoch
    await first.broker.close()
    const second = await open({ dataDir })
    expect(second.broker.epoch).toBe(epoch)
    const resume = await second.broker.resume(['a'], ids[1])
    expect(resume.reset).toBeNull()
    expect(resume.replay.map((r) => [r.id, r.publication.data])).toEqual(
      [2, 3, 4].map((i) => [ids[i], `e${i}`]),
    )
    const next = await second.broker.publish({ keys: ['a'], data: 'e5' })
    expect(next.id).toBe(`${epoch}-6`)
  })

  it('knows its idempotency keys again after a crash: a retry returns the first id', async () => {
    const dataDir = newDir()
    const { broker } = await open({ dataDir })
    const first = await broker.publish({ keys: ['a'], data: 'once', idempotencyKey: 'k-1' })
    await publishAll(broker, 3)
    const after = await open({ dataDir: crashImage(dataDir) })
    const retry = await after.broker.publish({ keys: ['a'], data: 'once', idempotencyKey: 'k-1' })
    expect(retry).toMatchObject({ id: first.id, duplicate: true })
    await expect(
      after.broker.publish({ keys: ['a'], data: 'other', idempotencyKey: 'k-1' }),
    ).rejects.toMatchObject({ code: 'ERR_SSE_CONFLICT' })
    expect(after.delivered).toEqual([])
  })

  it('after a crash, resumes exactly from any acknowledged id (no reset, no duplicate)', async () => {
    const dataDir = newDir()
    const { broker } = await open({ dataDir })
    const ids = await publishAll(broker, 50)
    const image = crashImage(dataDir)
    const after = await open({ dataDir: image })
    for (const [index, id] of ids.entries()) {
      const resume = await after.broker.resume(['a'], id)
      expect(resume.reset).toBeNull()
      expect(resume.replay.map((r) => r.publication.data)).toEqual(
        Array.from({ length: 49 - index }, (_, i) => `e${index + 1 + i}`),
      )
    }
    expect(after.errors).toEqual([])
  })

  it('delivers and acknowledges a batch only once it is synced, in order, in one write', async () => {
    const { broker, delivered } = await open({ dataDir: newDir() })
    const published = await Promise.all(
      Array.from({ length: 100 }, (_, i) => broker.publish({ keys: ['a'], data: String(i) })),
    )
    expect(delivered.map((p) => p.data)).toEqual(published.map((p) => p.data))
    expect(new Set(published.map((p) => p.id)).size).toBe(100)
  })

  it.each([
    ['a flipped byte', (file: string) => flipByte(file, statSync(file).size - 3)],
    ['a record cut in the middle', (file: string) => truncateSync(file, statSync(file).size - 5)],
    ['a torn header', (file: string) => appendBytes(file, Buffer.from([9, 0, 0]))],
  ])('cuts %s at the tail, bumps the epoch and resets ids beyond it', async (_, damage) => {
    const dataDir = newDir()
    const { broker } = await open({ dataDir })
    const ids = await publishAll(broker, 10)
    const image = crashImage(dataDir)
    damage(lastSegment(image))
    const after = await open({ dataDir: image })
    const torn = _ !== 'a torn header'
    const lastKept = torn ? 8 : 9 // index of the last intact event
    expect(after.errors.map((e) => e.message).join('')).toMatch(
      /had a bad tail \((checksum mismatch|torn record).* get a reset/,
    )
    expect(after.broker.epoch).not.toBe(broker.epoch)
    // Ids up to the cut resume exactly; the id beyond it (if any was cut) gets a reset.
    const before = await after.broker.resume(['a'], ids[lastKept - 1])
    expect(before.reset).toBeNull()
    expect(before.replay.map((r) => [r.id, r.publication.data])).toEqual([
      [ids[lastKept], `e${lastKept}`],
    ])
    if (torn) {
      const beyond = await after.broker.resume(['a'], ids[9])
      expect(beyond.reset?.reason).toBe('epoch')
    }
    // New events continue in the new epoch; the id beyond the cut never names one silently.
    const next = await after.broker.publish({ keys: ['a'], data: 'new' })
    expect(next.id).toBe(`${after.broker.epoch}-${lastKept + 2}`)
    if (torn) expect((await after.broker.resume(['a'], ids[9])).reset?.reason).toBe('epoch')
    const live = await after.broker.resume(['a'], next.id)
    expect(live.reset).toBeNull()
  })

  it('keeps finished topics finished across a restart, also once their segment is deleted', async () => {
    const dataDir = newDir()
    const { broker } = await open({ dataDir, historyMaxEvents: 5, segmentBytes: 200 })
    const final = await broker.publish({ keys: ['job'], data: 'done', close: true })
    await publishAll(broker, 40, 0, 'other')
    await broker.close()
    expect(JSON.parse(readFileSync(join(dataDir, 'ended.json'), 'utf8'))).toHaveLength(1)
    expect(readdirSync(join(dataDir, 'log')).length).toBeLessThan(10)
    const after = await open({ dataDir, historyMaxEvents: 5, segmentBytes: 200 })
    const fresh = await after.broker.resume(['job'], undefined)
    expect(fresh.replay.map((r) => [r.publication.data, r.publication.close])).toEqual([
      ['done', true],
    ])
    expect([...(await after.broker.resume(['job'], final.id)).ended]).toEqual([])
    const seen = await after.broker.resume(['job', 'other'], after.broker.positionId(41))
    expect([...seen.ended]).toEqual(['job'])
  })

  it('bounds the files by historyMaxBytes and deletes whole segments in the background', async () => {
    const dataDir = newDir()
    const { broker } = await open({
      dataDir,
      historyMaxEvents: 1_000_000,
      historyMaxBytes: 20_000,
      segmentBytes: 4_000,
    })
    for (let i = 0; i < 40; i++)
      await Promise.all(
        Array.from({ length: 10 }, () => broker.publish({ keys: ['a'], data: 'x'.repeat(100) })),
      )
    expect(broker.health().details!.historyBytes).toBeLessThanOrEqual(20_000)
    // The files: the history, plus at most the start of its first segment (and the last batch).
    const fileBytes = () =>
      readdirSync(join(dataDir, 'log')).reduce(
        (sum, file) => sum + statSync(join(dataDir, 'log', file)).size,
        0,
      )
    await waitFor(() => fileBytes() <= 20_000 + 4_000 + 10 * 140, 'old segments to be deleted')
  })

  it("under fsync 'never', an unclean close in another boot of the OS bumps the epoch", async () => {
    const dataDir = newDir()
    const { broker } = await open({ dataDir, fsync: 'never' })
    const ids = await publishAll(broker, 3)
    const image = crashImage(dataDir)
    const metaPath = join(image, 'meta.json')
    const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as Record<string, unknown>
    writeFileSync(metaPath, JSON.stringify({ ...meta, bootId: 'another-boot' }))
    const after = await open({ dataDir: image, fsync: 'never' })
    expect(after.broker.epoch).not.toBe(broker.epoch)
    expect((await after.broker.resume(['a'], ids[2])).reset).toBeNull()
    expect((await after.broker.resume(['a'], ids[1])).replay).toHaveLength(1)
    // The same boot (a process crash): nothing the OS held is lost, the epoch stays.
    const processCrash = crashImage(dataDir)
    const same = await open({ dataDir: processCrash, fsync: 'never' })
    expect(same.broker.epoch).toBe(broker.epoch)
  })

  it('refuses a folder that another broker holds', async () => {
    const dataDir = newDir()
    await open({ dataDir })
    const second = new DurableBroker({ dataDir })
    await expect(second.start(noopSink)).rejects.toThrow(/in use by another broker/)
  })

  it('validates its options; history defaults are the memory broker’s', () => {
    expect(() => new DurableBroker({ dataDir: '' })).toThrow(/`dataDir`/)
    expect(() => new DurableBroker({ dataDir: 'x', fsync: 'sometimes' as 'always' })).toThrow(
      /Expected `fsync` to be 'always' or 'never'/,
    )
    expect(() => new DurableBroker({ dataDir: 'x', historyMaxBytes: 0 })).toThrow(
      /`historyMaxBytes`/,
    )
    expect(Object.isFrozen(DURABLE_BROKER_DEFAULTS)).toBe(true)
    const { dataDir, ...rest } = resolveDurableBrokerOptions({ dataDir: 'x' })
    expect(dataDir).toBe('x')
    expect(rest).toEqual(DURABLE_BROKER_DEFAULTS)
    for (const key of Object.keys(
      MEMORY_BROKER_DEFAULTS,
    ) as (keyof typeof MEMORY_BROKER_DEFAULTS)[])
      expect(DURABLE_BROKER_DEFAULTS[key]).toBe(MEMORY_BROKER_DEFAULTS[key])
  })
})

function flipByte(file: string, offset: number): void {
  const bytes = readFileSync(file)
  bytes[offset] = bytes[offset]! ^ 0xff
  writeFileSync(file, bytes)
}

function appendBytes(file: string, extra: Buffer): void {
  writeFileSync(file, Buffer.concat([readFileSync(file), extra]))
}
