import { execFile, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawnCli, type CliProcess } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'

// The package as a user gets it: `npm pack` (of the dist/ that `npm test` built first), installed
// from the tarball into a new project outside the repository, then used only through that
// project's node_modules: imports, types, and the `ssehub` bin.

const run = promisify(execFile)
const repo = fileURLToPath(new URL('../../', import.meta.url))
const tsc = join(repo, 'node_modules/typescript/bin/tsc')

/** Every subpath of `exports`, with names its module must export. */
const subpaths: Record<string, readonly string[]> = {
  ssehub: ['createHub', 'Hub', 'MemoryBroker', 'SseError', 'isSseError', 'encodeEvent'],
  'ssehub/wire': ['encodeEvent', 'createParser'],
  'ssehub/client': ['connect', 'events', 'EventSource'],
  'ssehub/redis': ['RedisBroker'],
  'ssehub/durable': ['DurableBroker', 'DURABLE_BROKER_DEFAULTS'],
  'ssehub/server': ['createHubServer'],
  'ssehub/relay': ['relay'],
  'ssehub/showcase': ['createShowcase'],
}

let dir: string
let app: string
let installed: string
let packed: { filename: string; size: number; unpackedSize: number; files: { path: string }[] }
const children: ChildProcess[] = []

beforeAll(async () => {
  if (!existsSync(join(repo, 'dist/cli/main.js')))
    throw new Error('dist/ is missing: run `npm run build` (npm test does) before this test')
  dir = mkdtempSync(join(tmpdir(), 'ssehub-pack-'))
  // --ignore-scripts: pack the dist/ that was built, without building it again here.
  const { stdout } = await run(
    'npm',
    ['pack', '--ignore-scripts', '--json', '--pack-destination', dir],
    { cwd: repo },
  )
  packed = (JSON.parse(stdout) as (typeof packed)[])[0]!
  app = join(dir, 'app')
  rmSync(app, { recursive: true, force: true })
  await run('mkdir', ['-p', app])
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'pack-test-app', private: true, type: 'module' }),
  )
  await run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, packed.filename)],
    { cwd: app },
  )
  installed = join(app, 'node_modules/ssehub')
}, 120_000)

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
})

function filesUnder(root: string): string[] {
  return readdirSync(root, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(root, join(entry.parentPath, entry.name)))
}

/** Runs the installed `ssehub` bin (node_modules/.bin, as npx would) with output collected. */
function bin(args: string[]): CliProcess {
  const cli = spawnCli(join(app, 'node_modules/.bin/ssehub'), args, { cwd: app })
  children.push(cli.child)
  return cli
}

describe('the npm package', () => {
  it('ships dist, the sources its maps name, LICENSE and README, nothing stale or test-only', () => {
    const paths = packed.files.map((f) => f.path)
    expect(paths).toContain('LICENSE')
    expect(paths).toContain('README.md')
    expect(paths).toContain('dist/bench/worker.js')
    expect(paths.filter((p) => !/^(dist|src)\//.test(p)).sort()).toEqual([
      'LICENSE',
      'README.md',
      'package.json',
    ])
    // A dist file without its source is left over from an old build: it would ship.
    const stale = paths
      .filter((p) => p.startsWith('dist/') && p.endsWith('.js'))
      .filter((p) => !paths.includes(p.replace(/^dist\//, 'src/').replace(/\.js$/, '.ts')))
    expect(stale, 'run `npm run build`, which cleans dist/').toEqual([])
    // Every source map and declaration map names files that are in the package.
    const maps = filesUnder(installed).filter((p) => p.endsWith('.map'))
    expect(maps.length).toBeGreaterThan(100)
    const missing: string[] = []
    for (const map of maps) {
      const { sources } = JSON.parse(readFileSync(join(installed, map), 'utf8')) as {
        sources: string[]
      }
      for (const source of sources) {
        const path = join(installed, dirname(map), source)
        if (!existsSync(path)) missing.push(`${map} -> ${relative(installed, path)}`)
      }
    }
    expect(missing).toEqual([])
    expect(readFileSync(join(installed, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n/)
  })

  it('has the metadata a registry and a legal review read, and README links that work on npm', () => {
    const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as Record<
      string,
      unknown
    >
    expect(pkg).toMatchObject({
      license: 'MIT',
      repository: { type: 'git', url: 'git+https://github.com/ssehub/ssehub.git' },
      homepage: 'https://github.com/ssehub/ssehub#readme',
      bugs: { url: 'https://github.com/ssehub/ssehub/issues' },
    })
    expect(pkg.keywords).toContain('server-sent-events')
    // npm renders relative links against the repository, where docs/ may not be: none here.
    const readme = readFileSync(join(installed, 'README.md'), 'utf8')
    const relativeLinks = [...readme.matchAll(/\]\(([^)\s]+)\)/g)]
      .map((m) => m[1]!)
      .filter((target) => !/^(https?:|mailto:|#)/.test(target))
    expect(relativeLinks).toEqual([])
  })

  it('has declarations that import only shipped files, node: modules and its dependencies', () => {
    // What skipLibCheck would hide in a consumer: an import a .d.ts cannot resolve becomes `any`.
    const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>
    }
    const dependencies = Object.keys(pkg.dependencies)
    const broken: string[] = []
    for (const file of filesUnder(installed).filter((p) => p.endsWith('.d.ts'))) {
      const text = readFileSync(join(installed, file), 'utf8')
        .replace(/\/\*[\s\S]*?\*\//g, '') // TSDoc examples are not imports
        .replace(/^\s*\/\/.*$/gm, '')
      for (const [, spec] of text.matchAll(/(?:from|import\()\s*['"]([^'"]+)['"]/g)) {
        if (spec!.startsWith('.')) {
          const target = join(installed, dirname(file), spec!.replace(/\.js$/, '.d.ts'))
          if (!existsSync(target)) broken.push(`${file}: ${spec}`)
        } else if (
          !spec!.startsWith('node:') &&
          !dependencies.some((dep) => spec === dep || spec!.startsWith(`${dep}/`))
        )
          broken.push(`${file}: ${spec} is not a dependency`)
      }
    }
    expect(broken).toEqual([])
  })

  it('imports every subpath of exports from the installed package, with its main names', async () => {
    const script = `
      const names = {}
      for (const spec of ${JSON.stringify(Object.keys(subpaths))})
        names[spec] = Object.keys(await import(spec))
      const pkg = (await import('ssehub/package.json', { with: { type: 'json' } })).default
      console.log(JSON.stringify({ names, pkg: { name: pkg.name, version: pkg.version } }))
    `
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
      cwd: app,
    })
    const result = JSON.parse(stdout) as {
      names: Record<string, string[]>
      pkg: { name: string; version: string }
    }
    for (const [spec, names] of Object.entries(subpaths))
      expect(result.names[spec], spec).toEqual(expect.arrayContaining([...names]))
    const ours = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
      version: string
    }
    expect(result.pkg).toEqual({ name: 'ssehub', version: ours.version })
  })

  it.each(['nodenext', 'bundler'] as const)(
    'type-checks a consumer of every subpath with moduleResolution %s',
    async (resolution) => {
      // Each name must have a real type: were it `any`, the @ts-expect-error would be unused.
      const alias = (name: string, spec: string): string => `${name}_${spec.replace(/\W/g, '_')}`
      const lines = Object.entries(subpaths).flatMap(([spec, names]) => [
        `import { ${names.map((name) => `${name} as ${alias(name, spec)}`).join(', ')} } from '${spec}'`,
        ...names.flatMap((name) => [
          '// @ts-expect-error -- a function or class is not a number (unless the type is any)',
          `export const n_${alias(name, spec)}: number = ${alias(name, spec)}`,
        ]),
      ])
      lines.push(
        "import type { HubOptions } from 'ssehub'",
        "import type { HubServerOptions } from 'ssehub/server'",
        'export const options: HubOptions = { heartbeatMs: 15_000 }',
        'export const serverOptions: HubServerOptions = {}',
        'export const hub = createHub_ssehub(options)',
      )
      const file = `check-${resolution}.ts`
      writeFileSync(join(app, file), lines.join('\n') + '\n')
      const config = `tsconfig-${resolution}.json`
      writeFileSync(
        join(app, config),
        JSON.stringify({
          compilerOptions: {
            module: resolution === 'nodenext' ? 'nodenext' : 'esnext',
            moduleResolution: resolution,
            target: 'es2022',
            lib: ['es2023', 'dom', 'dom.iterable'],
            strict: true,
            exactOptionalPropertyTypes: true,
            noEmit: true,
            // The common setting, and a fast one: the declarations' imports are checked above.
            skipLibCheck: true,
            // @types/node from the repository: the consumer's project would have its own.
            typeRoots: [join(repo, 'node_modules/@types')],
            types: ['node'],
          },
          files: [file],
        }),
      )
      const output = await run(process.execPath, [tsc, '-p', config], { cwd: app }).then(
        () => '',
        (error: { stdout?: string; message: string }) => error.stdout || error.message,
      )
      expect(output).toBe('')
    },
    60_000,
  )

  it('runs the ssehub bin: --help, serve, listen, publish, bench --url, then a clean SIGTERM exit', async () => {
    const help = bin(['--help'])
    expect(await help.exited).toBe(0)
    for (const command of ['serve', 'listen', 'publish', 'bench'])
      expect(help.stdout()).toMatch(new RegExp(`^  ${command} `, 'm'))

    const serve = bin(['serve', '--port', '0', '--host', '127.0.0.1'])
    const [, url] = await waitFor(
      () =>
        /listening on (http:\/\/\S+)/.exec(serve.stdout()) ??
        (serve.child.exitCode !== null ? Promise.reject(new Error(serve.stderr())) : null),
      'the hub to listen',
      15_000,
    )
    const health = await fetch(`${url}/healthz`)
    expect(health.status).toBe(200)

    const listen = bin(['listen', `${url}/events?topic=pack`, '--json', '--max-events', '1'])
    await waitFor(
      async () =>
        ((await (await fetch(`${url}/topics/pack`)).json()) as { subscribers: number })
          .subscribers === 1,
      'the listener to subscribe',
      10_000,
    )
    const publish = bin(['publish', '--hub', url!, '--topic', 'pack', 'hello from the tarball'])
    expect(await publish.exited, publish.stderr()).toBe(0)
    const id = publish.stdout().trim()
    expect(await listen.exited, listen.stderr()).toBe(0)
    expect(JSON.parse(listen.stdout())).toEqual({
      type: 'message',
      data: 'hello from the tarball',
      lastEventId: id,
    })

    const benchHelp = bin(['bench', '--help'])
    expect(await benchHelp.exited).toBe(0)
    expect(benchHelp.stdout()).toContain('--url URL')
    // The load generator, scenarios and report from dist/, with plain node, against that hub;
    // the output folder does not exist yet.
    const out = join(dir, 'out/a/b/capacity')
    const bench = bin([
      ...['bench', '--url', url!, '--scenarios', 'broadcast,one-to-one'],
      ...['--subscribers', '20', '--clients', '20', '--rate', '20', '--seconds', '1'],
      ...['--workers', '1', '--max-publishes', '100', '--out', out],
    ])
    expect(await bench.exited, bench.stdout() + bench.stderr()).toBe(0)
    const results = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as {
      command: string
      phases: { server: string; published: number; delivered: number; missed: number }[]
    }
    expect(results.command).toMatch(/^ssehub bench --url /)
    expect(results.phases.length).toBeGreaterThanOrEqual(3)
    for (const phase of results.phases) {
      expect(phase.server).toBe('external')
      expect(phase.published).toBeGreaterThan(0)
      expect(phase.delivered).toBeGreaterThan(0)
      expect(phase.missed).toBe(0)
    }
    expect(readFileSync(`${out}.md`, 'utf8')).toContain('# ssehub capacity benchmark')
    expect(readFileSync(`${out}-latency.svg`, 'utf8')).toMatch(/^<svg /)

    serve.child.kill('SIGTERM')
    expect(await serve.exited, serve.stderr()).toBe(0)
    expect(serve.stdout()).toContain('shutting down')
  }, 60_000)

  it('bench starts ssehub from the package and skips the peers it lacks with one line each', async () => {
    const out = join(dir, 'peers/capacity')
    const bench = bin([
      ...['bench', '--servers', 'ssehub,better-sse,naive-express', '--scenarios', 'broadcast'],
      ...['--subscribers', '20', '--rate', '20', '--seconds', '1', '--workers', '1'],
      ...['--max-publishes', '100', '--out', out],
    ])
    expect(await bench.exited, bench.stdout() + bench.stderr()).toBe(0)
    expect(bench.stdout()).toContain(
      'better-sse: skipped, needs the better-sse package: npm install better-sse\n',
    )
    expect(bench.stdout()).toContain(
      'naive-express: skipped, needs the express package: npm install express\n',
    )
    const results = JSON.parse(readFileSync(`${out}.json`, 'utf8')) as {
      absent: Record<string, string>
      versions: Record<string, string>
      phases: { server: string; missed: number }[]
    }
    expect(Object.keys(results.absent).sort()).toEqual(['better-sse', 'naive-express'])
    expect(results.phases.map((p) => p.server)).toEqual(['ssehub', 'ssehub'])
    expect(results.phases.every((p) => p.missed === 0)).toBe(true)
  }, 60_000)
})
