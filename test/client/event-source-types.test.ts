import { fileURLToPath } from 'node:url'
import ts from 'typescript'
import { describe, expect, expectTypeOf, it } from 'vitest'
import {
  EventSource as SseEventSource,
  type EventSourceErrorEvent,
  type EventSourceEventMap,
  type EventSourceOptions,
} from '../../src/client/index.js'

/**
 * Type-level tests. Our `EventSource` must be usable exactly as lib.dom's: the same overloads,
 * handler attributes and constants, and assignable to and from the DOM type. `expectTypeOf`
 * asserts nothing at runtime (`npm run typecheck` checks this file), so the last suite runs the
 * TypeScript compiler on two fixtures, and `npm test` fails on a type error too: the browser-style
 * usage with lib.dom and as a Node-only project (no DOM lib), and the DOM assignments.
 */
describe('EventSource types (lib.dom compatible)', () => {
  it('is assignable to the DOM EventSource, and back', () => {
    expectTypeOf<SseEventSource>().toExtend<EventSource>()
    expectTypeOf<EventSource>().toExtend<SseEventSource>()
    // A function written for the browser's EventSource takes ours.
    const useDom = (source: EventSource): number => source.readyState
    const useOurs = (source: SseEventSource): number => source.readyState
    if (typeof window !== 'undefined') {
      useDom(new SseEventSource('http://localhost/'))
      useOurs(new window.EventSource('http://localhost/'))
    }
  })

  it('types addEventListener like lib.dom: known types, any other type as MessageEvent', () => {
    // Type-level only: never called.
    const check = (source: SseEventSource): void => {
      // The lines the issue reported as TS2339 before: each must compile with no cast.
      source.addEventListener('message', (e) => {
        expectTypeOf(e).toEqualTypeOf<MessageEvent>()
        expectTypeOf(e.data).toBeAny()
        expectTypeOf(e.lastEventId).toBeString()
      })
      source.addEventListener('open', (e) => expectTypeOf(e).toEqualTypeOf<Event>())
      source.addEventListener('error', (e) => {
        expectTypeOf(e).toEqualTypeOf<EventSourceErrorEvent>()
        expectTypeOf(e.error).toEqualTypeOf<Error | undefined>()
      })
      source.addEventListener('headline', (e) => {
        expectTypeOf(e).toEqualTypeOf<MessageEvent>()
        expectTypeOf(e.origin).toBeString()
      })
      source.addEventListener('headline', function (e) {
        expectTypeOf(this).toEqualTypeOf<SseEventSource>()
        return e.data as unknown
      })
      source.addEventListener('x', { handleEvent: (e) => expectTypeOf(e).toEqualTypeOf<Event>() })
      source.addEventListener('message', () => undefined, {
        once: true,
        signal: AbortSignal.abort(),
      })
      source.removeEventListener('message', () => undefined, false)
    }
    expectTypeOf(check).toBeFunction()
    expectTypeOf<EventSourceEventMap['message']>().toEqualTypeOf<MessageEvent>()
  })

  it('types the handler attributes, constants, url, withCredentials and close() like lib.dom', () => {
    const source = new SseEventSource('http://127.0.0.1:9/', {
      fetch: () => new Promise<Response>(() => undefined),
    })
    source.close()
    expectTypeOf(source.onmessage).toEqualTypeOf<
      ((this: SseEventSource, ev: MessageEvent) => unknown) | null
    >()
    expectTypeOf(source.onopen).toEqualTypeOf<
      ((this: SseEventSource, ev: Event) => unknown) | null
    >()
    expectTypeOf(source.onerror).toEqualTypeOf<
      ((this: SseEventSource, ev: Event) => unknown) | null
    >()
    expectTypeOf(source.readyState).toBeNumber()
    expectTypeOf(source.CONNECTING).toEqualTypeOf<0>()
    expectTypeOf(source.OPEN).toEqualTypeOf<1>()
    expectTypeOf(source.CLOSED).toEqualTypeOf<2>()
    expectTypeOf(SseEventSource.CONNECTING).toEqualTypeOf<0>()
    expectTypeOf(SseEventSource.OPEN).toEqualTypeOf<1>()
    expectTypeOf(SseEventSource.CLOSED).toEqualTypeOf<2>()
    expectTypeOf(source.url).toBeString()
    expectTypeOf(source.withCredentials).toBeBoolean()
    expectTypeOf<SseEventSource['close']>().toEqualTypeOf<() => void>()
    expectTypeOf<SseEventSource['readyState']>().toEqualTypeOf<EventSource['readyState']>()
    // Assignments a browser script makes.
    const set = (s: SseEventSource): void => {
      s.onmessage = (e) => e.data as unknown
      s.onerror = function () {
        return this.readyState === this.CLOSED
      }
      s.onopen = null
    }
    expectTypeOf(set).toBeFunction()
    expectTypeOf(SseEventSource).constructorParameters.toEqualTypeOf<
      [url: string | URL, init?: EventSourceOptions]
    >()
  })
})

const root = fileURLToPath(new URL('../../', import.meta.url))
const fixture = fileURLToPath(new URL('fixtures/event-source-usage.ts', import.meta.url))
const domFixture = fileURLToPath(new URL('fixtures/event-source-dom.ts', import.meta.url))

// Both programs share the parsed files they have in common (@types/node, the client's sources).
const parsed = new Map<string, ts.SourceFile | undefined>()

function cachingHost(options: ts.CompilerOptions): ts.CompilerHost {
  const host = ts.createCompilerHost(options)
  const getSourceFile = host.getSourceFile.bind(host)
  host.getSourceFile = (fileName, languageVersion, ...rest) => {
    if (!parsed.has(fileName))
      parsed.set(fileName, getSourceFile(fileName, languageVersion, ...rest))
    return parsed.get(fileName)
  }
  return host
}

/** Type errors in the client's files and in these tests, formatted one a line. */
function typeErrors(rootNames: string[], lib: string[] | undefined): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(`${root}tsconfig.json`, undefined, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'))
    },
  })
  if (config === undefined) throw new Error('tsconfig.json could not be read')
  const options = { ...config.options, noEmit: true, ...(lib === undefined ? {} : { lib }) }
  const program = ts.createProgram({ rootNames, options, host: cachingHost(options) })
  // Only what this suite owns: other layers have their own checks.
  const owned = /\/(src\/client|test\/client)\//
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file === undefined || owned.test(d.file.fileName))
    .map((d) => {
      const text = ts.flattenDiagnosticMessageText(d.messageText, ' ')
      if (d.file === undefined || d.start === undefined) return text
      const { line } = d.file.getLineAndCharacterOfPosition(d.start)
      return `${d.file.fileName.slice(root.length)}:${line + 1}: ${text}`
    })
}

describe('EventSource types, checked by the compiler', () => {
  it('the fixtures type-check with lib.dom (the repository tsconfig)', () => {
    expect(typeErrors([fixture, domFixture], undefined)).toEqual([])
  })

  it('the usage fixture type-checks in a Node-only project (lib ES2023 and @types/node, no DOM)', () => {
    expect(typeErrors([fixture], ['lib.es2023.d.ts'])).toEqual([])
  })
})
