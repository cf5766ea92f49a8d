/**
 * One configuration surface: every flag's variable is read (`--redis` is `SSEHUB_REDIS_URL`), and
 * an unknown flag or `SSEHUB_*` variable is refused with the closest valid name, never ignored.
 */
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { OTHER_ENV_VARS, envOf, serveSpecs } from '../../src/cli/serve-flags.js'
import { parseServeArgs } from '../../src/cli/serve-options.js'
import { runCli } from '../helpers/cli.js'

const root = new URL('../../', import.meta.url)

describe('serve configuration', () => {
  it('takes the Redis URL from SSEHUB_REDIS_URL, as docs/deployment.md says', () => {
    const config = parseServeArgs([], { SSEHUB_REDIS_URL: 'redis://10.0.0.5:6379/0' })
    expect(config.redisUrl).toBe('redis://10.0.0.5:6379/0')
    expect(readFileSync(new URL('docs/deployment.md', root), 'utf8')).toContain('SSEHUB_REDIS_URL')
  })

  it.each([
    [
      { SSEHUB_REDSI_URL: 'redis://x' },
      'unknown variable SSEHUB_REDSI_URL; did you mean SSEHUB_REDIS_URL?',
    ],
    // The old name is an error naming the new one, not a silent memory broker.
    [
      { SSEHUB_REDIS: 'redis://x' },
      'unknown variable SSEHUB_REDIS; did you mean SSEHUB_REDIS_URL?',
    ],
    [{ SSEHUB_PORTT: '1' }, 'unknown variable SSEHUB_PORTT; did you mean SSEHUB_PORT?'],
    [{ SSEHUB_VERBOSE: '1' }, 'unknown variable SSEHUB_VERBOSE; see ssehub --help'],
  ])('refuses %j', (env, message) => {
    expect(() => parseServeArgs([], env)).toThrow(message)
  })

  it.each([
    [['--prot', '1'], 'unknown option --prot; did you mean --port?'],
    [['--publish-rat=5'], 'unknown option --publish-rat; did you mean --publish-rate?'],
    [['--hepl'], 'unknown option --hepl; did you mean --help?'],
    [['--bogus'], 'unknown option --bogus; see ssehub --help'],
  ])('refuses %j', (args, message) => {
    expect(() => parseServeArgs(args, {})).toThrow(message)
  })

  it("accepts the other commands' and the tooling's SSEHUB_* variables", () => {
    const env = Object.fromEntries([...OTHER_ENV_VARS].map((name) => [name, '1']))
    expect(() => parseServeArgs([], env)).not.toThrow()
  })

  it('knows every SSEHUB_* variable the repository uses', () => {
    const files = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' })
      .split('\n')
      .filter((file) => /\.(ts|js|mjs|md|json|ya?ml|sh|conf)$/.test(file))
      // These two spell wrong names on purpose.
      .filter((file) => !['test/cli/config-surface.test.ts', 'test/closest.test.ts'].includes(file))
    const used = new Set<string>()
    for (const file of files) {
      let text: string
      try {
        text = readFileSync(new URL(file, root), 'utf8')
      } catch {
        continue // listed but deleted in the working tree
      }
      // A name quoted in an error ("unknown variable SSEHUB_X") is an example of a wrong one.
      for (const match of text.matchAll(/(?<!unknown variable )\bSSEHUB_[A-Z0-9_]*[A-Z0-9]\b/g))
        used.add(match[0])
    }
    const known = new Set([...serveSpecs.map(envOf), ...OTHER_ENV_VARS])
    expect([...used].filter((name) => !known.has(name))).toEqual([])
  })

  it.each([
    [['serve', '--prot', '8080'], {}, 'ssehub: unknown option --prot; did you mean --port?\n'],
    [
      ['serve'],
      { SSEHUB_REDSI_URL: 'redis://127.0.0.1:6379' },
      'ssehub: unknown variable SSEHUB_REDSI_URL; did you mean SSEHUB_REDIS_URL?\n',
    ],
    [['serev'], {}, 'ssehub: unknown command "serev"; did you mean serve?\n'],
  ])('the CLI refuses %j %j with one line and exit 2', async (args, env, stderr) => {
    const cli = runCli(args, env)
    expect(await cli.exited).toBe(2)
    expect(cli.stderr()).toBe(stderr)
  })

  it('the CLI uses SSEHUB_REDIS_URL: it tries that Redis', async () => {
    const cli = runCli(['serve', '--port', '0'], { SSEHUB_REDIS_URL: 'redis://127.0.0.1:1' })
    expect(await cli.exited).toBe(2)
    expect(cli.stderr()).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/)
  })
})
