import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// npm renders the README against the repository URL, not the package: a relative link to docs/
// or examples/ (which the package does not ship) is dead there. So links to files of the
// repository are absolute, and this keeps them pointing at files that exist.
const repo = fileURLToPath(new URL('../../', import.meta.url))
const readme = readFileSync(new URL('README.md', `file://${repo}`), 'utf8')
const targets = [...readme.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!)
const ours =
  /^https:\/\/(?:github\.com\/ssehub\/ssehub\/(?:blob|tree)\/main|raw\.githubusercontent\.com\/ssehub\/ssehub\/main)\/([^#?]+)/

describe('README links', () => {
  it('are absolute (no link that npm would resolve against a missing path)', () => {
    expect(targets.filter((t) => !/^(https?:|mailto:|#)/.test(t))).toEqual([])
  })

  it('name files and folders that exist in the repository', () => {
    const repoLinks = targets.flatMap((t) => ours.exec(t)?.slice(1, 2) ?? [])
    expect(repoLinks.length).toBeGreaterThan(5)
    expect(repoLinks.filter((path) => !existsSync(`${repo}${path}`))).toEqual([])
  })

  it('use the repository URL of package.json', () => {
    const pkg = JSON.parse(readFileSync(`${repo}package.json`, 'utf8')) as {
      repository: { url: string }
    }
    expect(pkg.repository.url).toBe('git+https://github.com/ssehub/ssehub.git')
    const elsewhere = targets.filter(
      (t) => /github(usercontent)?\.com\/ssehub\//.test(t) && ours.exec(t) === null,
    )
    expect(elsewhere).toEqual([])
  })
})
