import { openStream, type RawStream } from './raw-stream.js'

/**
 * A subscriber that, when its stream ends or fails, reconnects to another live node with
 * `Last-Event-ID`, the way a browser behind a load balancer would. Records every event.
 */
export class RoamingSubscriber {
  readonly events: { event: string; data: string; id: string }[] = []
  reconnects = 0
  private stream: RawStream | null = null
  private stopped = false
  private lastId: string | undefined
  private consumed = 0

  constructor(
    private readonly path: string,
    private readonly nodes: () => string[],
    private node: number,
    /** `false` reconnects without Last-Event-ID: the negative control that must see gaps. */
    private readonly resume = true,
    /**
     * What a control (`resume: false`) waits for before it reconnects: the test's condition that
     * events were published meanwhile, so that it must miss some (a timer would race the
     * publisher on a loaded machine).
     */
    private readonly away: () => Promise<unknown> = () => Promise.resolve(),
  ) {}

  async start(): Promise<void> {
    await this.connect()
  }

  /** The node index it is connected to now. */
  get nodeIndex(): number {
    return this.node
  }

  stop(): void {
    this.stopped = true
    this.stream?.close()
  }

  private async connect(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      const urls = this.nodes()
      const url = urls[this.node % urls.length]!
      try {
        const headers =
          this.lastId === undefined || !this.resume ? {} : { 'last-event-id': this.lastId }
        const stream = await openStream(url + this.path, headers)
        if (stream.status !== 200) throw new Error(`status ${stream.status}`)
        this.stream = stream
        this.consumed = 0
        const pump = setInterval(() => this.drain(stream), 2)
        void stream.ended.then(() => {
          clearInterval(pump)
          this.drain(stream)
          if (this.stopped) return
          this.reconnects++
          this.node++
          // The control stays away until events were published, so it misses some.
          if (this.resume) void this.connect()
          else void this.away().then(() => this.connect())
        })
        return
      } catch {
        if (attempt > 200) throw new Error(`cannot reconnect ${this.path}`)
        this.node++
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
  }

  private drain(stream: RawStream): void {
    const id = stream.lastEventId()
    if (id !== undefined) this.lastId = id
    while (this.consumed < stream.events.length) {
      const event = stream.events[this.consumed++]!
      this.events.push({ event: event.event ?? 'message', data: event.data, id: event.id ?? '' })
    }
  }
}
