import { EventEmitter } from 'node:events'

/**
 * A typed EventEmitter: `on('closed', (connection, reason) => ...)` is checked against the event
 * map. Node's own emitter underneath, so `once()`/`events.on()` work as usual.
 */
export class TypedEmitter<Events extends Record<string, unknown[]>> {
  private readonly emitter = new EventEmitter()

  /** Adds a listener. */
  on<K extends keyof Events & string>(event: K, listener: (...args: Events[K]) => void): this {
    this.emitter.on(event, listener as (...args: unknown[]) => void)
    return this
  }

  /** Adds a one-time listener. */
  once<K extends keyof Events & string>(event: K, listener: (...args: Events[K]) => void): this {
    this.emitter.once(event, listener as (...args: unknown[]) => void)
    return this
  }

  /** Removes a listener. */
  off<K extends keyof Events & string>(event: K, listener: (...args: Events[K]) => void): this {
    this.emitter.off(event, listener as (...args: unknown[]) => void)
    return this
  }

  /** Number of listeners of `event`. */
  listenerCount<K extends keyof Events & string>(event: K): number {
    return this.emitter.listenerCount(event)
  }

  /** Emits `event`. */
  protected emit<K extends keyof Events & string>(event: K, ...args: Events[K]): void {
    this.emitter.emit(event, ...args)
  }
}
