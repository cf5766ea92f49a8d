import {
  closeSync,
  fdatasync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlink,
  unlinkSync,
  writeSync,
  close as closeFd,
} from 'node:fs'
import { open as openFile, rename } from 'node:fs/promises'
import { join } from 'node:path'
import * as zlib from 'node:zlib'

/*
 * The durable broker's log: an append-only sequence of segment files `<first seq>.seg` in one
 * folder, each a run of records
 *
 *   [u32 LE payload length][u32 LE CRC-32 of the payload][payload: JSON array]
 *
 * with consecutive sequence numbers. A record is trusted only when its length fits, its checksum
 * matches, it parses, and its seq follows the previous one: the first record that fails any of
 * these ends the log (a torn write, a flipped byte); the scan cuts it and everything after it, and
 * says so, so that the broker can tell clients that the ids beyond are gone.
 */

/** One event as the log keeps it. */
export interface LogRecord {
  readonly seq: number
  readonly time: number
  readonly keys: readonly string[]
  readonly event: string | undefined
  readonly data: string
  readonly retry: number | undefined
  readonly close: boolean
  /** The publish's idempotency key, kept so that a restart still knows it. */
  readonly idempotencyKey?: string
  /** The publish's fingerprint (with the key): a retry must match it. */
  readonly fingerprint?: string
}

/** Where and why a scan cut the log. */
export interface LogCut {
  /** The segment file that held the first bad record. */
  readonly file: string
  /** Its byte offset there. */
  readonly offset: number
  /** What was wrong, e.g. `checksum mismatch`. */
  readonly reason: string
  /** Bytes cut (in that file and the files after it). */
  readonly bytes: number
}

/** Bytes before each record's payload: its length and checksum. */
export const RECORD_HEADER_BYTES = 8
/** A payload longer than this is taken for a corrupt length field. */
const MAX_PAYLOAD_BYTES = 256 * 1024 * 1024

// zlib.crc32 is native from Node 20.15 / 22.2; older 20.x get a table-driven copy.
const crcTable = (() => {
  const table = new Int32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    table[n] = c
  }
  return table
})()

function crc32Js(data: Uint8Array): number {
  let crc = -1
  for (let i = 0; i < data.length; i++) crc = crcTable[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8)
  return (crc ^ -1) >>> 0
}

const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32

/** CRC-32 (IEEE) of `data`. */
export const crc32: (data: Uint8Array) => number = nativeCrc32 ?? crc32Js

/** The bytes of one record, framed and checksummed. */
export function encodeRecord(record: LogRecord): Buffer {
  const payload = JSON.stringify([
    record.seq,
    record.time,
    record.keys,
    record.event ?? null,
    record.data,
    record.retry ?? null,
    record.close ? 1 : 0,
    // Two more fields only for a keyed publish: older records (7 fields) still read.
    ...(record.idempotencyKey === undefined
      ? []
      : [record.idempotencyKey, record.fingerprint ?? '']),
  ])
  const length = Buffer.byteLength(payload)
  const bytes = Buffer.allocUnsafe(RECORD_HEADER_BYTES + length)
  bytes.write(payload, RECORD_HEADER_BYTES)
  bytes.writeUInt32LE(length, 0)
  bytes.writeUInt32LE(crc32(bytes.subarray(RECORD_HEADER_BYTES)), 4)
  return bytes
}

/**
 * A record as read back: with the fields a broker fills in (its id and its size on disk), so
 * that it can be kept as it is, without a copy per event (a restart reads millions).
 */
export interface LoadedRecord extends LogRecord {
  id: string
  size: number
}

function decodePayload(payload: Buffer): LoadedRecord | null {
  let value: unknown
  try {
    value = JSON.parse(payload.toString('utf8'))
  } catch {
    return null
  }
  if (!Array.isArray(value) || (value.length !== 7 && value.length !== 9)) return null
  const [seq, time, keys, event, data, retry, close, idempotencyKey, fingerprint] =
    value as unknown[]
  if (value.length === 9 && (typeof idempotencyKey !== 'string' || typeof fingerprint !== 'string'))
    return null
  if (
    typeof seq !== 'number' ||
    typeof time !== 'number' ||
    !Array.isArray(keys) ||
    !keys.every((key) => typeof key === 'string') ||
    (event !== null && typeof event !== 'string') ||
    typeof data !== 'string' ||
    (retry !== null && typeof retry !== 'number') ||
    (close !== 0 && close !== 1)
  ) {
    return null
  }
  return {
    seq,
    time,
    keys: keys,
    event: event ?? undefined,
    data,
    retry: retry ?? undefined,
    close: close === 1,
    ...(value.length === 9
      ? { idempotencyKey: idempotencyKey as string, fingerprint: fingerprint as string }
      : {}),
    id: '',
    size: payload.length + RECORD_HEADER_BYTES,
  }
}

const segmentPattern = /^(\d{20})\.seg$/

function segmentName(firstSeq: number): string {
  return `${String(firstSeq).padStart(20, '0')}.seg`
}

interface Segment {
  readonly firstSeq: number
  readonly file: string
  /** The seq of its last record; `firstSeq - 1` while empty. */
  lastSeq: number
  size: number
}

/** Options of {@link SegmentLog.open}. */
export interface SegmentLogOptions {
  /** The folder of the segment files (created when missing). */
  readonly dir: string
  /** A segment is closed and a new one started once it holds this many bytes. */
  readonly segmentBytes: number
  /** Whether {@link SegmentLog.flush} is used: rolled segments then wait for it to be closed. */
  readonly sync: boolean
}

/** What {@link SegmentLog.open} found. */
export interface LogScan {
  /** The seq the next record must have. */
  readonly nextSeq: number
  /** Set when a bad record ended the log and it was cut there. */
  readonly cut: LogCut | null
}

/**
 * An append-only log of segment files. Appends are synchronous `write(2)`s of whole batches
 * (to the page cache: microseconds); {@link SegmentLog.flush} makes everything appended so far
 * durable with `fdatasync(2)` in the thread pool, so a caller can group many appends per flush.
 */
export class SegmentLog {
  private readonly segments: Segment[] = []
  private fd = -1
  // Descriptors written since the last flush (rolled segments too), and whether a new file's
  // directory entry still needs an fsync of the folder.
  private dirty = new Set<number>()
  private retired = new Set<number>()
  private dirDirty = false

  private constructor(private readonly options: SegmentLogOptions) {}

  /**
   * Opens the log in `options.dir`, calling `onRecord` for every record in order, and cuts the
   * log at the first bad record (see the module comment). `firstSeq` names the first segment of
   * an empty log.
   */
  static open(
    options: SegmentLogOptions,
    firstSeq: number,
    onRecord: (record: LoadedRecord) => void,
  ): { log: SegmentLog; scan: LogScan } {
    const log = new SegmentLog(options)
    mkdirSync(options.dir, { recursive: true })
    const files = readdirSync(options.dir)
      .map((name) => segmentPattern.exec(name))
      .filter((match) => match !== null)
      .map((match) => ({ file: match[0], firstSeq: Number(match[1]) }))
      .sort((a, b) => a.firstSeq - b.firstSeq)
    let cut = null as LogCut | null
    let expected = files[0]?.firstSeq ?? firstSeq
    for (const [index, { file, firstSeq: segmentFirst }] of files.entries()) {
      const path = join(options.dir, file)
      if (cut !== null) {
        cut = { ...cut, bytes: cut.bytes + readFileSync(path).length }
        unlinkSync(path)
        continue
      }
      const bytes = readFileSync(path)
      const segment: Segment = { firstSeq: segmentFirst, file, lastSeq: segmentFirst - 1, size: 0 }
      const bad =
        segmentFirst === expected
          ? scanSegment(bytes, segment, onRecord)
          : { offset: 0, reason: `segment starts at seq ${segmentFirst}, expected ${expected}` }
      if (bad !== null) {
        cut = { file, offset: bad.offset, reason: bad.reason, bytes: bytes.length - bad.offset }
        if (bad.offset === 0 && index > 0) {
          unlinkSync(path)
        } else {
          const fd = openSync(path, 'r+')
          ftruncateSync(fd, bad.offset)
          fsyncSync(fd)
          closeSync(fd)
          log.segments.push(segment)
        }
      } else {
        log.segments.push(segment)
      }
      expected = segment.lastSeq + 1
    }
    if (log.segments.length === 0) {
      log.segments.push({
        firstSeq: expected,
        file: segmentName(expected),
        lastSeq: expected - 1,
        size: 0,
      })
      log.dirDirty = true
    }
    const active = log.segments[log.segments.length - 1]!
    log.fd = openSync(join(options.dir, active.file), 'a+')
    if (cut !== null || log.dirDirty) {
      fsyncSync(log.fd)
      fsyncDirSync(options.dir)
      log.dirDirty = false
    }
    return { log, scan: { nextSeq: expected, cut } }
  }

  /** The seq of the first record on disk (`nextSeq` when the log is empty). */
  get firstSeq(): number {
    return this.segments[0]!.firstSeq
  }

  /** Bytes in all segments. */
  get bytes(): number {
    let total = 0
    for (const segment of this.segments) total += segment.size
    return total
  }

  /** Segment files. */
  get segmentCount(): number {
    return this.segments.length
  }

  /**
   * Writes a batch of encoded records (seqs `firstSeq..lastSeq`, following the log) with one
   * `write(2)`. On an error (ENOSPC, EFBIG...) the segment is cut back to where it was, so that
   * no partial record stays, and the error is thrown.
   */
  append(bytes: Buffer, firstSeq: number, lastSeq: number): void {
    let active = this.segments[this.segments.length - 1]!
    if (active.size >= this.options.segmentBytes) active = this.roll(firstSeq)
    const start = active.size
    let written = 0
    try {
      while (written < bytes.length)
        written += writeSync(this.fd, bytes, written, bytes.length - written, start + written)
    } catch (error) {
      if (written > 0) ftruncateSync(this.fd, start)
      throw error
    }
    active.size += bytes.length
    active.lastSeq = lastSeq
    this.dirty.add(this.fd)
  }

  /**
   * Makes every append so far durable (`fdatasync` of each file written, `fsync` of the folder
   * after a new file), in the thread pool.
   */
  async flush(): Promise<void> {
    if (this.dirty.size === 0 && !this.dirDirty) return
    const fds = [...this.dirty]
    this.dirty = new Set()
    const dir = this.dirDirty
    this.dirDirty = false
    await Promise.all([
      ...fds.map((fd) => promised<void>((done) => fdatasync(fd, done))),
      ...(dir ? [fsyncDir(this.options.dir)] : []),
    ])
    for (const fd of fds) {
      if (!this.retired.delete(fd)) continue
      await promised<void>((done) => closeFd(fd, done))
    }
  }

  /**
   * The first seq that stays on disk once the segments whose records all have a seq below `seq`
   * are deleted (never the one being written): see {@link SegmentLog.dropBefore}.
   */
  firstKeptSeq(seq: number): number {
    let index = 0
    while (index < this.segments.length - 1 && this.segments[index]!.lastSeq < seq) index++
    return this.segments[index]!.firstSeq
  }

  /**
   * Deletes the segments (never the one being written) whose records all have a seq below
   * `seq`, in the thread pool. Resolves with the number of files deleted.
   */
  async dropBefore(seq: number): Promise<number> {
    const doomed: Segment[] = []
    while (this.segments.length > 1 && this.segments[0]!.lastSeq < seq)
      doomed.push(this.segments.shift()!)
    for (const segment of doomed)
      await promised<void>((done) => unlink(join(this.options.dir, segment.file), done))
    return doomed.length
  }

  /** Closes the files (after a last flush when syncing). */
  async close(): Promise<void> {
    if (this.options.sync) await this.flush()
    for (const fd of this.retired) closeSync(fd)
    this.retired.clear()
    if (this.fd !== -1) closeSync(this.fd)
    this.fd = -1
  }

  private roll(firstSeq: number): Segment {
    const segment: Segment = {
      firstSeq,
      file: segmentName(firstSeq),
      lastSeq: firstSeq - 1,
      size: 0,
    }
    const fd = openSync(join(this.options.dir, segment.file), 'a+')
    // A rolled file is closed once its last appends are durable (or at once without syncing).
    if (this.options.sync && this.dirty.has(this.fd)) this.retired.add(this.fd)
    else closeSync(this.fd)
    this.fd = fd
    this.segments.push(segment)
    this.dirDirty = true
    return segment
  }
}

/** Reads the records of one segment; returns the first bad one's offset and why, or null. */
function scanSegment(
  bytes: Buffer,
  segment: Segment,
  onRecord: (record: LoadedRecord) => void,
): { offset: number; reason: string } | null {
  let offset = 0
  while (offset < bytes.length) {
    if (bytes.length - offset < RECORD_HEADER_BYTES) return { offset, reason: 'torn record header' }
    const length = bytes.readUInt32LE(offset)
    const end = offset + RECORD_HEADER_BYTES + length
    if (length > MAX_PAYLOAD_BYTES || end > bytes.length)
      return { offset, reason: 'torn record (its length runs past the end)' }
    const payload = bytes.subarray(offset + RECORD_HEADER_BYTES, end)
    if (crc32(payload) !== bytes.readUInt32LE(offset + 4))
      return { offset, reason: 'checksum mismatch' }
    const record = decodePayload(payload)
    if (record === null) return { offset, reason: 'unreadable record' }
    if (record.seq !== segment.lastSeq + 1)
      return { offset, reason: `seq ${record.seq} where ${segment.lastSeq + 1} was expected` }
    onRecord(record)
    segment.lastSeq = record.seq
    segment.size = end
    offset = end
  }
  return null
}

function promised<T>(
  start: (done: (error: NodeJS.ErrnoException | null, value?: T) => void) => void,
): Promise<T> {
  return new Promise((resolve, reject) =>
    start((error, value) => (error === null ? resolve(value as T) : reject(error))),
  )
}

/** `fsync` of a folder, so that files created or renamed in it survive a power loss. */
export function fsyncDirSync(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await openFile(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** Replaces `path` with `text` so that a crash leaves the old file or the new one, never a mix. */
export function writeFileAtomicSync(path: string, text: string): void {
  const temporary = `${path}.tmp`
  const fd = openSync(temporary, 'w')
  try {
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temporary, path)
  fsyncDirSync(join(path, '..'))
}

/** {@link writeFileAtomicSync} in the thread pool. */
export async function writeFileAtomic(path: string, text: string): Promise<void> {
  const temporary = `${path}.tmp`
  const handle = await openFile(temporary, 'w')
  try {
    await handle.writeFile(text)
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(temporary, path)
  await fsyncDir(join(path, '..'))
}
