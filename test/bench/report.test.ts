import { describe, expect, it } from 'vitest'
import { medianOf } from '../../src/bench/report.js'
import type { PhaseResult } from '../../src/bench/scenarios.js'

function row(run: number, delivered: number, cpu: number | null, missed: number): PhaseResult {
  return {
    server: 'ssehub',
    scenario: 'one-to-one',
    subscribers: 10,
    mode: 'max',
    offeredEventsPerSecond: null,
    published: delivered,
    publishFailures: 0,
    publishesPerSecond: delivered,
    delivered,
    expected: delivered + missed,
    missed,
    deliveredPerSecond: delivered,
    latency: { samples: delivered, p50Ms: run, p90Ms: 2 * run, p99Ms: 3 * run, maxMs: 4 * run },
    publishRtt: { samples: delivered, p50Ms: 0, p90Ms: 0, p99Ms: 0, maxMs: 0 },
    serverCpuPercent: 90,
    serverCpuUsPerEvent: cpu,
    generatorCpuPercent: 80 + run,
    serverRssGrowthBytes: null,
    closedByServer: 0,
    histogram: [run],
    run,
  }
}

describe('medianOf (the summary of --repeat rounds)', () => {
  it('takes the median of each figure, the most missed, and the median round for the rest', () => {
    const merged = medianOf([row(1, 300, 30, 0), row(2, 100, 10, 2), row(3, 200, null, 0)])
    expect(merged).toMatchObject({
      deliveredPerSecond: 200,
      publishesPerSecond: 200,
      missed: 2,
      // Rounds without a CPU figure are left out of its median: (10 + 30) / 2.
      serverCpuUsPerEvent: 20,
      generatorCpuPercent: 82,
      latency: { p50Ms: 2, p90Ms: 4, p99Ms: 6, maxMs: 8 },
      histogram: [3],
    })
    expect(merged).not.toHaveProperty('run')
  })

  it('passes one round through as it is, and has nothing for none', () => {
    const one = row(1, 100, 10, 0)
    expect(medianOf([one])).toBe(one)
    expect(medianOf([])).toBeUndefined()
  })
})
