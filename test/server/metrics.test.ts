import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { hubFixture } from '../helpers/hub-server.js'

const fixture = hubFixture()

/** `# TYPE name type` of a Prometheus text exposition: name -> type. */
function typesOf(exposition: string): Map<string, string> {
  const types = new Map<string, string>()
  for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(match[1]!, match[2]!)
  return types
}

/** The metrics docs/deployment.md lists: name -> type, from the table after `## Metrics`. */
function documented(): Map<string, string> {
  const doc = readFileSync(new URL('../../docs/deployment.md', import.meta.url), 'utf8')
  const start = doc.indexOf('\n## Metrics\n')
  expect(start, 'docs/deployment.md has a Metrics section').toBeGreaterThan(0)
  const rows = new Map<string, string>()
  for (const match of doc.slice(start).matchAll(/^\| `(ssehub_[a-z0-9_]+)` +\| (\w+) +\|/gm))
    rows.set(match[1]!, match[2]!)
  return rows
}

describe('/metrics', () => {
  it('names every metric ssehub_*, by Prometheus conventions, as docs/deployment.md lists them', async () => {
    const hub = await fixture.start()
    const response = await fetch(`${hub.url}/metrics`)
    expect(response.status).toBe(200)
    const types = typesOf(await response.text())
    expect(types.size).toBeGreaterThan(20)
    for (const [name, type] of types) {
      expect(name).toMatch(/^ssehub_[a-z0-9_]+$/)
      expect(name).not.toContain('process_process')
      if (type === 'counter') expect(name, `counter ${name}`).toMatch(/_total$/)
    }
    // The process and runtime metrics, under the one prefix.
    expect(types.get('ssehub_process_cpu_user_seconds_total')).toBe('counter')
    expect(types.has('ssehub_nodejs_eventloop_lag_seconds')).toBe(true)
    // Ours (not prom-client's process and runtime ones) are the documented ones, with their types.
    const ours = new Map([...types].filter(([name]) => !/^ssehub_(process|nodejs)_/.test(name)))
    for (const [name, type] of ours)
      if (type === 'gauge') expect(name, `gauge ${name}`).not.toMatch(/_total$/)
    expect(Object.fromEntries(documented())).toEqual(Object.fromEntries(ours))
  })
})
