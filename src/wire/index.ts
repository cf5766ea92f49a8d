/**
 * `ssehub/wire`: the pure SSE wire format, encoder and incremental parser. No Node imports: it runs
 * in browsers, workers and edge runtimes.
 */
export {
  encodeEvent,
  encodeEventText,
  encodeCommentText,
  encodeDataLines,
  assertEventId,
  assertEventName,
  assertRetry,
  WireFieldError,
  type SseEvent,
} from './encode.js'
export {
  createParser,
  type ParsedEvent,
  type Parser,
  type ParserOptions,
  type ParserResetOptions,
} from './parse.js'
