import { existsSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import ts from 'typescript'

/** The repository root. */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url))

/** `dist/`, as it ships in the package. */
export const distDir = join(repoRoot, 'dist')

/**
 * The source files of `ssehub/client` (`src/client/index.ts` and every module it imports,
 * followed through relative imports): exactly the files whose built JS a browser loads.
 */
export function clientSources(): string[] {
  const seen = new Set<string>()
  const pending = [join(repoRoot, 'src/client/index.ts')]
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (seen.has(file)) continue
    seen.add(file)
    const text = readFileSync(file, 'utf8')
    // `import ... from './x.js'`, `export ... from '../y.js'`, `import('./z.js')`; type-only
    // imports are followed too (harmless: they name files that are built anyway).
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)\.js'/g)) {
      pending.push(resolve(dirname(file), `${match[1]!}.ts`))
    }
  }
  return [...seen].sort()
}

/** The built file of a source file: `src/a/b.ts` -> `dist/a/b.js`. */
function builtFile(source: string): string {
  return join(distDir, relative(join(repoRoot, 'src'), source)).replace(/\.ts$/, '.js')
}

/**
 * Makes sure `dist/` holds the client as built from the current sources. `npm test` builds first
 * (`npm run build && vitest run`), so there this only checks; a test run on its own after an edit
 * rebuilds the client's files (and only those) with tsconfig.build.json's options, which emits
 * byte for byte what the full build would. Returns what it did.
 */
export function ensureClientBuilt(): 'fresh' | 'rebuilt' {
  const sources = clientSources()
  const stale = sources.filter((source) => {
    const built = builtFile(source)
    return !existsSync(built) || statSync(built).mtimeMs < statSync(source).mtimeMs
  })
  if (stale.length === 0) return 'fresh'
  const config = ts.getParsedCommandLineOfConfigFile(
    join(repoRoot, 'tsconfig.build.json'),
    undefined,
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
        throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'))
      },
    },
  )
  if (config === undefined) throw new Error('tsconfig.build.json could not be read')
  const program = ts.createProgram([join(repoRoot, 'src/client/index.ts')], config.options)
  const result = program.emit()
  const errors = ts
    .getPreEmitDiagnostics(program)
    .concat(result.diagnostics)
    .filter((d) => d.category === ts.DiagnosticCategory.Error)
  if (result.emitSkipped || errors.length > 0) {
    throw new Error(
      `Building the client failed:\n${ts.formatDiagnostics(errors, {
        getCanonicalFileName: (name) => name,
        getCurrentDirectory: () => repoRoot,
        getNewLine: () => '\n',
      })}`,
    )
  }
  return 'rebuilt'
}
