import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Connection } from '../../src/connection/connection.js'
import { drainConnections, drainSpreadMs } from '../../src/hub/drain.js'

interface FakeConnection {
  state: 'opening' | 'open' | 'closed'
  frames: string[]
  endedAt: number | null
  writeFrame(frame: Buffer): boolean
  end(reason: string): void
}

function fakeConnections(count: number, state: 'opening' | 'open' = 'open'): FakeConnection[] {
  return Array.from({ length: count }, () => {
    const connection: FakeConnection = {
      state,
      frames: [],
      endedAt: null,
      writeFrame(frame) {
        this.frames.push(frame.toString())
        return true
      },
      end(reason) {
        expect(reason).toBe('shutdown')
        if (this.state === 'closed') return
        this.state = 'closed'
        this.endedAt = Date.now()
      },
    }
    return connection
  })
}

const asConnections = (fakes: FakeConnection[]) => fakes as unknown as Connection[]

describe('drainConnections', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 })
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('keeps a margin of a fifth of the budget, at most 1 s', () => {
    expect(drainSpreadMs(5_000)).toBe(4_000)
    expect(drainSpreadMs(1_000)).toBe(800)
    expect(drainSpreadMs(30_000)).toBe(29_000)
    expect(drainSpreadMs(0)).toBe(0)
  })

  it('ends 5,000 streams in 80 waves, 50 ms apart, each told retry: <ms within the spread> first', async () => {
    const fakes = fakeConnections(5_000)
    let seed = 1
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646
    const done = drainConnections(asConnections(fakes), { spreadMs: 4_000, random })
    // The first wave goes at once.
    expect(fakes.filter((f) => f.state === 'closed')).toHaveLength(62)
    await vi.advanceTimersByTimeAsync(4_000)
    await done
    const waves = new Map<number, number>()
    for (const f of fakes) waves.set(f.endedAt!, (waves.get(f.endedAt!) ?? 0) + 1)
    expect([...waves.keys()].sort((a, b) => a - b)).toEqual(
      Array.from({ length: 80 }, (_, i) => i * 50),
    )
    expect(Math.min(...waves.values())).toBeGreaterThanOrEqual(62)
    expect(Math.max(...waves.values())).toBeLessThanOrEqual(63)
    for (const f of fakes) {
      expect(f.frames).toHaveLength(1)
      expect(f.frames[0]).toMatch(/^retry: \d+\n\n$/)
      expect(Number(/\d+/.exec(f.frames[0]!)![0])).toBeLessThan(4_000)
    }
  })

  it('ends a few streams at once, skips closed ones, and sends no retry to a stream not open yet', async () => {
    const open = fakeConnections(5)
    const opening = fakeConnections(2, 'opening')
    open[0]!.state = 'closed'
    await drainConnections(asConnections([...open, ...opening]), { spreadMs: 4_000 })
    expect(open.slice(1).every((f) => f.endedAt === 0 && f.frames.length === 1)).toBe(true)
    expect(open[0]!.frames).toEqual([])
    expect(opening.every((f) => f.state === 'closed' && f.frames.length === 0)).toBe(true)
  })

  it('with spreadMs 0 ends every stream now, with no retry', async () => {
    const fakes = fakeConnections(100)
    await drainConnections(asConnections(fakes), { spreadMs: 0 })
    expect(fakes.every((f) => f.state === 'closed' && f.frames.length === 0)).toBe(true)
  })
})
