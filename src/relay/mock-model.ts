/**
 * A built-in mock chat model: streams a canned answer word by word at a human reading pace, so
 * the chat demo (and tests) work with no LLM upstream.
 */
import type { SourceRelayUpstream } from './relays.js'

/** The answer the mock model gives when none is set. */
export const MOCK_ANSWER =
  'Server-Sent Events let a server push text to the browser over one long HTTP response. ' +
  'Each event is a few lines: an id, an event name and data. The browser reconnects by itself ' +
  'and sends Last-Event-ID, so the hub can replay what was missed. That is how this answer ' +
  'reaches you, token by token, like a chat model typing.'

/** Options of {@link mockChatModel}. */
export interface MockChatModelOptions {
  /** The text to stream. @default MOCK_ANSWER */
  readonly text?: string
  /** Pause before each token, in ms. @default 60 */
  readonly tokenDelayMs?: number
  /** Aborting it ends the stream early. */
  readonly signal?: AbortSignal
}

function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true) return resolve()
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/** Yields `text` as tokens (a word with its following space), one every `tokenDelayMs`. */
export async function* mockChatModel(
  options: MockChatModelOptions = {},
): AsyncGenerator<string, void, undefined> {
  const text = options.text ?? MOCK_ANSWER
  const tokenDelayMs = options.tokenDelayMs ?? 60
  if (!(tokenDelayMs >= 0 && isFinite(tokenDelayMs))) {
    throw new RangeError(
      `Expected \`tokenDelayMs\` to be a finite number >= 0, got \`${tokenDelayMs}\``,
    )
  }
  for (const token of text.match(/\S+\s*/g) ?? []) {
    await delay(tokenDelayMs, options.signal)
    if (options.signal?.aborted === true) return
    yield token
  }
}

/**
 * The mock model as a relay upstream (`relayUpstreams: { default: mockUpstream() }`): every
 * generation streams the canned answer, whatever the request. `ssehub serve` makes it the
 * `default` upstream while the demos are on and no other `default` is configured.
 */
export function mockUpstream(
  options: Omit<MockChatModelOptions, 'signal'> = {},
): SourceRelayUpstream {
  return { source: (_body, signal) => mockChatModel({ ...options, signal }) }
}
