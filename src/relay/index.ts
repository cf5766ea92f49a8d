/** The relay: a token stream (an LLM answer) onto a finite hub topic. */
export {
  relay,
  chatCompletionTokens,
  type RelayHub,
  type RelayOptions,
  type RelayOutcome,
  type RelayResult,
  type RelayFinalData,
  type RelayErrorReason,
} from './relay.js'
export {
  mockChatModel,
  mockUpstream,
  MOCK_ANSWER,
  type MockChatModelOptions,
} from './mock-model.js'
export {
  Relays,
  RELAY_DEFAULTS,
  relayTopic,
  checkRelayId,
  chatCompletionsUrl,
  type RelaysOptions,
  type RelayUpstream,
  type HttpRelayUpstream,
  type SourceRelayUpstream,
  type RelayStartRequest,
  type RelayStart,
  type RelayAbort,
} from './relays.js'
