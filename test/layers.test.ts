import { readFileSync, readdirSync } from 'node:fs'
import { join, relative } from 'node:path'
import { describe, expect, it } from 'vitest'

// The layers of src/ and what each may import (README, "Layout"). A test, so that a shortcut
// across layers fails here instead of in a review.
const allowed: Record<string, readonly string[]> = {
  wire: [],
  connection: ['wire'],
  broker: ['wire'],
  hub: ['connection', 'broker', 'wire'],
  server: ['relay', 'hub', 'connection', 'broker', 'wire'],
  client: ['wire'],
  relay: ['client', 'hub', 'connection', 'wire'],
  showcase: ['server', 'relay', 'client', 'hub', 'connection', 'broker', 'wire'],
  bench: ['server', 'hub', 'connection', 'broker', 'wire'],
  cli: ['server', 'showcase', 'relay', 'client', 'bench', 'hub', 'connection', 'broker', 'wire'],
}
// Files at the root of src/ that every layer may use.
const shared = new Set(['errors.ts', 'options.ts', 'closest.ts'])

const root = new URL('../src/', import.meta.url).pathname

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? files(join(dir, entry.name))
      : entry.name.endsWith('.ts')
        ? [join(dir, entry.name)]
        : [],
  )
}

describe('layers', () => {
  it('no file in src/ imports a layer above its own', () => {
    const violations: string[] = []
    for (const file of files(root)) {
      const [layer, ...rest] = relative(root, file).split('/')
      if (rest.length === 0) continue // src/index.ts, errors.ts, options.ts
      const may = allowed[layer!]
      expect(may, `${layer} is a known layer`).toBeDefined()
      for (const match of readFileSync(file, 'utf8').matchAll(/from '(\.\.\/[^']+)'/g)) {
        const target = relative(root, join(file, '..', match[1]!))
        const [other, ...inner] = target.split('/')
        if (inner.length === 0 && shared.has(other!.replace(/\.js$/, '.ts'))) continue
        if (other !== layer && !may!.includes(other!))
          violations.push(`${relative(root, file)} imports ${target}`)
      }
    }
    expect(violations).toEqual([])
  })
})
