import type { RawStream } from './raw-stream.js'

/** The text a viewer of a relay topic got: its `token` events' data, joined. */
export function relayText(stream: RawStream): string {
  return stream.events
    .filter((event) => event.event === 'token')
    .map((event) => event.data)
    .join('')
}

/** The final event (`done` or `error`) a viewer of a relay topic got, if any. */
export function relayFinal(stream: RawStream): RawStream['events'][number] | undefined {
  return stream.events.find((event) => event.event === 'done' || event.event === 'error')
}
