/**
 * `ssehub`: the embeddable library. Create a hub, subscribe requests from any server framework,
 * publish to topics, client ids or everyone.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http'
 * import { createHub } from 'ssehub'
 * const hub = createHub()
 * createServer((req, res) => {
 *   if (req.url?.startsWith('/events')) hub.subscribe(req, res, { topics: ['news'] })
 * }).listen(3000)
 * await hub.publish({ topic: 'news', data: { title: 'Hello' } })
 * ```
 */
export { Hub, createHub } from './hub/hub.js'
export { HUB_DEFAULTS, type HubOptions, type OverflowPolicy } from './hub/hub-options.js'
export {
  RESET_EVENT,
  type DropReason,
  type HubEvents,
  type HubStats,
  type PublishInput,
  type PublishResult,
  type PublishTarget,
  type SubscribeParams,
  type ConnectionInfo,
} from './hub/types.js'
export {
  Connection,
  dataToString,
  type CloseReason,
  type EventMap,
  type SendMessage,
  type SendOptions,
  type EventSource,
} from './connection/connection.js'
export { createNodeTransport, type NodeRequest, type NodeResponse } from './connection/node-http.js'
export { createFetchTransport, type FetchTransport } from './connection/fetch.js'
export { streamHeaders, type Transport } from './connection/transport.js'
export { MemoryBroker, MEMORY_BROKER_DEFAULTS, type MemoryBrokerOptions } from './broker/memory.js'
export type {
  Broker,
  BrokerCommand,
  BrokerHealth,
  BrokerSink,
  Cursor,
  Publication,
  PublishRequest,
  ReplayItem,
  Resume,
  ResetReason,
} from './broker/broker.js'
export {
  SseError,
  isSseError,
  errorBody,
  ErrorCodes,
  type ErrorCode,
  type SseErrorOptions,
} from './errors.js'
export { encodeEvent, encodeEventText, WireFieldError, type SseEvent } from './wire/encode.js'
