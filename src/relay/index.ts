/** The relay: a token stream (an LLM answer) onto a finite hub topic. */
export {
  relay,
  chatCompletionTokens,
  type RelayHub,
  type RelayOptions,
  type RelayOutcome,
  type RelayResult,
  type RelayFinalData,
} from './relay.js'
export { mockChatModel, MOCK_ANSWER, type MockChatModelOptions } from './mock-model.js'
