/**
 * A helper for OpenAI-compatible streaming chat completions (OpenAI, Azure OpenAI, vLLM, Ollama,
 * llama.cpp, LiteLLM...): POST with `stream: true`, yield the JSON chunks until `data: [DONE]`.
 *
 * @see https://platform.openai.com/docs/api-reference/chat-streaming
 */
import type { FetchLike, ReconnectOptions } from './client.js'
import { ResponseError, UpstreamError } from './errors.js'
import { events } from './events.js'

/** The shape of one streamed chat completion chunk (the fields most callers read). */
export interface ChatCompletionChunk {
  id: string
  object: string
  created: number
  model: string
  choices: Array<{
    index: number
    delta: {
      role?: string
      content?: string | null
      tool_calls?: unknown[]
      [key: string]: unknown
    }
    finish_reason: string | null
    [key: string]: unknown
  }>
  usage?: Record<string, unknown> | null
  [key: string]: unknown
}

/** Options of {@link streamChatCompletion}. */
export interface ChatCompletionStreamOptions {
  /** The endpoint, e.g. `https://api.openai.com/v1/chat/completions`. */
  url: string | URL
  /** Sent as `Authorization: Bearer <apiKey>` when given. */
  apiKey?: string
  /** The request: `model`, `messages`, ...; `stream: true` is set for you. */
  body: Record<string, unknown>
  /** Extra request headers (e.g. `OpenAI-Organization`). */
  headers?: Record<string, string>
  /** The `fetch` to use. @default globalThis.fetch */
  fetch?: FetchLike
  /** Aborting it ends the iteration (no error) and cancels the request. */
  signal?: AbortSignal
  /**
   * Whether (and how) to re-POST the request when the connection drops. Off by default: a POST
   * starts a new generation (billed again, with different output), it does not resume the old one.
   *
   * @default false
   */
  reconnect?: boolean | ReconnectOptions
  /** Drop the request when no byte arrived for this long. `null`: off. @default null */
  heartbeatTimeoutMs?: number | null
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The upstream's error message in a parsed body, in the shapes OpenAI-compatible servers use. */
function errorMessage(body: unknown): { message: string; error: unknown } | undefined {
  if (!isRecord(body)) return undefined
  const error = body.error
  if (isRecord(error) && typeof error.message === 'string') return { message: error.message, error }
  if (typeof error === 'string' && error !== '') return { message: error, error }
  // vLLM and some proxies: {"object": "error", "message": "..."}.
  if (body.object === 'error' && typeof body.message === 'string') {
    return { message: body.message, error: body }
  }
  return undefined
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

/**
 * Streams a chat completion from an OpenAI-compatible API: yields each chunk's parsed JSON until
 * `data: [DONE]`, then returns. Errors are thrown, never yielded:
 * - an {@link UpstreamError} (`ERR_SSE_UPSTREAM`) with the upstream's message when the response is
 *   an error with a JSON body (`{"error": {"message": ...}}`), or an `error` event or a chunk with
 *   an `error` field arrives, or the stream ends before `[DONE]` (a cut-off completion);
 * - a {@link ResponseError} (`ERR_SSE_BAD_RESPONSE`) for an error status without a JSON error;
 * - an `SseError` `ERR_SSE_CONNECTION_FAILED` when the connection drops (no re-POST, unless
 *   `reconnect: true`).
 * Breaking out of the loop or aborting `signal` cancels the request.
 *
 * @example
 * ```ts
 * for await (const chunk of streamChatCompletion({ url, apiKey, body: { model, messages } })) {
 *   process.stdout.write(chunk.choices[0]?.delta.content ?? '')
 * }
 * ```
 */
export async function* streamChatCompletion<Chunk = ChatCompletionChunk>(
  options: ChatCompletionStreamOptions,
): AsyncGenerator<Chunk, void, undefined> {
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    ...options.headers,
  }
  if (options.apiKey !== undefined) headers.authorization = `Bearer ${options.apiKey}`
  const stream = events({
    url: options.url,
    method: 'POST',
    headers,
    body: JSON.stringify({ ...options.body, stream: true }),
    reconnect: options.reconnect ?? false,
    heartbeatTimeoutMs: options.heartbeatTimeoutMs ?? null,
    ...(options.fetch === undefined ? {} : { fetch: options.fetch }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  })
  try {
    for await (const event of stream) {
      if (event.type === 'error') {
        const found = errorMessage(parseJson(event.data))
        throw new UpstreamError(found?.message ?? (event.data || 'upstream error'), found?.error)
      }
      if (event.type !== 'message') continue
      if (event.data === '[DONE]') return
      const chunk = parseJson(event.data)
      if (chunk === undefined) {
        throw new UpstreamError(
          `The upstream sent a chunk that is not JSON: ${JSON.stringify(event.data.slice(0, 200))}`,
          undefined,
        )
      }
      const found = errorMessage(chunk)
      if (found !== undefined) throw new UpstreamError(found.message, found.error)
      yield chunk as Chunk
    }
    if (options.signal?.aborted === true) return
    throw new UpstreamError(
      'The stream ended before `data: [DONE]`: the completion is incomplete.',
      undefined,
    )
  } catch (error) {
    if (error instanceof ResponseError) {
      const found = errorMessage(parseJson(error.body))
      if (found !== undefined) {
        throw new UpstreamError(found.message, found.error, { status: error.status, cause: error })
      }
    }
    throw error
  } finally {
    stream.close()
  }
}
