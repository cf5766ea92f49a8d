/**
 * `ssehub/client`: a spec-exact, fetch-based SSE client for Node >= 20, browsers, workers and edge
 * runtimes. One engine, three shapes: listener callbacks ({@link connect}), an async iterator
 * ({@link events}) and a drop-in {@link EventSource}; plus {@link streamChatCompletion} for
 * OpenAI-compatible streaming APIs, and {@link publish} (at least once with an idempotency key:
 * delivered exactly once) for a hub server.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html
 */
export {
  connect,
  reconnectDelay,
  type AttemptInfo,
  type ClientListener,
  type ClientOptions,
  type ClosedInfo,
  type ClosedReason,
  type Connection,
  type ConnectionState,
  type FetchLike,
  type ReconnectInfo,
  type ReconnectOptions,
  type RequestBody,
} from './client.js'
export { events, type EventStream, type EventsOptions } from './events.js'
export {
  EventSource,
  EventSourceErrorEvent,
  type EventSourceEventMap,
  type EventSourceListener,
  type EventSourceListenerOptions,
  type EventSourceOptions,
} from './event-source.js'
export { ResponseError, UpstreamError, type ResponseErrorDetails } from './errors.js'
export {
  followRelay,
  RelayEndedError,
  type FollowRelayOptions,
  type RelayChunk,
  type RelayEnd,
} from './relay-text.js'
export {
  publish,
  PublishError,
  PUBLISH_DEFAULTS,
  type PublishEvent,
  type PublishOptions,
  type Published,
} from './publisher.js'
export {
  streamChatCompletion,
  type ChatCompletionChunk,
  type ChatCompletionStreamOptions,
} from './openai.js'
export type { ParsedEvent } from '../wire/parse.js'
export { SseError, isSseError, ErrorCodes, type ErrorCode } from '../errors.js'
