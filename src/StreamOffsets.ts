/**
 * effect-stream-offsets: RabbitMQ Streams offset tracking as Effect programs.
 *
 * Contents, in file order (public first, machinery last):
 * ```text
 *   Models          messages (AMQP 1.0 values and sections, what consumers read and producers
 *                   write) and their JSON lines; start positions, retention, confirmations, bounds,
 *                   the connection state, tracking strategies, stop conditions; super streams
 *   Errors          tagged errors with a one-line message each; the input checks (one function
 *                   per options type, what the workflow checks before it touches the broker)
 *   Configuration   where the broker is (a URI with several nodes, TLS); the retry policy
 *   Services        StreamBroker (make and layers: the real broker, the memory broker and
 *                   MemoryBroker to look inside it); OffsetStore (make, and layers: server-side,
 *                   memory and MemoryOffsetStore, KeyValueStore)
 *   Workflows       send, sendToSuperStream (workflows over a Producer); consume (a Stream of
 *                   messages to commit), receive (a workflow over the same consumer), their super
 *                   stream forms (a consumer per partition); inspectOffset, inspectSuperStreamOffsets
 *   Producer        a long-lived publisher for apps: publish, publishAll, Schema-typed values
 *   Metrics         counters, gauges and histograms (tagged by stream, partition, consumer, producer)
 *   --- internal ---
 *   Send machinery      send over a Producer (the messages read as a Stream, numbered by position);
 *                       routing a chunk at a time and splitting into a mailbox per partition
 *   Producer machinery  requests, one publishing session (writer, sub-entries, confirms, timeouts),
 *                       sessions after lost connections, closing; the entries in flight
 *   Consume machinery   the consumer (start, single active turns, subscriptions, stop selection),
 *                       a super stream's partitions processed together, the offset tracker
 *   Recovery            the connection supervisor, `recovering`, what is transient
 *   Messages on the wire  the AMQP 1.0 codec (every type), delivered chunks (sub-entry batches,
 *                       what cannot be read), publish frames; messages as JSON; bodies through a
 *                       Schema
 *   Real broker         process-level client failures, interruptible client calls, the client's
 *                       private parts (small functions gathered in `clientInternals`), connect,
 *                       requests, publisher, subscribe (DeliveryBuffer and its mailbox), bounds
 *   Memory broker       an append-only log in chunks, tracking entries, super streams, single
 *                       active groups (with the broker's rule and step-down), outages
 *   Offset stores       server-side, memory, KeyValueStore
 *   Helpers
 * ```
 *
 * The module runs unchanged on Node, Bun and Deno.
 *
 * @module
 */
import * as KeyValueStore from "@effect/platform/KeyValueStore"
import { Buffer } from "node:buffer"
import { createRequire } from "node:module"
import process from "node:process"
import { setImmediate } from "node:timers"
import { inspect } from "node:util"
import { gunzipSync, gzipSync } from "node:zlib"
import {
  Cause,
  Chunk,
  Clock,
  Config,
  ConfigError,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberId,
  Layer,
  Metric,
  MetricBoundaries,
  MetricLabel,
  Option,
  ParseResult,
  Mailbox,
  Queue,
  Redacted,
  Runtime,
  Schedule,
  Schema,
  Scope,
  Stream,
  SubscriptionRef
} from "effect"
import { connect, Offset, type Client } from "rabbitmq-stream-js-client"

// =============================================================================================
// Models
// =============================================================================================

// ---------------------------------------------------------------------------------------------
// Messages: AMQP 1.0 values and sections, as consumers read them and producers write them
// ---------------------------------------------------------------------------------------------

/**
 * An AMQP 1.0 value (application properties, annotations, `amqp-value` bodies). The common types
 * are plain JavaScript: `null`, boolean, string, number (an AMQP `int`: an integer in the 32-bit
 * range; any other number is a `double`), bigint (`long`), `Uint8Array` (`binary`), `Date`
 * (`timestamp`), arrays (`list`). Every other type is an {@link AmqpTyped} that names it. Decoding
 * then encoding a value gives its AMQP type back.
 *
 * @since 0.1.0
 * @category messages
 */
export type AmqpValue =
  | null
  | boolean
  | string
  | number
  | bigint
  | Uint8Array
  | Date
  | ReadonlyArray<AmqpValue>
  | AmqpTyped

/**
 * An AMQP 1.0 value whose type has no plain JavaScript form: the tag is the AMQP type's name.
 *
 * @since 0.1.0
 * @category messages
 */
export type AmqpTyped =
  | { readonly _tag: "ubyte" | "ushort" | "uint" | "byte" | "short" | "float" | "double"; readonly value: number }
  | { readonly _tag: "ulong"; readonly value: bigint }
  /** A timestamp beyond the range of a `Date` (±8.64e15 ms), in milliseconds. */
  | { readonly _tag: "timestamp"; readonly value: bigint }
  | { readonly _tag: "char" | "symbol" | "uuid"; readonly value: string }
  | { readonly _tag: "decimal32" | "decimal64" | "decimal128"; readonly value: Uint8Array }
  /** An AMQP array: elements of one type. */
  | { readonly _tag: "array"; readonly value: ReadonlyArray<AmqpValue> }
  /** An AMQP map, as its entries (keys of any type, in order). */
  | { readonly _tag: "map"; readonly value: ReadonlyArray<readonly [AmqpValue, AmqpValue]> }
  | { readonly _tag: "described"; readonly descriptor: AmqpValue; readonly value: AmqpValue }

/**
 * Builds the {@link AmqpTyped} values: `Amqp.symbol("x")`, `Amqp.ulong(5n)`, `Amqp.uuid("...")`.
 *
 * @example
 * ```ts
 * import { Amqp, send } from "effect-stream-offsets"
 *
 * // Application properties of AMQP types JavaScript has no plain form for.
 * const program = send({
 *   stream: "orders",
 *   messages: [{
 *     body: "order 42",
 *     applicationProperties: {
 *       region: Amqp.symbol("eu"),
 *       amount: Amqp.ulong(4200n),
 *       id: Amqp.uuid("12345678-1234-5678-9abc-def012345678")
 *     }
 *   }]
 * })
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const Amqp = {
  ubyte: (value: number): AmqpTyped => ({ _tag: "ubyte", value }),
  ushort: (value: number): AmqpTyped => ({ _tag: "ushort", value }),
  uint: (value: number): AmqpTyped => ({ _tag: "uint", value }),
  ulong: (value: bigint): AmqpTyped => ({ _tag: "ulong", value }),
  byte: (value: number): AmqpTyped => ({ _tag: "byte", value }),
  short: (value: number): AmqpTyped => ({ _tag: "short", value }),
  float: (value: number): AmqpTyped => ({ _tag: "float", value }),
  double: (value: number): AmqpTyped => ({ _tag: "double", value }),
  char: (value: string): AmqpTyped => ({ _tag: "char", value }),
  symbol: (value: string): AmqpTyped => ({ _tag: "symbol", value }),
  /** A UUID in its text form (`12345678-1234-5678-9abc-def012345678`). */
  uuid: (value: string): AmqpTyped => ({ _tag: "uuid", value: value.toLowerCase() }),
  array: (value: ReadonlyArray<AmqpValue>): AmqpTyped => ({ _tag: "array", value }),
  map: (value: ReadonlyArray<readonly [AmqpValue, AmqpValue]>): AmqpTyped => ({ _tag: "map", value }),
  described: (descriptor: AmqpValue, value: AmqpValue): AmqpTyped => ({ _tag: "described", descriptor, value })
} as const

/**
 * A message id or correlation id: a string, a `ulong` (bigint), a binary, or a UUID (`Amqp.uuid`).
 *
 * @since 0.1.0
 * @category messages
 */
export type MessageId = string | bigint | Uint8Array | AmqpTyped

/**
 * The AMQP 1.0 properties section. Every field is optional.
 *
 * @since 0.1.0
 * @category messages
 */
export interface MessageProperties {
  /** The application's id of the message (e.g. for deduplication downstream). */
  readonly messageId?: MessageId | undefined
  /** The identity of the user who produced the message. */
  readonly userId?: Uint8Array | undefined
  /** The address the message is for. */
  readonly to?: string | undefined
  /** A summary of the message, for the application. */
  readonly subject?: string | undefined
  /** The address to send replies to. */
  readonly replyTo?: string | undefined
  /** The id of the message this one answers or belongs with. */
  readonly correlationId?: MessageId | undefined
  /** The body's MIME type, e.g. `application/json`. */
  readonly contentType?: string | undefined
  /** The body's encoding on top of its content type, e.g. `gzip`. */
  readonly contentEncoding?: string | undefined
  /** When the message expires. */
  readonly absoluteExpiryTime?: Date | undefined
  /** When the message was made. */
  readonly creationTime?: Date | undefined
  /** The group the message belongs to. */
  readonly groupId?: string | undefined
  /** The message's position in its group. */
  readonly groupSequence?: number | undefined
  /** The group replies belong to. */
  readonly replyToGroupId?: string | undefined
}

/**
 * The AMQP 1.0 header section (streams keep it as it was written).
 *
 * @since 0.1.0
 * @category messages
 */
export interface MessageHeader {
  /** Whether the message must survive a broker restart (a stream's messages always do). */
  readonly durable?: boolean | undefined
  /** The message's priority (0 to 255). */
  readonly priority?: number | undefined
  /** Milliseconds. */
  readonly ttl?: number | undefined
  /** Whether the message was not delivered before. */
  readonly firstAcquirer?: boolean | undefined
  /** How many failed deliveries the message had before. */
  readonly deliveryCount?: number | undefined
}

/**
 * A message as the consumer sees it: its offset, its body and, when the producer wrote them, the
 * AMQP 1.0 sections. The body is the message's data sections (joined when there are several); a
 * message whose body is an `amqp-value` section has it in `amqpValue`, and its `body` holds that
 * value's bytes when it is a string (UTF-8) or a binary, else nothing; an `amqp-sequence` body is in
 * `amqpSequence`. Bodies read from the broker are views of the delivered chunk: copy one you keep.
 *
 * @since 0.1.0
 * @category messages
 */
export interface StreamMessage {
  /** The message's offset in its stream. */
  readonly offset: bigint
  /** The body: the data sections, joined (a view of the delivered chunk: copy it to keep it). */
  readonly body: Uint8Array
  /** The AMQP 1.0 properties section, when the producer wrote one. */
  readonly properties?: MessageProperties | undefined
  /** The application properties: the application's own key-value pairs. */
  readonly applicationProperties?: Readonly<Record<string, AmqpValue>> | undefined
  /** The message annotations (e.g. `x-stream-filter-value`). */
  readonly messageAnnotations?: Readonly<Record<string, AmqpValue>> | undefined
  /** The AMQP 1.0 header section, when the producer wrote one. */
  readonly header?: MessageHeader | undefined
  /** An `amqp-value` body. */
  readonly amqpValue?: AmqpValue | undefined
  /** An `amqp-sequence` body: one list per section. */
  readonly amqpSequence?: ReadonlyArray<ReadonlyArray<AmqpValue>> | undefined
}

/**
 * What a stream holds at an offset that is not an AMQP 1.0 message this module can read (a broken
 * encoding, a compression it cannot undo, bytes written without AMQP by another client). The
 * consumer's `onDecodeError` decides what happens to it; the broker's own `subscribe` hands it on.
 *
 * @since 0.1.0
 * @category messages
 */
export class UndecodableMessage implements StreamMessage {
  /** Empty: there is no body to read. */
  readonly body: Uint8Array = new Uint8Array(0)
  /** An entry at `offset` that cannot be read, and why. */
  constructor(
    /** Its offset in the stream. */
    readonly offset: bigint,
    /** Why it could not be read. */
    readonly reason: string,
    /** The entry's bytes as stored (empty when they could not be isolated, e.g. compressed). */
    readonly data: Uint8Array
  ) {}
}

/**
 * A message to publish. Only `body` is required; the other sections are written as AMQP 1.0, so
 * that any stream client (or AMQP 1.0 and 0.9.1 clients of the stream as a queue) reads them.
 *
 * @since 0.1.0
 * @category messages
 */
export interface OutgoingMessage {
  /** The body: bytes, or text (written as UTF-8). */
  readonly body: Uint8Array | string
  /** The AMQP 1.0 properties section. */
  readonly properties?: MessageProperties | undefined
  /** The application properties: the application's own key-value pairs. */
  readonly applicationProperties?: Readonly<Record<string, AmqpValue>> | undefined
  /** Message annotations. */
  readonly messageAnnotations?: Readonly<Record<string, AmqpValue>> | undefined
  /** The AMQP 1.0 header section. */
  readonly header?: MessageHeader | undefined
  /** An `amqp-value` body instead of `body` (which is then not written). */
  readonly amqpValue?: AmqpValue | undefined
  /** An `amqp-sequence` body (one section per list) instead of `body`. */
  readonly amqpSequence?: ReadonlyArray<ReadonlyArray<AmqpValue>> | undefined
  /**
   * The value the broker indexes for stream filtering (RabbitMQ 3.13+). Also written as the message
   * annotation `x-stream-filter-value` (as RabbitMQ's AMQP 1.0 publishing does), where consumers
   * read it back; a message that has that annotation and no `filterValue` is filtered by it too.
   */
  readonly filterValue?: string | undefined
}

/**
 * The annotation that carries a message's filter value (the name RabbitMQ's AMQP 1.0 publishing uses).
 *
 * @since 0.1.0
 * @category messages
 */
export const FILTER_VALUE_ANNOTATION = "x-stream-filter-value"

/**
 * A message's filter value, as {@link OutgoingMessage.filterValue} wrote it: its `x-stream-filter-value` annotation.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { filterValueOf, receive, send } from "effect-stream-offsets"
 *
 * const program = Effect.gen(function*() {
 *   yield* send({ stream: "orders", messages: [{ body: "order 1", filterValue: "eu" }, { body: "order 2", filterValue: "us" }] })
 *   // The broker delivers only chunks that may hold "eu" messages; the consumer keeps just those.
 *   yield* receive({
 *     stream: "orders",
 *     consumerName: "eu-billing",
 *     filter: { values: ["eu"] },
 *     stop: { untilEnd: true },
 *     onMessage: (message) => Effect.log(`${filterValueOf(message)}: ${message.offset}`)
 *   })
 * })
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const filterValueOf = (message: StreamMessage): string | undefined => {
  const value = message.messageAnnotations?.[FILTER_VALUE_ANNOTATION]
  return typeof value === "string" ? value : undefined
}

// ---------------------------------------------------------------------------------------------
// Messages as JSON lines: what `receive --json` prints and `send --json` reads
// ---------------------------------------------------------------------------------------------

/**
 * A message as one JSON object (everything it carries but delivery annotations and a footer, which
 * are read past): `offset` (a string), `body` (UTF-8 text, or base64
 * with `"encoding": "base64"`), and when present `properties`, `applicationProperties`,
 * `messageAnnotations`, `header`, `amqpValue`, `amqpSequence`. AMQP values that JSON has (strings,
 * booleans, null, numbers that are AMQP ints or doubles, lists) are plain; every other type is an
 * object with one key naming it: `{"long": 5}`, `{"ulong": "18446744073709551615"}`,
 * `{"timestamp": "2026-12-02T03:24:31.500Z"}`, `{"binary": "AAE="}`, `{"uuid": "..."}`,
 * `{"symbol": "s"}`, `{"map": [[key, value], ...]}`, ... {@link messageFromJson} reads it back.
 *
 * @example
 * ```ts
 * import { messageToJson, type StreamMessage } from "effect-stream-offsets"
 *
 * const message: StreamMessage = { offset: 7n, body: new TextEncoder().encode("hello"), applicationProperties: { n: 5n } }
 * // One line of `receive --json`: offset "7", body "hello", the bigint as {"long": 5}.
 * console.log(JSON.stringify(messageToJson(message)))
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const messageToJson = (message: StreamMessage): Record<string, unknown> => jsonOfMessage(message)

/**
 * A message to publish from the JSON {@link messageToJson} writes (`offset` and `partition` are
 * ignored; `amqpValue` or `amqpSequence`, when present, is the body), plus `filterValue`. Fails with
 * an InvalidArgument that names the field.
 *
 * @example
 * ```ts
 * import { Effect, Either } from "effect"
 * import { messageFromJson, send } from "effect-stream-offsets"
 *
 * // JSON lines (as `receive --json` prints them) sent again: a line that is not a message fails
 * // the program, with an InvalidArgument that names the field.
 * const lines = [`{"body": "hello", "properties": {"contentType": "text/plain"}}`]
 * const program = Effect.gen(function*() {
 *   const messages = yield* Effect.forEach(lines, (line) => Either.flatMap(Either.try(() => JSON.parse(line)), messageFromJson))
 *   yield* send({ stream: "orders-copy", messages })
 * })
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const messageFromJson = (json: unknown): Either.Either<OutgoingMessage, InvalidArgument> => {
  try {
    return Either.right(outgoingOfJson(json))
  } catch (error) {
    // Whatever the JSON holds, the answer is a refusal, never an exception.
    return Either.left(new InvalidArgument({ message: error instanceof AmqpCodecError ? error.message : `not a message: ${errorText(error)}` }))
  }
}

/**
 * A message of {@link consume}. Commit it once it is processed: that marks it, and every message
 * before it, done, and the tracking strategy stores its offset (at once when a store falls due,
 * at the latest when the stream ends). A commit never moves the offset back, so committing only the
 * last message of a batch is enough.
 *
 * @since 0.1.0
 * @category consume
 */
export interface ConsumedMessage extends StreamMessage {
  /** Its position in this run of the consumer, from 0. */
  readonly index: number
  /** Marks this message, and every one before it, processed (see above). */
  readonly commit: Effect.Effect<void, OffsetStoreError>
}

const decoder = new TextDecoder()
/**
 * The body as UTF-8 text.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { bodyText, receive } from "effect-stream-offsets"
 *
 * const program = receive({
 *   stream: "orders",
 *   consumerName: "printer",
 *   stop: { count: 10 },
 *   onMessage: (message) => Effect.log(`${message.offset}: ${bodyText(message)}`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category messages
 */
export const bodyText = (message: StreamMessage): string => decoder.decode(message.body)

/**
 * Where a consumer starts when no offset is stored (or when the stored one is ignored).
 *
 * @since 0.1.0
 * @category models
 */
export type StartPosition = Data.TaggedEnum<{
  /** The first message the stream holds (the default). */
  First: {}
  /** The last chunk of the stream (the broker's unit of delivery): its messages, then what comes. */
  Last: {}
  /** The next message published: none of what the stream holds. */
  Next: {}
  /** The message at `offset` (or the first after it). */
  Offset: { readonly offset: bigint }
  /** Messages the broker received from about `date` on (it attaches at a chunk: a few from a little before may come). */
  Timestamp: { readonly date: Date }
}>
/**
 * Builds and matches {@link StartPosition}s: `StartPosition.First()`, `StartPosition.Offset({ offset: 42n })`, `StartPosition.$match`.
 *
 * @example
 * ```ts
 * import { receive, StartPosition } from "effect-stream-offsets"
 *
 * // With no stored offset, start with the next message published: skip the history.
 * const fromNow = receive({ stream: "orders", consumerName: "audit", start: StartPosition.Next(), stop: { count: 100 } })
 * // Read again from offset 1000, whatever is stored.
 * const replay = receive({
 *   stream: "orders",
 *   consumerName: "audit",
 *   start: StartPosition.Offset({ offset: 1000n }),
 *   ignoreStoredOffset: true,
 *   stop: { untilEnd: true }
 * })
 * // Or from a point in time: StartPosition.Timestamp({ date: new Date("2026-12-01T00:00:00Z") })
 * const describe = StartPosition.$match({
 *   First: () => "the first message",
 *   Last: () => "the last chunk",
 *   Next: () => "the next message",
 *   Offset: ({ offset }) => `offset ${offset}`,
 *   Timestamp: ({ date }) => date.toISOString()
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const StartPosition: Data.TaggedEnum.Constructor<StartPosition> = Data.taggedEnum<StartPosition>()

/**
 * Retention of a stream: what `send` declares.
 *
 * @since 0.1.0
 * @category models
 */
export interface Retention {
  /** `max-length-bytes`. Default 2 GB, as in the tutorial. */
  readonly maxLengthBytes?: number | undefined
  /** `max-age`, e.g. "7D", "12h". Default none. */
  readonly maxAge?: string | undefined
  /** `stream-max-segment-size-bytes`. Default the broker's (500 MB). */
  readonly maxSegmentSizeBytes?: number | undefined
  /**
   * `initial-cluster-size`: on a cluster, how many nodes hold the stream (a leader and replicas).
   * Default the broker's (every node, up to its limit). Not part of the comparison with an
   * existing stream: the broker does not hold it against a later declaration.
   */
  readonly initialClusterSize?: number | undefined
  /**
   * `stream-filter-size-bytes` (16 to 255): the size of each chunk's Bloom filter for stream
   * filtering; larger means fewer chunks delivered for nothing. Default the broker's (16).
   */
  readonly filterSizeBytes?: number | undefined
}

/**
 * The retention `send` declares by default: 2 GB `max-length-bytes`, as in the tutorial.
 *
 * @since 0.1.0
 * @category models
 */
export const DEFAULT_RETENTION: Retention = { maxLengthBytes: 2_000_000_000 }

/**
 * What a publisher's confirmations look like, in the order the broker sends them.
 *
 * @since 0.1.0
 * @category models
 */
export type Confirmation = Data.TaggedEnum<{
  /** The broker has these entries (stored, or already had them: a named publisher's duplicates). */
  Confirmed: { readonly publishingIds: ReadonlyArray<bigint> }
  /** The broker refused this entry, with the protocol's response code: it is not in the stream. */
  Rejected: { readonly publishingId: bigint; readonly code: number }
}>
/**
 * Builds and matches {@link Confirmation}s.
 *
 * @since 0.1.0
 * @category models
 */
export const Confirmation: Data.TaggedEnum.Constructor<Confirmation> = Data.taggedEnum<Confirmation>()

/**
 * What a stream holds right now: the first offset, and the offset of its last message.
 *
 * @since 0.1.0
 * @category models
 */
export interface StreamBounds {
  /** The first offset the stream holds; `None` when it is empty. */
  readonly firstOffset: Option.Option<bigint>
  /** The offset of the last message; `None` when it has none. */
  readonly lastOffset: Option.Option<bigint>
}

/**
 * What the broker connection is doing, for users to watch ({@link StreamBrokerShape.connectionState}).
 * Each transition is also logged once (a warning when the connection is lost or an attempt fails
 * for the first time in an outage, info when it is back).
 *
 * @since 0.1.0
 * @category models
 */
export type ConnectionState = Data.TaggedEnum<{
  /** Trying to connect: `attempt` of this outage, which began at `since`; the last error seen. */
  Connecting: { readonly attempt: number; readonly since: Date; readonly lastError: string | undefined }
  /** Connected since `since`, to `endpoint` (the node, as {@link describeConnection} prints it). */
  Connected: { readonly endpoint: string; readonly since: Date }
  /** The retry policy gave up (or the failure is permanent); the next broker call starts over. */
  Disconnected: { readonly since: Date; readonly reason: string }
}>
/**
 * Builds and matches {@link ConnectionState}s: `ConnectionState.$is("Connected")`, `ConnectionState.$match`.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { ConnectionState, StreamBroker } from "effect-stream-offsets"
 *
 * // Log every change of the broker connection (e.g. for a health check).
 * const watch = Effect.gen(function*() {
 *   const broker = yield* StreamBroker
 *   yield* Stream.runForEach(broker.connectionChanges, (state) =>
 *     Effect.log(ConnectionState.$match(state, {
 *       Connecting: ({ attempt }) => `connecting (attempt ${attempt})`,
 *       Connected: ({ endpoint }) => `connected to ${endpoint}`,
 *       Disconnected: ({ reason }) => `disconnected: ${reason}`
 *     })))
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const ConnectionState: Data.TaggedEnum.Constructor<ConnectionState> = Data.taggedEnum<ConnectionState>()

/**
 * When offsets are stored while consuming. Whatever the strategy, the last processed offset is
 * also stored when the consumer stops (marker, count, end, idle, signal, failure, interruption).
 *
 * @since 0.1.0
 * @category models
 */
export type TrackingStrategy = Data.TaggedEnum<{
  /** The tutorial's policy: after every `every` messages (and at the stop). */
  Manual: { readonly every: number }
  /** After `messages` messages, and at least every `interval` while messages come. */
  Auto: { readonly messages: number; readonly interval: Duration.DurationInput }
  /** Only at the stop. */
  None: {}
}>
/**
 * Builds {@link TrackingStrategy}s: `TrackingStrategy.Manual({ every: 100 })`, `TrackingStrategy.Auto({ ... })`, `TrackingStrategy.None()`.
 *
 * @example
 * ```ts
 * import { receive, TrackingStrategy } from "effect-stream-offsets"
 *
 * // Store every 10,000 messages, and at least every 5 seconds while messages come (and at the stop).
 * const program = receive({
 *   stream: "orders",
 *   consumerName: "billing",
 *   tracking: TrackingStrategy.Auto({ messages: 10_000, interval: "5 seconds" }),
 *   stop: { idleTimeout: "30 seconds" }
 * })
 * ```
 *
 * @since 0.1.0
 * @category models
 */
export const TrackingStrategy: Data.TaggedEnum.Constructor<TrackingStrategy> = Data.taggedEnum<TrackingStrategy>()
/**
 * The tracking strategy of `consume` and `receive` by default: the tutorial's, every 10 messages (and at the stop).
 *
 * @since 0.1.0
 * @category models
 */
export const DEFAULT_TRACKING: TrackingStrategy = TrackingStrategy.Manual({ every: 10 })
/**
 * An `Auto` strategy as the other stream clients have it: every 10,000 messages, and every 5 seconds while messages come.
 *
 * @since 0.1.0
 * @category models
 */
export const DEFAULT_AUTO_TRACKING: TrackingStrategy = TrackingStrategy.Auto({ messages: 10_000, interval: "5 seconds" })

/**
 * What ends a consumer. With none of them it runs until `signal` completes or it is interrupted.
 *
 * @since 0.1.0
 * @category models
 */
export interface StopConditions {
  /**
   * Stop after the message for which this is true, e.g. {@link isTutorialMarker} (the tutorial's
   * last message, whose body is `marker`). Default none: a body is a body.
   */
  readonly marker?: ((message: StreamMessage) => boolean) | false | undefined
  /** Stop after this many messages. */
  readonly count?: number | undefined
  /** Stop once the last message that was in the stream when consuming started is processed. */
  readonly untilEnd?: boolean | undefined
  /** Stop when no message comes for this long. */
  readonly idleTimeout?: Duration.DurationInput | undefined
  /** Stop (cleanly, with a summary) when this completes: e.g. on SIGINT. */
  readonly signal?: Effect.Effect<void> | undefined
}

/**
 * Why a consumer stopped: the stop condition that ended it ({@link StopConditions}; `"end"` is `untilEnd`, `"idle"` the idle timeout).
 *
 * @since 0.1.0
 * @category models
 */
export type StopReason = "marker" | "count" | "end" | "idle" | "signal"

/**
 * The tutorial's last message: its body is `marker`.
 *
 * @since 0.1.0
 * @category models
 */
export const isTutorialMarker = (message: StreamMessage): boolean => {
  // Compared as bytes: decoding every body to text costs more than the rest of a consumer's work.
  const body = message.body
  if (body.length !== MARKER.length) return false
  for (let i = 0; i < MARKER.length; i++) if (body[i] !== MARKER[i]) return false
  return true
}
const MARKER = new TextEncoder().encode("marker")

/**
 * The tutorial's messages: `hello 0` ... `hello N-2`, then `marker`.
 *
 * @since 0.1.0
 * @category models
 */
export function* tutorialMessages(count: number): Generator<string> {
  for (let i = 0; i < count - 1; i++) yield `hello ${i}`
  if (count > 0) yield "marker"
}

/**
 * A super stream: partition streams behind one name, `name-<binding key>` (by default the keys are
 * "0" ... "n-1", so `name-0` ... `name-(n-1)`), each an ordinary stream with its own offsets.
 *
 * @since 0.1.0
 * @category super streams
 */
export interface SuperStreamOptions {
  /** How many partitions, when `bindingKeys` is not given. Default 3. */
  readonly partitions?: number | undefined
  /** The binding key of each partition, in partition order (e.g. ["eu", "us"]). Default "0" ... "n-1". */
  readonly bindingKeys?: ReadonlyArray<string> | undefined
  /** The retention of every partition. Default {@link DEFAULT_RETENTION}. */
  readonly retention?: Retention | undefined
}

/** The binding keys a super stream is declared with: as given, else "0" ... "n-1". */
const bindingKeysOf = (options: SuperStreamOptions): ReadonlyArray<string> =>
  options.bindingKeys ?? Array.from({ length: options.partitions ?? 3 }, (_, i) => String(i))

/** The partition stream of a super stream for a binding key, as the broker names it. */
const partitionStream = (superStream: string, bindingKey: string): string => `${superStream}-${bindingKey}`

/**
 * How a message finds its partition. `Hash` (the default, as in the other stream clients):
 * MurmurHash3 (x86, 32 bits, seed 104729) of the routing key modulo the number of partitions; the
 * key is the body unless `key` gives another. `Key`: the partition whose binding key is the key
 * (the broker's routing: a key bound to no partition fails the send). The same key always goes to
 * the same partition, so messages with one key keep their order.
 *
 * @since 0.1.0
 * @category super streams
 */
export type Routing = Data.TaggedEnum<{
  /** MurmurHash3 of `key(body)` (default: the body) modulo the number of partitions. */
  Hash: { readonly key?: ((body: Uint8Array) => string | Uint8Array) | undefined }
  /** The partition whose binding key is `key(body)`. */
  Key: { readonly key: (body: Uint8Array) => string }
}>
/**
 * Builds {@link Routing}s: `Routing.Hash({})`, `Routing.Hash({ key })`, `Routing.Key({ key })`.
 *
 * @example
 * ```ts
 * import { Routing, sendToSuperStream } from "effect-stream-offsets"
 *
 * const orders = [{ customer: "c-1", id: 1 }, { customer: "c-2", id: 2 }, { customer: "c-1", id: 3 }]
 * // Hash routing on the customer: one customer's orders go to one partition, in order.
 * const program = sendToSuperStream({
 *   superStream: "orders",
 *   partitions: 3,
 *   messages: orders.map((order) => JSON.stringify(order)),
 *   routing: Routing.Hash({ key: (body) => JSON.parse(new TextDecoder().decode(body)).customer })
 * })
 * ```
 *
 * @since 0.1.0
 * @category super streams
 */
export const Routing: Data.TaggedEnum.Constructor<Routing> = Data.taggedEnum<Routing>()

/**
 * MurmurHash3 x86_32 of a key (a string is hashed as UTF-8): the hash of hash routing.
 *
 * @since 0.1.0
 * @category super streams
 */
export const murmur3 = (key: string | Uint8Array, seed = 104729): number => {
  const data = typeof key === "string" ? encoder.encode(key) : key
  const c1 = 0xcc9e2d51
  const c2 = 0x1b873593
  const mix = (k: number) => Math.imul(rotl(Math.imul(k, c1), 15), c2)
  let h = seed | 0
  const tail = data.length & ~3
  for (let i = 0; i < tail; i += 4) {
    h ^= mix(data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24))
    h = (Math.imul(rotl(h, 13), 5) + 0xe6546b64) | 0
  }
  const rest = data.length & 3
  if (rest > 0) {
    let k = data[tail]!
    if (rest > 1) k |= data[tail + 1]! << 8
    if (rest > 2) k |= data[tail + 2]! << 16
    h ^= mix(k)
  }
  h ^= data.length
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}
const rotl = (x: number, r: number) => (x << r) | (x >>> (32 - r))
const encoder = new TextEncoder()

/**
 * The partition index hash routing picks for a key.
 *
 * @since 0.1.0
 * @category super streams
 */
export const hashPartition = (key: string | Uint8Array, partitions: number): number => murmur3(key) % partitions

/**
 * A message of a super stream, with the partition it was read from.
 *
 * @since 0.1.0
 * @category super streams
 */
export interface PartitionMessage extends StreamMessage {
  /** The partition stream it was read from. */
  readonly partition: string
}
// =============================================================================================
// Errors
// =============================================================================================

/**
 * The type of `Data.TaggedError(tag)`, spelled out so that the module's types are explicit.
 * (Each error's base below, like each service's tag class further on, is marked `@ignore` after
 * `const`: `deno doc` looks for a referenced const's tags at its name, not before `const`. The docs
 * then show the class, and `deno doc --lint` does not ask for the base to be exported. Not
 * `@internal`: `stripInternal` would drop the base from the declarations, and the class with it.)
 */
type TaggedErrorClass<Tag extends string, A> = new(
  args: A
) => Cause.YieldableError & { readonly _tag: Tag } & Readonly<A>

const /** @ignore (the base of InvalidArgument) */ InvalidArgumentBase: TaggedErrorClass<"InvalidArgument", { readonly message: string }> = Data.TaggedError("InvalidArgument")
/**
 * Bad input from the caller: a malformed URI, a non-positive count, an invalid stream name.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidArgument extends InvalidArgumentBase {}

const /** @ignore (the base of ConnectionError) */ ConnectionErrorBase: TaggedErrorClass<"ConnectionError", {
  readonly message: string
  readonly cause?: unknown
  /** True for a broker that may answer later (refused, reset, no answer); false for credentials or vhost. */
  readonly retryable?: boolean
}> = Data.TaggedError("ConnectionError")
/**
 * The broker could not be reached or refused the connection (credentials, vhost).
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionError extends ConnectionErrorBase {}

const /** @ignore (the base of ConnectionLost) */ ConnectionLostBase: TaggedErrorClass<"ConnectionLost", { readonly during: string; readonly reason: string }> = Data
  .TaggedError("ConnectionLost")
/**
 * An open connection was lost (the broker restarted, the network dropped): worth retrying.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConnectionLost extends ConnectionLostBase {
  /** The error in one line. */
  override get message(): string {
    return `the connection to the broker was lost while ${this.during}: ${this.reason}`
  }
}

const /** @ignore (the base of StreamNotFound) */ StreamNotFoundBase: TaggedErrorClass<"StreamNotFound", { readonly stream: string }> = Data.TaggedError("StreamNotFound")
/**
 * The stream does not exist.
 *
 * @since 0.1.0
 * @category errors
 */
export class StreamNotFound extends StreamNotFoundBase {
  /** The error in one line. */
  override get message(): string {
    return `stream "${this.stream}" does not exist`
  }
}

const /** @ignore (the base of StreamPreconditionFailed) */ StreamPreconditionFailedBase: TaggedErrorClass<"StreamPreconditionFailed", { readonly stream: string }> = Data.TaggedError("StreamPreconditionFailed")
/**
 * The stream exists with other arguments (retention) than the ones declared.
 *
 * @since 0.1.0
 * @category errors
 */
export class StreamPreconditionFailed extends StreamPreconditionFailedBase {
  /** The error in one line. */
  override get message(): string {
    return `stream "${this.stream}" already exists with different arguments (retention): declare it with the same ones, or use another stream name`
  }
}

/**
 * Why a broker command's failure may pass, set where the error is made: the stream has no leader
 * (code 6: a cluster electing one), a resource alarm refuses new publishers (code 17), or the
 * connection failed under the command or the broker did not answer (a new connection is needed).
 *
 * @since 0.1.0
 * @category errors
 */
export type Transient = "noLeader" | "alarm" | "connectionGone"

const /** @ignore (the base of BrokerError) */ BrokerErrorBase: TaggedErrorClass<"BrokerError", {
  readonly operation: string
  readonly code?: number
  readonly reason: string
  readonly cause?: unknown
  readonly transient?: Transient | undefined
}> = Data.TaggedError("BrokerError")
/**
 * A broker command failed; `code` is the protocol's response code when the broker sent one, and
 * `transient` says why it may pass (the retry policy waits it out) or is undefined (it will not:
 * failed at once).
 *
 * @since 0.1.0
 * @category errors
 */
export class BrokerError extends BrokerErrorBase {
  /** The error in one line. */
  override get message(): string {
    return `${this.operation} failed: ${this.reason}`
  }
}

const /** @ignore (the base of PublishError) */ PublishErrorBase: TaggedErrorClass<"PublishError", {
  readonly stream: string
  readonly publishingId: bigint
  readonly code: number
}> = Data.TaggedError("PublishError")
/**
 * The broker refused a published message (it is NOT in the stream).
 *
 * @since 0.1.0
 * @category errors
 */
export class PublishError extends PublishErrorBase {
  /** The error in one line. */
  override get message(): string {
    return `the broker rejected message ${this.publishingId} on stream "${this.stream}" with code ${this.code} (${codeName(this.code)})`
  }
}

const /** @ignore (the base of ConfirmTimeout) */ ConfirmTimeoutBase: TaggedErrorClass<"ConfirmTimeout", {
  readonly stream: string
  readonly unconfirmed: number
  readonly timeout: Duration.Duration
}> = Data.TaggedError("ConfirmTimeout")
/**
 * Not every published message was confirmed in time: they may or may not be in the stream.
 *
 * @since 0.1.0
 * @category errors
 */
export class ConfirmTimeout extends ConfirmTimeoutBase {
  /** The error in one line. */
  override get message(): string {
    return `${this.unconfirmed} message(s) on stream "${this.stream}" were not confirmed within ${
      Duration.format(this.timeout)
    } (the broker is not answering, or refuses publishers: a disk alarm; a named producer waits that out)`
  }
}

const /** @ignore (the base of OffsetStoreError) */ OffsetStoreErrorBase: TaggedErrorClass<"OffsetStoreError", {
  readonly operation: "store" | "query"
  readonly consumerName: string
  readonly stream: string
  readonly cause: unknown
}> = Data.TaggedError("OffsetStoreError")
/**
 * The offset store could not store or query an offset.
 *
 * @since 0.1.0
 * @category errors
 */
export class OffsetStoreError extends OffsetStoreErrorBase {
  /** The error in one line. */
  override get message(): string {
    return `could not ${this.operation} the offset of consumer "${this.consumerName}" on stream "${this.stream}": ${
      errorText(this.cause)
    }`
  }
}

const /** @ignore (the base of SuperStreamNotFound) */ SuperStreamNotFoundBase: TaggedErrorClass<"SuperStreamNotFound", { readonly superStream: string }> = Data.TaggedError(
  "SuperStreamNotFound"
)
/**
 * The super stream does not exist.
 *
 * @since 0.1.0
 * @category errors
 */
export class SuperStreamNotFound extends SuperStreamNotFoundBase {
  /** The error in one line. */
  override get message(): string {
    return `super stream "${this.superStream}" does not exist`
  }
}

const /** @ignore (the base of SuperStreamMismatch) */ SuperStreamMismatchBase: TaggedErrorClass<"SuperStreamMismatch", {
  readonly superStream: string
  readonly expected: ReadonlyArray<string>
  readonly actual: ReadonlyArray<string>
}> = Data.TaggedError("SuperStreamMismatch")
/**
 * The super stream exists with other partitions than the declaration asks for.
 *
 * @since 0.1.0
 * @category errors
 */
export class SuperStreamMismatch extends SuperStreamMismatchBase {
  /** The error in one line. */
  override get message(): string {
    const list = (names: ReadonlyArray<string>) => names.length === 0 ? "none" : names.join(", ")
    return `super stream "${this.superStream}" exists with partitions ${list(this.actual)}, not ${
      list(this.expected)
    }: declare it as it is (${this.actual.length} partitions), or use another name`
  }
}

const /** @ignore (the base of MessageDecodeError) */ MessageDecodeErrorBase: TaggedErrorClass<"MessageDecodeError", {
  readonly stream: string
  readonly offset: bigint
  readonly reason: string
}> = Data.TaggedError("MessageDecodeError")
/**
 * A message that cannot be decoded ended the consumer (`onDecodeError: "fail"`, the default): the
 * messages before it were processed and their offset stored.
 *
 * @since 0.1.0
 * @category errors
 */
export class MessageDecodeError extends MessageDecodeErrorBase {
  /** The error in one line. */
  override get message(): string {
    return `the message at offset ${this.offset} of stream "${this.stream}" cannot be decoded (${this.reason}); the consumer stopped before it (onDecodeError "skip" moves past such messages)`
  }
}

/**
 * What the broker can answer with: every workflow may fail with these.
 *
 * @since 0.1.0
 * @category errors
 */
export type StreamError =
  | BrokerError
  | StreamNotFound
  | StreamPreconditionFailed
  | SuperStreamNotFound
  | SuperStreamMismatch
  | ConnectionError
  | ConnectionLost

/**
 * How `send` can fail.
 *
 * @since 0.1.0
 * @category errors
 */
export type SendError =
  | InvalidArgument
  | BrokerError
  | StreamNotFound
  | StreamPreconditionFailed
  | SuperStreamNotFound
  | SuperStreamMismatch
  | PublishError
  | ConfirmTimeout
  | ConnectionLost
  | ConnectionError

/**
 * How `consume` and `receive` can fail (besides what `onMessage` fails with).
 *
 * @since 0.1.0
 * @category errors
 */
export type ConsumeError = StreamError | OffsetStoreError | InvalidArgument | MessageDecodeError

const STREAM_NAME = /^[^\s]{1,255}$/
/** A stream name the broker takes: 1 to 255 characters, no white space, not starting with "amq.". */
const validateStreamName = (stream: string): Effect.Effect<void, InvalidArgument> =>
  STREAM_NAME.test(stream) && !stream.startsWith("amq.")
    ? Effect.void
    : Effect.fail(
      new InvalidArgument({
        message: `invalid stream name "${stream}": use 1 to 255 characters, no spaces, not starting with "amq."`
      })
    )

/**
 * A consumer or producer name (the broker's offset-tracking reference, the deduplication name): 1 to
 * 255 bytes of UTF-8. The broker silently ignores a store under a longer one.
 */
const validateName = (what: "consumer name" | "producer name", name: string): Effect.Effect<void, InvalidArgument> => {
  const bytes = new TextEncoder().encode(name).length
  return bytes >= 1 && bytes <= 255
    ? Effect.void
    : Effect.fail(
      new InvalidArgument({ message: `the ${what} must be 1 to 255 bytes long, got ${bytes === 0 ? "an empty one" : `${bytes} bytes`}` })
    )
}

/** A super stream's name and partitions: checked before the broker sees them; gives the binding keys. */
const validateSuperStream = (
  superStream: string,
  options: SuperStreamOptions
): Effect.Effect<ReadonlyArray<string>, InvalidArgument> =>
  Effect.gen(function*() {
    const invalid = (message: string) => Effect.fail(new InvalidArgument({ message }))
    yield* validateStreamName(superStream)
    const count = options.partitions
    if (options.bindingKeys === undefined && count !== undefined && !(Number.isSafeInteger(count) && count > 0)) {
      return yield* invalid(`the number of partitions must be a positive integer, got ${count}`)
    }
    const keys = bindingKeysOf(options)
    if (keys.length === 0) return yield* invalid("a super stream needs at least one partition")
    if (new Set(keys).size !== keys.length) return yield* invalid(`the binding keys must differ, got ${keys.join(", ")}`)
    for (const key of keys) yield* validateStreamName(partitionStream(superStream, key))
    return keys
  })

/**
 * What {@link send} checks of its options before it touches the broker: the stream name, the
 * producer name and publishing options, the retention. The CLI checks the same before it connects.
 *
 * @since 0.1.0
 * @category validation
 */
export const validateSendOptions = (options: SendOptions): Effect.Effect<void, InvalidArgument> =>
  validateProducing(options.stream, options, options.retention ?? DEFAULT_RETENTION)

/**
 * What {@link sendToSuperStream} checks of its options before it touches the broker (as {@link validateSendOptions}).
 *
 * @since 0.1.0
 * @category validation
 */
export const validateSuperStreamSendOptions = (options: SuperStreamSendOptions): Effect.Effect<void, InvalidArgument> =>
  Effect.zipRight(validateSuperStream(options.superStream, options), validateProducing(undefined, options, options.retention ?? DEFAULT_RETENTION))

/**
 * What {@link Producer.make} and {@link Producer.layer} check of their options before they touch the broker.
 *
 * @since 0.1.0
 * @category validation
 */
export const validateProducerOptions = (options: ProducerOptions): Effect.Effect<void, InvalidArgument> =>
  validateProducing(options.stream, { ...options, producerName: options.name }, options.retention)

/**
 * What {@link consume} and {@link receive} check of their options before they touch the broker:
 * the stream and consumer names, the tracking strategy, the stop conditions, the filter, the
 * decode policy. The CLI checks the same before it connects.
 *
 * @since 0.1.0
 * @category validation
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { validateConsumeOptions } from "effect-stream-offsets"
 *
 * // Fails with InvalidArgument: "the consumer name must be 1 to 255 bytes long, got an empty one"
 * const checked = validateConsumeOptions({ stream: "orders", consumerName: "" })
 * Effect.runPromiseExit(checked).then(console.log)
 * ```
 */
export const validateConsumeOptions = (options: ConsumeOptions): Effect.Effect<void, InvalidArgument> =>
  Effect.gen(function*() {
    const invalid = (message: string) => Effect.fail(new InvalidArgument({ message }))
    yield* validateStreamName(options.stream)
    yield* validateName("consumer name", options.consumerName)
    const tracking = options.tracking ?? DEFAULT_TRACKING
    const count = storeEvery(tracking)
    if (count !== undefined && !(Number.isInteger(count) && count > 0)) {
      return yield* invalid(`the tracking message count must be a positive integer, got ${count}`)
    }
    // A zero interval would store in a loop that never yields (and never ends).
    if (tracking._tag === "Auto" && !(Duration.toMillis(tracking.interval) > 0)) {
      return yield* invalid("the auto tracking interval must be longer than 0")
    }
    yield* validateStop(options.stop)
    yield* validateFilter(options.filter, options.stop)
    const policy = options.onDecodeError
    if (policy !== undefined && policy !== "fail" && policy !== "skip") {
      return yield* invalid(`onDecodeError must be "fail" or "skip", got ${JSON.stringify(policy)}`)
    }
  })

/**
 * What {@link consumeSuperStream} and {@link receiveSuperStream} check of their options before they touch the broker.
 *
 * @since 0.1.0
 * @category validation
 */
export const validateSuperStreamConsumeOptions = (
  options: Omit<ConsumeOptions, "stream"> & { readonly superStream: string }
): Effect.Effect<void, InvalidArgument> => validateConsumeOptions({ ...options, stream: options.superStream })

const validateProducing = (stream: string | undefined, tuning: SendTuning, retention: Retention | undefined) =>
  Effect.all([
    stream === undefined ? Effect.void : validateStreamName(stream),
    validateSendTuning(tuning),
    retention === undefined ? Effect.void : validateRetention(retention)
  ], { discard: true })

/** A stream argument `max-age` as the broker takes it: a positive number and one of Y M D h m s. */
const MAX_AGE = /^[1-9][0-9]*[YMDhms]$/
/** The retention arguments a stream can be declared with: checked before the broker sees them. */
const validateRetention = (retention: Retention): Effect.Effect<void, InvalidArgument> => {
  const positive = (n: number | undefined) => n === undefined || (Number.isSafeInteger(n) && n > 0)
  if (retention.maxAge !== undefined && !MAX_AGE.test(retention.maxAge)) {
    return Effect.fail(
      new InvalidArgument({ message: `max-age must be a number and a unit (Y, M, D, h, m, s), e.g. 7D or 12h, got "${retention.maxAge}"` })
    )
  }
  for (const [name, value] of [
    ["max-length-bytes", retention.maxLengthBytes],
    ["stream-max-segment-size-bytes", retention.maxSegmentSizeBytes],
    ["initial-cluster-size", retention.initialClusterSize]
  ] as const) {
    if (!positive(value)) return Effect.fail(new InvalidArgument({ message: `${name} must be a positive integer, got ${value}` }))
  }
  const filterSize = retention.filterSizeBytes
  if (filterSize !== undefined && !(Number.isInteger(filterSize) && filterSize >= 16 && filterSize <= 255)) {
    return Effect.fail(new InvalidArgument({ message: `stream-filter-size-bytes must be an integer from 16 to 255, got ${filterSize}` }))
  }
  return Effect.void
}

// =============================================================================================
// Configuration
// =============================================================================================

/**
 * One broker node to connect to.
 *
 * @since 0.1.0
 * @category configuration
 */
export interface Endpoint {
  /** Host name or IP address. */
  readonly host: string
  /** The stream protocol's port: 5552 by default, 5551 with TLS. */
  readonly port: number
}

/**
 * TLS (`rabbitmq-stream+tls://`). The broker's certificate chain and host name are always verified
 * unless `insecureSkipVerify` says otherwise; the same options serve every connection (locator,
 * publishers, consumers), which go to the host the broker advertises.
 *
 * @since 0.1.0
 * @category configuration
 */
export interface TlsOptions {
  /** PEM of the CA(s) that signed the broker's certificate. Default: the runtime's trusted CAs. */
  readonly ca?: string | Uint8Array | undefined
  /** PEM client certificate and its key, for brokers that require one (mutual TLS). */
  readonly cert?: string | Uint8Array | undefined
  /** PEM private key of `cert`. */
  readonly key?: Redacted.Redacted<string | Uint8Array> | undefined
  /** The name the broker's certificate must carry, when it differs from the host connected to. */
  readonly servername?: string | undefined
  /** Accept any certificate, verifying nothing. Never the default; a warning is logged on every connect. */
  readonly insecureSkipVerify?: boolean | undefined
}

/**
 * Where the broker is. Build it with {@link parseUri} or read it with {@link ConnectionConfig.fromEnv}.
 *
 * @since 0.1.0
 * @category configuration
 */
export interface ConnectionConfig {
  /**
   * The nodes to connect to, tried in turn: connecting and reconnecting rotate through them, so
   * losing the node of the first one is survivable. At least one.
   */
  readonly endpoints: ReadonlyArray<Endpoint>
  /** The user to authenticate as. */
  readonly username: string
  /** Its password (redacted: never printed). */
  readonly password: Redacted.Redacted<string>
  /** The virtual host, e.g. "/". */
  readonly vhost: string
  /** Bound on one connection attempt (the client never settles on a wrong password). Default 10 s. */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Bound on one attempt of every other broker call (store, query, declare, close). Default 10 s. */
  readonly requestTimeout?: Duration.DurationInput | undefined
  /**
   * How often the broker and the client send heartbeats on an idle connection (negotiated at
   * connect; whole seconds, at least 1). A connection on which nothing arrives for two heartbeats
   * and a second (a frozen broker, a network partition: nothing is closed) is taken as lost, and
   * replaced; a close on a connection silent for a heartbeat and a second is not waited for.
   * Default 5 s.
   */
  readonly heartbeat?: Duration.DurationInput | undefined
  /** The name the broker shows for the connection (management UI, `rabbitmqctl`). */
  readonly connectionName?: string | undefined
  /**
   * The one retry policy for everything that can fail for a while and then work again: connecting
   * and reconnecting (refused, reset, no answer), and every call, publisher and consumer while a
   * stream has no leader (code 6, "not found on any node"). Wrong credentials, a missing vhost and
   * a deleted stream are never retried. Default {@link retryFor}(2 minutes): exponential backoff
   * from 100 ms to 5 s with jitter, for at most 2 minutes per outage (a rolling restart).
   */
  readonly retry?: Schedule.Schedule<unknown, StreamError> | undefined
  /** Connect with TLS (set by a `rabbitmq-stream+tls://` URI); certificates are verified. */
  readonly tls?: TlsOptions | undefined
  /**
   * How the client authenticates (SASL): `"plain"`, the username and password (the default), or
   * `"external"`, the TLS client certificate is the identity (`tls.cert` and `tls.key` needed; the
   * broker needs its `rabbitmq_auth_mechanism_ssl` plugin and EXTERNAL among its
   * `auth_mechanisms`; username and password are not sent). A URI sets it with
   * `?auth_mechanism=external`.
   */
  readonly sasl?: "plain" | "external" | undefined
  /**
   * The endpoints are load balancers (or proxies) in front of the cluster, not its nodes: every
   * connection goes through them, and one that lands on another node than the one a publisher
   * (the stream's leader) or consumer (a replica) needs is closed and tried again, a bounded number
   * of times. The nodes' advertised hosts need not be reachable. Default false: publishers and
   * consumers connect to the advertised host of their node.
   */
  readonly loadBalancer?: boolean | undefined
}

/**
 * Where the broker is by default (`RABBITMQ_STREAM_URI` unset): the tutorial's local broker, as guest.
 *
 * @since 0.1.0
 * @category configuration
 */
export const DEFAULT_URI = "rabbitmq-stream://guest:guest@localhost:5552/%2f"

/**
 * How long, by default, an outage is waited out before an operation fails.
 *
 * @since 0.1.0
 * @category configuration
 */
export const DEFAULT_RETRY_FOR: Duration.Duration = Duration.minutes(2)

/**
 * The default retry policy, for at most `duration` per outage: exponential backoff from 100 ms,
 * doubling, at most 5 s between tries, with jitter. `retryFor(0)` never retries.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { parseUri, retryFor, StreamBroker } from "effect-stream-offsets"
 *
 * // Wait out an outage for up to 10 minutes (a long maintenance) instead of 2.
 * const config = Either.getOrThrow(parseUri("rabbitmq-stream://guest:guest@localhost:5552/%2f"))
 * const BrokerLive = StreamBroker.layer({ ...config, retry: retryFor("10 minutes") })
 * ```
 *
 * @since 0.1.0
 * @category configuration
 */
export const retryFor = (duration: Duration.DurationInput): Schedule.Schedule<unknown, StreamError> =>
  Duration.toMillis(duration) <= 0
    ? Schedule.stop
    : Schedule.exponential("100 millis").pipe(
      Schedule.union(Schedule.spaced("5 seconds")),
      Schedule.jittered,
      Schedule.upTo(duration)
    )

const URI_SHAPE =
  "rabbitmq-stream://user:pass@host:5552/vhost or rabbitmq-stream+tls://user:pass@host:5551/vhost (several nodes: host1:5552,host2:5552; a client certificate as the identity: ?auth_mechanism=external)"

/**
 * Parses `rabbitmq-stream://user:pass@host:port/vhost`, `rabbitmq-stream+tls://...` (TLS, with
 * verification; default port 5551), or with several nodes
 * `rabbitmq-stream://user:pass@host1:port1,host2:port2/vhost`. The vhost is URL-encoded (`%2f`
 * is `/`); an empty path means `/`; the port defaults to 5552. One query parameter is known:
 * `auth_mechanism=external` (or `plain`), with TLS only. Errors never contain the password.
 *
 * @example
 * ```ts
 * import { Either } from "effect"
 * import { parseUri, StreamBroker } from "effect-stream-offsets"
 *
 * // Two nodes, vhost "/": connecting tries them in turn.
 * const config = Either.getOrThrowWith(
 *   parseUri("rabbitmq-stream://guest:guest@node1:5552,node2:5552/%2f"),
 *   (error) => new Error(error.message)
 * )
 * const BrokerLive = StreamBroker.layer(config)
 * ```
 *
 * @since 0.1.0
 * @category configuration
 */
export const parseUri = (uri: string): Either.Either<ConnectionConfig, InvalidArgument> => {
  const invalid = (why: string) => Either.left(new InvalidArgument({ message: `${why}: expected ${URI_SHAPE}` }))
  const match = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/(?:([^@/]*)@)?([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?$/.exec(uri.trim())
  if (!match) return invalid(`malformed URI ${redactUri(uri)}`)
  const [, scheme, userinfo, hosts, path, query] = match
  const tls = scheme!.toLowerCase() === "rabbitmq-stream+tls"
  if (!tls && scheme!.toLowerCase() !== "rabbitmq-stream") {
    return invalid(`unsupported URI scheme "${scheme}:" in ${redactUri(uri)}`)
  }
  const endpoints: Array<Endpoint> = []
  for (const part of hosts!.split(",")) {
    const node = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(part)
    const port = node?.[3] === undefined ? (tls ? 5551 : 5552) : Number(node[3])
    if (!node || port < 1 || port > 65535) return invalid(`URI ${redactUri(uri)} has a malformed host "${part}"`)
    endpoints.push({ host: (node[1] ?? node[2]!).toLowerCase(), port })
  }
  const decode = (text: string) => {
    try {
      return decodeURIComponent(text)
    } catch {
      return undefined
    }
  }
  const vhost = path === undefined || path === "" ? "/" : decode(path)
  if (vhost === undefined) return invalid(`URI ${redactUri(uri)} has a malformed vhost "${path}"`)
  const colon = userinfo === undefined ? -1 : userinfo.indexOf(":")
  const username = userinfo === undefined || userinfo === "" ? "guest" : decode(colon < 0 ? userinfo : userinfo.slice(0, colon))
  const password = userinfo === undefined || userinfo === "" ? "guest" : colon < 0 ? "" : decode(userinfo.slice(colon + 1))
  if (username === undefined || password === undefined) return invalid(`URI ${redactUri(uri)} has a malformed user or password`)
  let sasl: "plain" | "external" | undefined
  for (const parameter of query === undefined || query === "" ? [] : query.split("&")) {
    const [key, value] = parameter.split("=", 2).map((text) => decode(text)?.toLowerCase())
    if (key !== "auth_mechanism" || (value !== "plain" && value !== "external")) {
      return invalid(`URI ${redactUri(uri)} has an unknown parameter "${parameter}" (known: auth_mechanism=plain or external)`)
    }
    sasl = value
  }
  if (sasl === "external" && !tls) {
    return invalid(`URI ${redactUri(uri)} asks for auth_mechanism=external, which takes TLS (rabbitmq-stream+tls://) and a client certificate`)
  }
  return Either.right({
    endpoints,
    username,
    password: Redacted.make(password),
    vhost,
    ...(tls ? { tls: {} } : {}),
    ...(sasl === undefined ? {} : { sasl })
  })
}

/**
 * The URI - or every URI in a text, such as an error message - with its password replaced by `***`: safe to print.
 *
 * @since 0.1.0
 * @category configuration
 */
export const redactUri = (text: string): string => text.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, "$1***@")

const describeEndpoints = (endpoints: ReadonlyArray<Endpoint>) =>
  endpoints.map(({ host, port }) => `${host.includes(":") ? `[${host}]` : host}:${port}`).join(",")

/**
 * A printable description of where a config points, without the password.
 *
 * @since 0.1.0
 * @category configuration
 */
export const describeConnection = (config: ConnectionConfig, endpoints = config.endpoints): string =>
  config.sasl === "external"
    ? `rabbitmq-stream+tls://${describeEndpoints(endpoints)}/${encodeURIComponent(config.vhost)}?auth_mechanism=external`
    : `rabbitmq-stream${config.tls ? "+tls" : ""}://${config.username}@${describeEndpoints(endpoints)}/${encodeURIComponent(config.vhost)}`

/**
 * Reads a {@link ConnectionConfig} from configuration: the environment, or any `Config` of a URI.
 *
 * @example
 * ```ts
 * import { Config } from "effect"
 * import { ConnectionConfig, StreamBroker } from "effect-stream-offsets"
 *
 * // RABBITMQ_STREAM_URI, or the local broker when it is not set (what layerConfig() does).
 * const fromEnv = StreamBroker.layerConfig(ConnectionConfig.fromEnv)
 * // A variable of the app's, read as a secret.
 * const fromOwnVariable = StreamBroker.layerConfig(ConnectionConfig.fromUri(Config.redacted("ORDERS_BROKER_URI")))
 * ```
 *
 * @since 0.1.0
 * @category configuration
 */
export const ConnectionConfig: {
  /**
   * `RABBITMQ_STREAM_URI` (a secret), default {@link DEFAULT_URI}.
   *
   * @since 0.1.0
   * @category configuration
   */
  readonly fromEnv: Config.Config<ConnectionConfig>
  /**
   * The config a URI (any `Config` of one, e.g. another variable) points to, parsed by {@link parseUri}.
   *
   * @since 0.1.0
   * @category configuration
   */
  readonly fromUri: (uri: Config.Config<Redacted.Redacted<string>>) => Config.Config<ConnectionConfig>
} = {
  fromUri: (uri) =>
    Config.mapOrFail(uri, (value) =>
      Either.mapLeft(parseUri(Redacted.value(value)), (e) => ConfigError.InvalidData([], e.message))),
  /** `RABBITMQ_STREAM_URI`, default {@link DEFAULT_URI}. */
  fromEnv: Config.redacted("RABBITMQ_STREAM_URI").pipe(
    Config.withDefault(Redacted.make(DEFAULT_URI)),
    Config.mapOrFail((uri) =>
      Either.mapLeft(parseUri(Redacted.value(uri)), (e) => ConfigError.InvalidData(["RABBITMQ_STREAM_URI"], e.message))
    )
  )
}

// =============================================================================================
// Services
// =============================================================================================

// ---------------------------------------------------------------------------------------------
// StreamBroker: everything the workflows ask of the broker
// ---------------------------------------------------------------------------------------------

/**
 * A publisher on one stream. Release its scope to close it.
 *
 * @since 0.1.0
 * @category services
 */
export interface Publisher {
  /** The stream it publishes to. */
  readonly stream: string
  /**
   * For a named publisher (deduplication), the last publishing id the broker has for that name;
   * 0 for a new name or an unnamed publisher.
   */
  readonly lastPublishingId: bigint
  /**
   * Sends entries, in order, each under its publishing id (increasing); confirmation comes later, on
   * `confirmations`, by publishing id. An entry of several messages is a sub-entry batch. A named
   * publisher's broker drops (and confirms) an entry whose id is not above the last one it has for
   * that name. Fails with InvalidArgument for what the broker cannot take (a message larger than a
   * frame, a filter value on a broker without filtering).
   */
  readonly publish: (entries: ReadonlyArray<PublishEntry>) => Effect.Effect<void, BrokerError | ConnectionLost | InvalidArgument>
  /** Every confirm and rejection for this publisher, and only this publisher. */
  readonly confirmations: Queue.Dequeue<Confirmation>
  /** Fails when the publisher's connection is lost (its sends may then never settle). */
  readonly lost: Effect.Effect<never, ConnectionLost>
}

/**
 * How {@link StreamBrokerShape.publisher} makes a publisher.
 *
 * @since 0.1.0
 * @category services
 */
export interface PublisherOptions {
  /** A producer name: the broker deduplicates its entries by publishing id. */
  readonly name?: string | undefined
  /** How sub-entry batches (entries of several messages) are compressed. Default "none". */
  readonly compression?: Compression | undefined
}

/**
 * What {@link StreamBrokerShape.subscribe} reads, from where, and how.
 *
 * @since 0.1.0
 * @category services
 */
export interface SubscribeOptions {
  /** The stream to read. */
  readonly stream: string
  /** Where to start. */
  readonly start: StartPosition
  /**
   * Messages buffered between the broker and the stream; a full buffer stops credit (backpressure).
   * Chunks are buffered whole: the chunk that fills it may take it past this size.
   */
  readonly bufferSize?: number | undefined
  /**
   * Stream filtering (RabbitMQ 3.13+): the broker delivers only the chunks that may hold a message
   * with one of these filter values (its Bloom filter can say yes wrongly, never no wrongly), or,
   * with `matchUnfiltered`, a message without one. Chunks come whole: filter their messages too.
   */
  readonly filter?: { readonly values: ReadonlyArray<string>; readonly matchUnfiltered: boolean } | undefined
  /**
   * Single active consumer: of all subscriptions with this name on the stream, one gets messages at a
   * time. When this one becomes active, `onActivate` says where it starts (instead of `start`).
   */
  readonly singleActive?: {
    readonly name: string
    readonly onActivate: Effect.Effect<StartPosition>
    /**
     * The broker took this subscription's turn away (a super stream's consumers rebalanced): it
     * delivers nothing more until it is activated again, and hands the partition to the next
     * consumer once this completes (the last processed offset stored).
     */
    readonly onStepDown: Effect.Effect<void>
    /**
     * The super stream the stream is a partition of: the broker then spreads the partitions over
     * the group's consumers (partition i goes to consumer i modulo their number, in joining order).
     */
    readonly superStream?: string | undefined
  } | undefined
}


/**
 * What the workflows ask of the broker: streams, super streams, publishers, subscriptions, offsets,
 * and the connection's state. The {@link StreamBroker} service; its layers are the real broker and
 * a broker in memory.
 *
 * @since 0.1.0
 * @category services
 */
export interface StreamBrokerShape {
  /** Creates the stream, or succeeds when it exists with the same arguments. */
  readonly declareStream: (
    stream: string,
    retention: Retention
  ) => Effect.Effect<void, BrokerError | StreamPreconditionFailed>
  /** Whether the stream exists. */
  readonly streamExists: (stream: string) => Effect.Effect<boolean, BrokerError>
  /** Deletes the stream and its messages. */
  readonly deleteStream: (stream: string) => Effect.Effect<void, BrokerError | StreamNotFound>
  /**
   * Creates a super stream (its partitions `name-<key>`, bound in this order), or succeeds when it
   * exists with the same partitions (its retention is not compared).
   */
  readonly declareSuperStream: (
    superStream: string,
    bindingKeys: ReadonlyArray<string>,
    retention: Retention
  ) => Effect.Effect<void, BrokerError | StreamPreconditionFailed | SuperStreamMismatch>
  /** The partition streams of a super stream, partition 0 first. */
  readonly partitions: (superStream: string) => Effect.Effect<ReadonlyArray<string>, BrokerError | SuperStreamNotFound>
  /** The partitions a routing key is bound to (the `Key` routing); empty when none is. */
  readonly route: (superStream: string, key: string) => Effect.Effect<ReadonlyArray<string>, BrokerError | SuperStreamNotFound>
  /** Deletes a super stream and its partitions. */
  readonly deleteSuperStream: (superStream: string) => Effect.Effect<void, BrokerError | SuperStreamNotFound>
  /** A publisher; with `name`, the broker deduplicates its messages by publishing id. */
  readonly publisher: (
    stream: string,
    options?: PublisherOptions
  ) => Effect.Effect<Publisher, BrokerError | StreamNotFound, Scope.Scope>
  /**
   * Subscribes; deliveries come as a backpressured stream, and closing the scope unsubscribes. Like
   * the broker it starts at the beginning of the chunk that holds the requested offset, so messages
   * below it may come first: drop them.
   */
  readonly subscribe: (
    options: SubscribeOptions
  ) => Effect.Effect<Stream.Stream<StreamMessage, BrokerError | ConnectionLost>, BrokerError | StreamNotFound, Scope.Scope>
  /** The first offset and the offset of the last message (tracking entries take offsets too). */
  readonly bounds: (stream: string) => Effect.Effect<StreamBounds, BrokerError | StreamNotFound>
  /**
   * Where the stream's last chunk starts (messages or a tracking entry), `None` when empty: one
   * cheap request (the broker's stream statistics), unlike `bounds`, which reads the last chunk.
   * Made once, not waited out under the retry policy (a consumer's lag asks it again later).
   */
  readonly lastChunk: (stream: string) => Effect.Effect<Option.Option<bigint>, BrokerError | StreamNotFound>
  /** Writes a tracking entry into the stream (the broker does not acknowledge it). */
  readonly storeOffset: (reference: string, stream: string, offset: bigint) => Effect.Effect<void, BrokerError>
  /** The stored offset, `None` when nothing is stored. */
  readonly queryOffset: (reference: string, stream: string) => Effect.Effect<Option.Option<bigint>, BrokerError>
  /**
   * The retry policy of this broker ({@link ConnectionConfig.retry}). The workflows use it too:
   * after a transient failure a publisher or subscription is made again, pausing as it says.
   */
  readonly retry: Schedule.Schedule<unknown, StreamError>
  /** What the connection is doing now. */
  readonly connectionState: Effect.Effect<ConnectionState>
  /** The connection's state now and at every change: watch it, e.g. for a health check. */
  readonly connectionChanges: Stream.Stream<ConnectionState>
}


const /** @ignore (the base of StreamBroker) */ StreamBrokerTag: Context.TagClass<StreamBroker, "effect-stream-offsets/StreamBroker", StreamBrokerShape> = Context
  .Tag("effect-stream-offsets/StreamBroker")<StreamBroker, StreamBrokerShape>()
/**
 * The broker, as a service: {@link StreamBroker.layer} (or {@link StreamBroker.layerConfig}) for a
 * real RabbitMQ, over one supervised connection for the layer's life; {@link StreamBroker.layerMemory}
 * for one in memory, for tests. Every workflow needs it.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { OffsetStore, send, StreamBroker } from "effect-stream-offsets"
 *
 * const program = Effect.gen(function*() {
 *   yield* send({ stream: "orders", messages: ["one", "two"] })
 *   const broker = yield* StreamBroker
 *   const bounds = yield* broker.bounds("orders")
 *   yield* Effect.log(`orders holds offsets ${bounds.firstOffset} to ${bounds.lastOffset}`)
 * })
 *
 * // The real broker (RABBITMQ_STREAM_URI), offsets stored on it. Build the layers once, provide once.
 * const live = OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerConfig()))
 * export const main = program.pipe(Effect.provide(live))
 * // In tests: the same program on a broker in memory.
 * export const test = program.pipe(Effect.provide(StreamBroker.layerMemory()))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class StreamBroker extends StreamBrokerTag {
  /**
   * The real broker over rabbitmq-stream-js-client, for the scope's life: one supervised connection
   * (connected now, under `config.retry`), closed when the scope closes.
   *
   * @since 0.1.0
   * @category constructors
   */
  static readonly make = (config: ConnectionConfig): Effect.Effect<StreamBrokerShape, ConnectionError, Scope.Scope> =>
    makeClientBroker(config)
  /**
   * The real broker over rabbitmq-stream-js-client: one supervised connection for the layer's life.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layer = (config: ConnectionConfig): Layer.Layer<StreamBroker, ConnectionError> =>
    Layer.scoped(StreamBroker, StreamBroker.make(config))
  /**
   * The real broker, configured from a `Config`: by default {@link ConnectionConfig.fromEnv}
   * (`RABBITMQ_STREAM_URI`); or any `Config<ConnectionConfig>`, or a record of one `Config` per field.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerConfig = (
    config: Config.Config.Wrap<ConnectionConfig> = ConnectionConfig.fromEnv
  ): Layer.Layer<StreamBroker, ConnectionError | ConfigError.ConfigError> =>
    Layer.unwrapEffect(Effect.map(Config.unwrap(config), StreamBroker.layer))
  /**
   * A broker in memory that behaves like a stream (and like an outage); look inside with {@link MemoryBroker}.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerMemory = (options: MemoryBrokerOptions = {}): Layer.Layer<StreamBroker | MemoryBroker> =>
    Layer.scopedContext(
      Effect.map(makeMemoryBroker(options), ({ broker, inspect }) =>
        Context.make(StreamBroker, broker).pipe(Context.add(MemoryBroker, inspect)))
    )
}

/**
 * How the broker of {@link StreamBroker.layerMemory} behaves: chunks, confirms, rejections, filtering, retries.
 *
 * @since 0.1.0
 * @category services
 */
export interface MemoryBrokerOptions {
  /** Messages per chunk (the unit of delivery, as on the broker). Default 16. */
  readonly chunkSize?: number | undefined
  /** Delay before each confirm (use TestClock to drive it). Default none. */
  readonly confirmDelay?: Duration.DurationInput | undefined
  /** Return a response code to reject the message (it is not appended); undefined accepts it. */
  readonly rejectPublish?: ((body: Uint8Array, publishingId: bigint) => number | undefined) | undefined
  /** Return true to never confirm the message (it is appended). */
  readonly dropConfirm?: ((body: Uint8Array, publishingId: bigint) => boolean) | undefined
  /** The retry policy, as {@link ConnectionConfig.retry}. Default {@link retryFor}(2 minutes). */
  readonly retry?: Schedule.Schedule<unknown, StreamError> | undefined
  /**
   * Stream filtering, as RabbitMQ 3.13+ has it (a Bloom filter per chunk, `filterSizeBytes` of the
   * stream's retention, 16 by default). False: a broker without it (publishing filter values and
   * filtered subscriptions fail). Default true.
   */
  readonly filtering?: boolean | undefined
}

/**
 * One entry of an in-memory stream's log: a message (its bytes as stored) or an offset-tracking record.
 *
 * @since 0.1.0
 * @category services
 */
export type MemoryEntry =
  | {
    readonly _tag: "Message"
    readonly offset: bigint
    /** The message as the stream stores it: AMQP 1.0, or whatever `MemoryBroker.append` wrote. */
    readonly data: Uint8Array
    readonly filterValue: string | undefined
    readonly timestamp: number
  }
  | { readonly _tag: "Tracking"; readonly offset: bigint; readonly reference: string; readonly value: bigint; readonly timestamp: number }

/**
 * Looks inside the in-memory broker from tests.
 *
 * @since 0.1.0
 * @category services
 */
export interface MemoryBrokerShape {
  /** The whole log of a stream, tracking entries included (empty when the stream does not exist). */
  readonly entries: (stream: string) => Effect.Effect<ReadonlyArray<MemoryEntry>>
  /** The messages of a stream, in offset order, decoded as consumers see them. */
  readonly messages: (stream: string) => Effect.Effect<ReadonlyArray<StreamMessage>>
  /**
   * Appends entries as they are, in one chunk, as another client could have written them (bytes
   * that are not AMQP 1.0 included; a filter value given to the broker only): for testing what a
   * consumer makes of them.
   */
  readonly append: (stream: string, data: ReadonlyArray<Uint8Array>, filterValue?: string) => Effect.Effect<void, StreamNotFound>
  /** The arguments a stream was declared with. */
  readonly retention: (stream: string) => Effect.Effect<Option.Option<Retention>>
  /**
   * How many entries named publishers sent to `stream` that it already had (deduplicated: dropped
   * and confirmed). A producer that knows what the broker has sends none.
   */
  readonly duplicates: (stream: string) => Effect.Effect<number>
  /** Drops the connection under every open publisher and subscription: they fail with ConnectionLost. */
  readonly loseConnection: Effect.Effect<void>
  /**
   * The broker goes away: connections are lost, and connecting fails until {@link up} - with a
   * transient error (`"unreachable"`, the default: retried under the policy) or a permanent one
   * (`"credentials"`: never retried).
   */
  readonly down: (failure?: "unreachable" | "credentials") => Effect.Effect<void>
  /** The broker is back: the next connection attempt succeeds. */
  readonly up: Effect.Effect<void>
  /**
   * The node leading `stream` goes away and no leader is elected (a cluster without a majority):
   * connections are lost, and declaring a publisher or subscribing to it fails with code 6
   * ("stream not available", retried under the policy) until {@link electLeader}.
   */
  readonly loseLeader: (stream: string) => Effect.Effect<void>
  /** `stream` has a leader again. */
  readonly electLeader: (stream: string) => Effect.Effect<void>
  /**
   * The connection of one member of a single active group drops, the others' stay (as when the
   * members are separate processes): its subscription fails with ConnectionLost and it leaves the
   * group, so the next member is activated. `index` counts members in the order they joined.
   */
  readonly loseMember: (stream: string, name: string, index: number) => Effect.Effect<void>
}
const /** @ignore (the base of MemoryBroker) */ MemoryBrokerTag: Context.TagClass<MemoryBroker, "effect-stream-offsets/MemoryBroker", MemoryBrokerShape> = Context
  .Tag("effect-stream-offsets/MemoryBroker")<MemoryBroker, MemoryBrokerShape>()
/**
 * The memory broker's inspection handle, provided by {@link StreamBroker.layerMemory}.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { MemoryBroker, OffsetStore, receive, send, StreamBroker } from "effect-stream-offsets"
 *
 * // A test: the consumer waits out an outage of the broker, reads every message, and stores its
 * // offset on the broker (a tracking entry in the stream's log).
 * const test = Effect.gen(function*() {
 *   const memory = yield* MemoryBroker
 *   yield* send({ stream: "orders", messages: ["a", "b", "c"] })
 *   yield* memory.down("unreachable")
 *   const consumer = yield* Effect.fork(receive({ stream: "orders", consumerName: "billing", stop: { untilEnd: true } }))
 *   yield* memory.up
 *   const summary = yield* consumer
 *   const log = yield* memory.entries("orders")
 *   console.log(summary.messages, log.filter((entry) => entry._tag === "Tracking").map((entry) => entry.value))
 * // 3 [ 2n ]: three messages, and the offset of the last one stored
 * }).pipe(Effect.provide(OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerMemory()))))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class MemoryBroker extends MemoryBrokerTag {}

// ---------------------------------------------------------------------------------------------
// OffsetStore: where a consumer's offset lives
// ---------------------------------------------------------------------------------------------

/**
 * Where a consumer's offset lives: the {@link OffsetStore} service.
 *
 * @since 0.1.0
 * @category services
 */
export interface OffsetStoreShape {
  /** The offset last stored for this consumer on this stream, `None` when nothing is stored. */
  readonly query: (consumerName: string, stream: string) => Effect.Effect<Option.Option<bigint>, OffsetStoreError>
  /** Stores the offset of the last message processed. */
  readonly store: (consumerName: string, stream: string, offset: bigint) => Effect.Effect<void, OffsetStoreError>
}

/**
 * Looks inside the in-memory OffsetStore from tests.
 *
 * @since 0.1.0
 * @category services
 */
export interface MemoryOffsetStoreShape {
  /** Every store, in order. */
  readonly history: Effect.Effect<
    ReadonlyArray<{ readonly consumerName: string; readonly stream: string; readonly offset: bigint }>
  >
}
const /** @ignore (the base of MemoryOffsetStore) */ MemoryOffsetStoreTag: Context.TagClass<
  MemoryOffsetStore,
  "effect-stream-offsets/MemoryOffsetStore",
  MemoryOffsetStoreShape
> = Context.Tag("effect-stream-offsets/MemoryOffsetStore")<MemoryOffsetStore, MemoryOffsetStoreShape>()
/**
 * The memory offset store's inspection handle, provided by {@link OffsetStore.layerMemory}.
 *
 * @example
 * ```ts
 * import { Effect, Layer } from "effect"
 * import { MemoryOffsetStore, OffsetStore, receive, send, StreamBroker } from "effect-stream-offsets"
 *
 * const test = Effect.gen(function*() {
 *   yield* send({ stream: "orders", messages: ["a", "b", "c"] })
 *   yield* receive({ stream: "orders", consumerName: "billing", stop: { untilEnd: true } })
 *   const history = yield* (yield* MemoryOffsetStore).history
 *   // The last store: offset 2 of "orders" for "billing".
 *   console.log(history.at(-1))
 * }).pipe(Effect.provide(Layer.merge(StreamBroker.layerMemory(), OffsetStore.layerMemory)))
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class MemoryOffsetStore extends MemoryOffsetStoreTag {}

const /** @ignore (the base of OffsetStore) */ OffsetStoreTag: Context.TagClass<OffsetStore, "effect-stream-offsets/OffsetStore", OffsetStoreShape> = Context
  .Tag("effect-stream-offsets/OffsetStore")<OffsetStore, OffsetStoreShape>()
/**
 * Where consumers keep their offsets, as a service: on the broker ({@link OffsetStore.layerServer},
 * as the tutorial does), in memory ({@link OffsetStore.layerMemory}), in a KeyValueStore
 * ({@link OffsetStore.layerKeyValueStore}), or your own ({@link OffsetStore.make}). `consume`,
 * `receive` and `inspectOffset` need it.
 *
 * @example
 * ```ts
 * import { Effect, Layer, Option } from "effect"
 * import { OffsetStore, receive, StreamBroker } from "effect-stream-offsets"
 *
 * // Offsets in the app's own table (a Map here), next to the data the consumer writes.
 * const table = new Map<string, bigint>()
 * const OwnStore = Layer.succeed(
 *   OffsetStore,
 *   OffsetStore.make({
 *     query: (consumerName, stream) => Effect.sync(() => Option.fromNullable(table.get(`${stream}/${consumerName}`))),
 *     store: (consumerName, stream, offset) => Effect.sync(() => void table.set(`${stream}/${consumerName}`, offset))
 *   })
 * )
 * const program = receive({ stream: "orders", consumerName: "billing", stop: { untilEnd: true } })
 * export const main = program.pipe(Effect.provide(Layer.merge(StreamBroker.layerConfig(), OwnStore)))
 * // Or on the broker, as the tutorial does: OffsetStore.layerServer (it needs the StreamBroker).
 * export const onTheBroker = program.pipe(
 *   Effect.provide(OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerConfig())))
 * )
 * ```
 *
 * @since 0.1.0
 * @category services
 */
export class OffsetStore extends OffsetStoreTag {
  /**
   * An offset store of your own (a table next to your data, say), from two effects that may fail
   * with anything: a failure becomes an `OffsetStoreError` naming the operation, consumer and
   * stream, and each store counts in `offsetsStored`, as with the stores below. Provide it with
   * `Layer.succeed(OffsetStore, OffsetStore.make({ query, store }))`.
   *
   * @since 0.1.0
   * @category constructors
   */
  static readonly make = <E1, E2>(options: {
    /** The offset last stored for this consumer on this stream, `None` when nothing is stored. */
    readonly query: (consumerName: string, stream: string) => Effect.Effect<Option.Option<bigint>, E1>
    /** Stores the offset of the last message processed. */
    readonly store: (consumerName: string, stream: string, offset: bigint) => Effect.Effect<void, E2>
  }): OffsetStoreShape => offsetStoreOf(options.query, options.store)
  /**
   * Offsets kept by the broker, next to the stream.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerServer: Layer.Layer<OffsetStore, never, StreamBroker> = Layer.effect(
    this,
    Effect.map(StreamBroker, serverOffsetStore)
  )
  /**
   * Offsets kept in memory; look inside with {@link MemoryOffsetStore}.
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerMemory: Layer.Layer<OffsetStore | MemoryOffsetStore> = Layer.effectContext(
    Effect.sync(memoryOffsetStore)
  )
  /**
   * Offsets kept in a KeyValueStore of the caller's choice (e.g. `KeyValueStore.layerFileSystem(dir)`,
   * next to the app's own data): one key per stream and consumer, the offset in decimal.
   *
   * @example
   * ```ts
   * import { layerFileSystem } from "@effect/platform-node/NodeKeyValueStore"
   * import { Effect, Layer } from "effect"
   * import { OffsetStore, receive, StreamBroker } from "effect-stream-offsets"
   *
   * // Offsets in files under ./offsets, one per stream and consumer.
   * const live = Layer.merge(
   *   StreamBroker.layerConfig(),
   *   OffsetStore.layerKeyValueStore.pipe(Layer.provide(layerFileSystem("offsets")))
   * )
   * export const main = receive({ stream: "orders", consumerName: "billing", stop: { untilEnd: true } }).pipe(Effect.provide(live))
   * ```
   *
   * @since 0.1.0
   * @category layers
   */
  static readonly layerKeyValueStore: Layer.Layer<OffsetStore, never, KeyValueStore.KeyValueStore> = Layer.effect(
    this,
    Effect.map(KeyValueStore.KeyValueStore, keyValueOffsetStore)
  )
}

// =============================================================================================
// Workflows
// =============================================================================================

// ---------------------------------------------------------------------------------------------
// send: declare the stream, publish, wait for every confirm
// ---------------------------------------------------------------------------------------------

/**
 * What {@link send} publishes, where, and how.
 *
 * @since 0.1.0
 * @category send
 */
export interface SendOptions {
  /** The stream to publish to (declared if it does not exist). */
  readonly stream: string
  /**
   * The messages to publish, in order: bodies (bytes, or text as UTF-8) or {@link OutgoingMessage}s
   * with properties, application properties, annotations and filter values. Each is checked as it is
   * read; one AMQP cannot carry fails the send (InvalidArgument) before it is sent. The tutorial's
   * are {@link tutorialMessages}(n).
   */
  readonly messages: Iterable<Sendable> | AsyncIterable<Sendable>
  /** The retention the stream is declared with. Default {@link DEFAULT_RETENTION}. */
  readonly retention?: Retention | undefined
  /**
   * A message written and not confirmed within this long fails the send (ConfirmTimeout); time
   * spent waiting out an outage (a named producer) does not count. Default 10 s.
   */
  readonly confirmTimeout?: Duration.DurationInput | undefined
  /** At most this many messages wait for a confirm; sending pauses beyond it. Default 50,000 (a smaller window makes the broker write smaller chunks, which every consumer reads more slowly: 10,000 read 0.43 of a raw loop's stream, 50,000 0.70, measured). */
  readonly maxInFlight?: number | undefined
  /**
   * A named producer: message i (from 0) gets publishing id i + 1 and the broker deduplicates by
   * it. Running the same send again (e.g. after it was killed) publishes only the messages above
   * the broker's last id for this name: the stream gets each message exactly once. One name is
   * one sequence of messages: use a new name for a new batch. A named producer also survives a
   * lost connection: it reconnects, and what the broker did not confirm is sent again.
   */
  readonly producerName?: string | undefined
  /**
   * Sub-entry batching: this many messages (up to 65,535) share one entry of the stream, and one
   * publishing id (that of the last; a named producer then deduplicates whole batches). Consumers
   * read them as usual. Not with filter values. Default 1: no batching.
   */
  readonly subEntrySize?: number | undefined
  /** How sub-entry batches are compressed. Default "none". */
  readonly compression?: Compression | undefined
}

/**
 * What `send` publishes: a body (bytes, or text as UTF-8) or a whole message.
 *
 * @since 0.1.0
 * @category send
 */
export type Sendable = Uint8Array | string | OutgoingMessage

/**
 * What {@link send} did.
 *
 * @since 0.1.0
 * @category send
 */
export interface SendSummary {
  /** The stream published to. */
  readonly stream: string
  /** Messages published by this run. */
  readonly sent: number
  /** Messages the broker confirmed: all of those sent, when `send` succeeds. */
  readonly confirmed: number
  /** Messages a named producer had already published (not sent again). */
  readonly skipped: number
}

/**
 * Declares the stream (idempotently, with retention), publishes every message, and succeeds only
 * when the broker has confirmed every one. A rejection fails with {@link PublishError}; confirms
 * that do not come fail with {@link ConfirmTimeout}. Nothing is reported confirmed that was not.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { send, tutorialMessages } from "effect-stream-offsets"
 *
 * const program = Effect.gen(function*() {
 *   // The tutorial's messages ("hello 0" ... "hello 98", then "marker"), with 1 GB retention.
 *   const summary = yield* send({ stream: "orders", messages: tutorialMessages(100), retention: { maxLengthBytes: 1_000_000_000 } })
 *   yield* Effect.log(`${summary.confirmed} of ${summary.sent} confirmed`)
 *   // A named producer: run it again after a crash and the stream still gets each message once.
 *   yield* send({
 *     stream: "orders",
 *     producerName: "import-2026-12-01",
 *     messages: [{ body: "row 1", properties: { contentType: "text/plain" } }, { body: "row 2" }]
 *   })
 * })
 * ```
 *
 * @since 0.1.0
 * @category send
 */
export const send: (options: SendOptions) => Effect.Effect<SendSummary, SendError, StreamBroker> = Effect.fn(
  "StreamOffsets.send"
)(function*(options: SendOptions) {
  yield* validateSendOptions(options)
  return yield* publishStream(options.stream, messageStream(options.messages, sendBatchSize(options)), {
    ...options,
    retention: options.retention ?? DEFAULT_RETENTION
  })
})

/**
 * What {@link sendToSuperStream} publishes, to which super stream, and how each message finds its partition.
 *
 * @since 0.1.0
 * @category super streams
 */
export interface SuperStreamSendOptions extends Omit<SendOptions, "stream" | "retention">, SuperStreamOptions {
  /** The super stream to publish to (declared if it does not exist). */
  readonly superStream: string
  /** How each message finds its partition. Default {@link Routing.Hash} of the body. */
  readonly routing?: Routing | undefined
  /**
   * Messages whose body this is true for go to every partition instead (the tutorial's marker, so
   * that each partition ends with it: `(body) => isTutorialMarker({ offset: 0n, body })`). Default none.
   */
  readonly toEveryPartition?: ((body: Uint8Array) => boolean) | undefined
}

/**
 * What {@link sendToSuperStream} did, in total and per partition.
 *
 * @since 0.1.0
 * @category super streams
 */
export interface SuperStreamSendSummary {
  /** The super stream published to. */
  readonly superStream: string
  /** Messages published, over every partition (a message sent to every partition counts once per partition). */
  readonly sent: number
  /** Messages confirmed, over every partition. */
  readonly confirmed: number
  /** Messages a named producer had already published, over every partition. */
  readonly skipped: number
  /** Per partition, partition 0 first. */
  readonly partitions: ReadonlyArray<SendSummary>
}

/**
 * `send` to a super stream: declares it (idempotently; an existing one must have the same
 * partitions), routes each message to its partition, and publishes to every partition at once,
 * each as `send` does (a named producer deduplicates per partition: a message's publishing id is
 * its position among its partition's messages, so running the same send again publishes only what
 * each partition lacks). Messages `toEveryPartition` picks go to every partition. Succeeds when
 * every partition has confirmed every message.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { isTutorialMarker, sendToSuperStream, tutorialMessages } from "effect-stream-offsets"
 *
 * const program = Effect.gen(function*() {
 *   // Partitions orders-0, orders-1 and orders-2: each message hashed to one, the marker to each.
 *   const summary = yield* sendToSuperStream({
 *     superStream: "orders",
 *     partitions: 3,
 *     messages: tutorialMessages(100),
 *     toEveryPartition: (body) => isTutorialMarker({ offset: 0n, body })
 *   })
 *   yield* Effect.log(summary.partitions.map((partition) => `${partition.stream}: ${partition.sent}`).join(", "))
 * })
 * ```
 *
 * @since 0.1.0
 * @category super streams
 */
export const sendToSuperStream: (
  options: SuperStreamSendOptions
) => Effect.Effect<SuperStreamSendSummary, SendError, StreamBroker> = Effect.fn("StreamOffsets.sendToSuperStream")(
  function*(options: SuperStreamSendOptions) {
    const broker = yield* StreamBroker
    const { superStream } = options
    const retention = options.retention ?? DEFAULT_RETENTION
    yield* validateSuperStreamSendOptions(options)
    const bindingKeys = bindingKeysOf(options)
    yield* broker.declareSuperStream(superStream, bindingKeys, retention)
    const partitions = yield* broker.partitions(superStream)
    const route = makeRoute(broker, superStream, partitions, options.routing ?? Routing.Hash({}), options.toEveryPartition)
    const batchSize = sendBatchSize(options)
    const summaries = yield* Effect.scoped(Effect.flatMap(
      splitByPartition(messageStream(options.messages, batchSize), partitions.length, route, { batchSize }),
      Effect.forEach((messages, i) => publishStream(partitions[i]!, messages, { ...options, retention: undefined, superStream }), {
        concurrency: "unbounded"
      })
    ))
    const total = (field: "sent" | "confirmed" | "skipped") => summaries.reduce((sum, p) => sum + p[field], 0)
    return { superStream, sent: total("sent"), confirmed: total("confirmed"), skipped: total("skipped"), partitions: summaries }
  }
)

// ---------------------------------------------------------------------------------------------
// consume and receive: resume after the stored offset, stop at a condition, track offsets
// ---------------------------------------------------------------------------------------------

/**
 * What {@link consume} and {@link receive} read, under which name, from where, until when.
 *
 * @since 0.1.0
 * @category consume
 */
export interface ConsumeOptions {
  /** The stream to consume. */
  readonly stream: string
  /** The consumer's name: the reference its offset is tracked under. */
  readonly consumerName: string
  /** Where to start when no offset is stored (or it is ignored). Default the first message. */
  readonly start?: StartPosition | undefined
  /** Start at `start` even when an offset is stored. Default false. */
  readonly ignoreStoredOffset?: boolean | undefined
  /** Default {@link DEFAULT_TRACKING}: every 10 messages, and at the stop. */
  readonly tracking?: TrackingStrategy | undefined
  /** When to stop; default none of the conditions: it runs until interrupted. */
  readonly stop?: StopConditions | undefined
  /**
   * Share the stream with the other consumers of this name, one active at a time. The one that
   * becomes active resumes after the stored offset; the one that stops stores (and confirms) first.
   */
  readonly singleActive?: boolean | undefined
  /**
   * The final store and its read-back take at most this long, whatever the broker does (so a stop
   * is never held up by a broker that is away); the summary says whether it was confirmed.
   * Default 5 s.
   */
  readonly confirmStoreTimeout?: Duration.DurationInput | undefined
  /**
   * Messages buffered from the broker; a full buffer holds the broker back (backpressure). Chunks
   * are buffered whole: the one that fills it may take it past this size. Default 1024. After a
   * lost connection, a broker restart or a new stream leader, the consumer subscribes again under
   * the broker's retry policy and resumes after the last message it delivered.
   */
  readonly bufferSize?: number | undefined
  /**
   * A message that cannot be decoded (an {@link UndecodableMessage}: not AMQP 1.0, or compressed
   * with a codec this module lacks): `"fail"` (the default) ends the consumer with a
   * {@link MessageDecodeError} naming the stream and offset, after the messages before it are
   * processed and stored; `"skip"` logs it once, moves past it (stored offsets too) and goes on.
   */
  readonly onDecodeError?: "fail" | "skip" | undefined
  /** Stream filtering (RabbitMQ 3.13+): see {@link ConsumeFilter}. Not with `stop.untilEnd`. */
  readonly filter?: ConsumeFilter | undefined
  /**
   * Decode each body with this Schema (in the form `bodyFormat` says): messages then carry the
   * decoded `value`. A body that does not decode is a decode error, as `onDecodeError` says (fail:
   * a MessageDecodeError naming the stream and offset; skip: logged once, moved past). Filtered-out
   * messages are not decoded.
   */
  readonly schema?: Schema.Schema<any, any, never> | undefined
  /** How a body holds the schema's encoded form. Default "json". */
  readonly bodyFormat?: BodyFormat | undefined
}

/**
 * How a body holds a Schema's encoded form: `"json"` (its UTF-8 JSON: any Schema whose encoded
 * side JSON can carry), `"text"` (a string, as UTF-8), `"bytes"` (a Uint8Array, as it is).
 *
 * @since 0.1.0
 * @category messages
 */
export type BodyFormat = "json" | "text" | "bytes"

/**
 * A message with the value its body decoded to (`consume` and `receive` with a `schema`).
 *
 * @since 0.1.0
 * @category messages
 */
export interface DecodedMessage<A> extends StreamMessage {
  /** The body, decoded by the schema. */
  readonly value: A
}

/**
 * A message of `consume` with a `schema`.
 *
 * @since 0.1.0
 * @category consume
 */
export interface DecodedConsumedMessage<A> extends ConsumedMessage {
  /** The body, decoded by the schema. */
  readonly value: A
}

/**
 * Stream filtering: the consumer wants only messages whose filter value
 * ({@link OutgoingMessage.filterValue}) is one of `values`. The broker skips the chunks that hold
 * none (by a Bloom filter per chunk, which can say yes wrongly, never no wrongly); of the chunks it
 * delivers, the consumer keeps the messages `postFilter` accepts. Stored offsets move past what was
 * filtered out, so a restart does not read it again.
 *
 * @since 0.1.0
 * @category consume
 */
export interface ConsumeFilter {
  /** At least one; each a non-empty string. */
  readonly values: ReadonlyArray<string>
  /** Also the messages published without a filter value. Default false. */
  readonly matchUnfiltered?: boolean | undefined
  /**
   * The application property that holds each message's filter value, for streams whose producers
   * put it there (the Java client's and rstream's users often do: the broker only gets it in the
   * publish frame). Messages without it are kept only with `matchUnfiltered`.
   */
  readonly property?: string | undefined
  /**
   * Which delivered messages to keep, instead of the default. Default: by `property` when given;
   * else by the `x-stream-filter-value` annotation (where {@link OutgoingMessage.filterValue} and
   * RabbitMQ's AMQP 1.0 publishing write it): kept when it is one of `values`; a message without the
   * annotation is kept (another client may have given its filter value to the broker only: dropping
   * it could lose a message that was asked for).
   */
  readonly postFilter?: ((message: StreamMessage) => boolean) | undefined
}

/**
 * The options of {@link receive}: those of {@link consume}, and what to do with each message.
 *
 * @since 0.1.0
 * @category consume
 */
export interface ReceiveOptions<E = never, R = never, M extends StreamMessage = StreamMessage> extends ConsumeOptions {
  /**
   * What to do with each message, in order (with a `schema`, a {@link DecodedMessage}). A failure
   * stops the consumer before that offset. Return `Effect.void` itself for a message that needs
   * nothing (one filtered out, say): it is then not run, which saves an effect per message.
   */
  readonly onMessage?: ((message: M, index: number) => Effect.Effect<void, E, R>) | undefined
}

/**
 * What a consumer did: how many messages, which offsets, why it stopped, what it stored.
 *
 * @since 0.1.0
 * @category consume
 */
export interface ReceiveSummary {
  /** Messages processed. */
  readonly messages: number
  /** The offset of the first message processed; `None` when there was none. */
  readonly firstOffset: Option.Option<bigint>
  /** The offset of the last message processed; `None` when there was none. */
  readonly lastOffset: Option.Option<bigint>
  /** Where the consumer started, and whether that came from a stored offset. */
  readonly start: StartPosition
  /** True when the start came from a stored offset. */
  readonly resumed: boolean
  /** Why it stopped. */
  readonly stoppedBy: StopReason
  /** The offset stored last (by this run or before), and whether reading it back confirmed it. */
  readonly storedOffset: Option.Option<bigint>
  /** True when reading the final store back showed it. */
  readonly storeConfirmed: boolean
  /** Why the final store was not confirmed (the broker away, no answer within the bound). */
  readonly storeProblem: Option.Option<string>
}

/**
 * The consumer as a Stream, for pipelines (`groupedWithin`, `mapEffect` with concurrency, sinks).
 * It starts after the stored offset (or at `start`), emits messages in order until a stop
 * condition (the marker, the count or the end is the last message emitted; an idle timeout or
 * the `signal` ends it at the next pull), and follows the broker through outages. Offsets are
 * tracked as the downstream *commits* messages ({@link ConsumedMessage.commit}), not as it pulls
 * them: a batch taken by `groupedWithin` and lost in a crash is delivered again (at least once).
 * When the stream ends, however it ends, the last committed offset is stored and read back
 * (bounded by `confirmStoreTimeout`; a warning says when it was not confirmed). Operators that
 * read ahead (`groupedWithin`, `buffer`) can see the stream end before their last elements are
 * committed: such a late commit stores and reads back at once, and fails if that is not confirmed.
 *
 * @example
 * ```ts
 * import { Chunk, Effect, Schema, Stream } from "effect"
 * import { consume } from "effect-stream-offsets"
 *
 * const Order = Schema.Struct({ id: Schema.Number, amount: Schema.Number })
 *
 * // Batches of up to 500 orders (or what came in a second), handled together, then committed: the
 * // stored offset follows the commits, so a crash replays at most the batch in hand.
 * const program = consume({ stream: "orders", consumerName: "warehouse", schema: Order }).pipe(
 *   Stream.groupedWithin(500, "1 second"),
 *   Stream.mapEffect((batch) =>
 *     Effect.gen(function*() {
 *       const total = Chunk.reduce(batch, 0, (sum, message) => sum + message.value.amount)
 *       yield* Effect.log(`${Chunk.size(batch)} orders, ${total} in all`)
 *       yield* Chunk.unsafeLast(batch).commit
 *     })
 *   ),
 *   Stream.runDrain
 * )
 * ```
 *
 * @since 0.1.0
 * @category consume
 */
export function consume<A, I>(
  options: ConsumeOptions & { readonly schema: Schema.Schema<A, I, never> }
): Stream.Stream<DecodedConsumedMessage<A>, ConsumeError, StreamBroker | OffsetStore>
/**
 * {@link consume} without a schema: messages as they are.
 *
 * @since 0.1.0
 * @category consume
 */
export function consume(options: ConsumeOptions): Stream.Stream<ConsumedMessage, ConsumeError, StreamBroker | OffsetStore>
export function consume(options: ConsumeOptions): Stream.Stream<ConsumedMessage, ConsumeError, StreamBroker | OffsetStore> {
  return consumeFrom(options, undefined)
}

const consumeFrom = (
  options: ConsumeOptions,
  superStream: string | undefined
): Stream.Stream<ConsumedMessage, ConsumeError, StreamBroker | OffsetStore> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const consumer = yield* makeConsumer(options, superStream)
    const ended = { value: false }
    // Runs before the consumer's own final store: says the stream ended, makes that store, and then
    // warns if it was not confirmed.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        ended.value = true
        return Effect.zipRight(
          consumer.tracker.finalStore,
          Effect.suspend(() =>
            Option.match(consumer.tracker.progress().storeProblem, {
              onNone: () => Effect.void,
              onSome: (problem) =>
                Effect.logWarning(`the final offset of "${options.consumerName}" was not confirmed stored: ${problem}`)
            })
          )
        )
      })
    )
    // After the end, a commit makes a final store of its own (stored, read back, bounded).
    const lateStore = Effect.flatMap(consumer.tracker.finalStore, () => {
      const { storeProblem } = consumer.tracker.progress()
      return Option.isNone(storeProblem) ? Effect.void : Effect.fail(
        new OffsetStoreError({ operation: "store", consumerName: options.consumerName, stream: options.stream, cause: storeProblem.value })
      )
    })
    const turn = consumer.turn
    const commit = (offset: bigint, count: number) =>
      Effect.suspend(() => {
        // After a step-down the partition is another consumer's: its offsets are not ours to store.
        if (turn !== undefined && !turn.isActive()) return Effect.void
        consumer.tracker.processed(offset, count)
        return ended.value ? lateStore : consumer.tracker.storeDue
      })
    const selections = options.stop?.signal === undefined
      ? consumer.selections
      : Stream.interruptWhen(consumer.selections, options.stop.signal)
    return Stream.mapConcatChunk(selections, (selected) => {
      const { firstIndex, messages, through } = turn === undefined ? selected : admitted(turn, selected)
      // What was dropped after these messages is passed once they are committed.
      consumer.tracker.passed(through, firstIndex + Chunk.size(messages))
      return Chunk.map(messages, (message, i): ConsumedMessage => new Consumed(message, firstIndex + i, commit))
    })
  })).pipe(Stream.withSpan("StreamOffsets.consume"))

/**
 * What {@link consumeSuperStream} reads: the options of {@link consume}, for a super stream.
 *
 * @since 0.1.0
 * @category super streams
 */
export interface SuperStreamConsumeOptions extends Omit<ConsumeOptions, "stream"> {
  /** The super stream to consume. */
  readonly superStream: string
}

/**
 * A message of {@link consumeSuperStream}: `index` counts within its partition.
 *
 * @since 0.1.0
 * @category super streams
 */
export interface PartitionConsumedMessage extends ConsumedMessage {
  /** The partition stream it was read from. */
  readonly partition: string
}

/**
 * {@link consume} over every partition of a super stream, merged: in order within a partition,
 * partitions side by side; each commit stores in its own partition. Stop conditions as in
 * {@link receiveSuperStream} (the marker and the end per partition, the count, the idle timeout
 * and the signal for the whole stream). With `singleActive`, a hand-over does not wait for what
 * the stream already emitted: such messages may be processed by both consumers (at least once;
 * commits made after the hand-over are not stored). {@link receiveSuperStream} hands over exactly.
 *
 * @example
 * ```ts
 * import { Effect, Stream } from "effect"
 * import { bodyText, consumeSuperStream } from "effect-stream-offsets"
 *
 * const program = consumeSuperStream({ superStream: "orders", consumerName: "billing", stop: { idleTimeout: "10 seconds" } }).pipe(
 *   Stream.mapEffect((message) =>
 *     Effect.zipRight(Effect.log(`${message.partition} ${message.offset}: ${bodyText(message)}`), message.commit)
 *   ),
 *   Stream.runDrain
 * )
 * ```
 *
 * @since 0.1.0
 * @category super streams
 */
export const consumeSuperStream = (
  options: SuperStreamConsumeOptions
): Stream.Stream<PartitionConsumedMessage, ConsumeError, StreamBroker | OffsetStore> =>
  Stream.unwrap(Effect.gen(function*() {
    const { partitions, partitionOptions, stop } = yield* superStreamConsumers(options)
    const perPartition = partitions.map((partition) =>
      Stream.map(
        consumeFrom(partitionOptions(partition), options.superStream),
        (m): PartitionConsumedMessage => ({ ...(m as Consumed).message, index: m.index, commit: m.commit, partition })
      )
    )
    const merged = Stream.mergeAll(perPartition, { concurrency: "unbounded" })
    const idle = stop.idleTimeout === undefined ? merged : Stream.timeout(merged, stop.idleTimeout)
    const counted = stop.count === undefined ? idle : Stream.take(idle, stop.count)
    return stop.signal === undefined ? counted : Stream.interruptWhen(counted, stop.signal)
  })).pipe(Stream.withSpan("StreamOffsets.consumeSuperStream"))

/**
 * The consumer as a workflow (the tutorial's with `stop: { marker: isTutorialMarker }`), over the
 * same machinery as {@link consume}: resumes after the stored offset (or starts at `start`), hands
 * each message to `onMessage`, stores offsets by the tracking
 * strategy, and stores the last processed offset whenever it stops (stop condition, failure or
 * interruption) before it unsubscribes. Stores only move forward. The summary says what was
 * processed and why it stopped.
 *
 * @example
 * ```ts
 * import { Effect, Option, Schema } from "effect"
 * import { isTutorialMarker, receive } from "effect-stream-offsets"
 *
 * // The tutorial's consumer: resume after the stored offset, stop after the marker.
 * const tutorial = Effect.gen(function*() {
 *   const summary = yield* receive({ stream: "orders", consumerName: "billing", stop: { marker: isTutorialMarker } })
 *   yield* Effect.log(`consumed ${summary.messages}, last offset ${Option.getOrElse(summary.lastOffset, () => "none")}`)
 * })
 *
 * // With a schema, onMessage gets the decoded value.
 * const Order = Schema.Struct({ id: Schema.Number, amount: Schema.Number })
 * const orders = receive({
 *   stream: "orders",
 *   consumerName: "ledger",
 *   schema: Order,
 *   stop: { untilEnd: true },
 *   onMessage: (message) => Effect.log(`order ${message.value.id}: ${message.value.amount}`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category consume
 */
export function receive<A, I, E = never, R = never>(
  options: ReceiveOptions<E, R, DecodedMessage<A>> & { readonly schema: Schema.Schema<A, I, never> }
): Effect.Effect<ReceiveSummary, E | ConsumeError, R | StreamBroker | OffsetStore>
/**
 * {@link receive} without a schema: `onMessage` gets messages as they are.
 *
 * @since 0.1.0
 * @category consume
 */
export function receive<E = never, R = never>(
  options: ReceiveOptions<E, R>
): Effect.Effect<ReceiveSummary, E | ConsumeError, R | StreamBroker | OffsetStore>
export function receive<E, R>(
  options: ReceiveOptions<E, R, any>
): Effect.Effect<ReceiveSummary, E | ConsumeError, R | StreamBroker | OffsetStore> {
  return receiveWith(options)
}

const receiveWith = <E, R>(
  options: ReceiveOptions<E, R>
): Effect.Effect<ReceiveSummary, E | ConsumeError, R | StreamBroker | OffsetStore> =>
  Effect.scoped(Effect.gen(function*() {
    const consumer = yield* makeConsumer(options)
    const run = Stream.runFoldEffect(
      consumer.selections,
      "signal" as StopReason,
      (stoppedBy, selection) => Effect.as(processInTurn(consumer, selection, options.onMessage), selection.stop ?? stoppedBy)
    )
    // The stop signal wins wherever the consumer is (processing, subscribing, waiting out an
    // outage): consuming is interrupted, and the last message fully processed is stored (bounded).
    const signal = options.stop?.signal
    const stoppedBy = signal === undefined ? yield* run : yield* Effect.raceFirst(run, Effect.as(signal, "signal" as const))
    yield* consumer.tracker.finalStore
    return consumer.summary(stoppedBy)
    // A span, not Effect.fn: Effect.fn would erase the generics of `onMessage` (E, R).
  })).pipe(Effect.withSpan("StreamOffsets.receive"))

/**
 * What {@link receiveSuperStream} reads and does: the options of {@link receive}, for a super stream.
 *
 * @since 0.1.0
 * @category super streams
 */
export interface SuperStreamReceiveOptions<E = never, R = never> extends Omit<ConsumeOptions, "stream"> {
  /** The super stream to consume. */
  readonly superStream: string
  /**
   * What to do with each message: in order within its partition; partitions are processed side by
   * side (calls for different partitions may overlap). A hand-over of a partition waits for the
   * message of that partition in hand.
   */
  readonly onMessage?: ((message: PartitionMessage, index: number) => Effect.Effect<void, E, R>) | undefined
}

/**
 * What the consumer of one partition did.
 *
 * @since 0.1.0
 * @category super streams
 */
export interface PartitionSummary extends ReceiveSummary {
  /** The partition stream. */
  readonly partition: string
}

/**
 * What {@link receiveSuperStream} did, in total and per partition.
 *
 * @since 0.1.0
 * @category super streams
 */
export interface SuperStreamReceiveSummary {
  /** The super stream consumed. */
  readonly superStream: string
  /** Messages processed, over every partition. */
  readonly messages: number
  /** Why it stopped. */
  readonly stoppedBy: StopReason
  /** Per partition, partition 0 first. */
  readonly partitions: ReadonlyArray<PartitionSummary>
}

/**
 * `receive` on a super stream: one consumer per partition under the same name, each resuming after
 * its own stored offset (offsets are tracked per consumer name and partition) and storing as
 * `receive` does. With `singleActive`, the consumers of one name share the partitions (the broker
 * gives partition i to consumer i modulo their number); when another one joins or leaves, a
 * partition changes hands after its last processed offset is stored. The marker and the end hold
 * per partition (it stops when each of its partitions reached its marker, or its end); the count,
 * the idle timeout and the signal for the whole. A partition this consumer is not active on never
 * reaches its marker or end here: stop such a consumer with the signal or an idle timeout.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { bodyText, receiveSuperStream } from "effect-stream-offsets"
 *
 * // One instance of the billing service among several: the broker shares the partitions out
 * // between them, and hands a partition over when an instance comes or goes.
 * const program = receiveSuperStream({
 *   superStream: "orders",
 *   consumerName: "billing",
 *   singleActive: true,
 *   onMessage: (message) => Effect.log(`${message.partition}: ${bodyText(message)}`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category super streams
 */
export const receiveSuperStream = <E = never, R = never>(
  options: SuperStreamReceiveOptions<E, R>
): Effect.Effect<SuperStreamReceiveSummary, E | ConsumeError, R | StreamBroker | OffsetStore> =>
  Effect.scoped(Effect.gen(function*() {
    const { superStream } = options
    const { partitions, partitionOptions, stop } = yield* superStreamConsumers(options)
    const consumers = yield* Effect.forEach(partitions, (stream) => makeConsumer(partitionOptions(stream), superStream))
    const run = yield* makePartitionRun(partitions, consumers, options)
    // Each partition in a pipeline of its own, as `receive` runs one: a partition's subscription
    // stays open until its last selection is processed (so a single active consumer that reaches its
    // marker stores it before it leaves the group). Partitions are processed side by side.
    const all = Effect.map(
      Effect.forEach(consumers, (c, i) => Stream.runForEach(c.selections, (selection) => run.process(i, selection)), {
        concurrency: "unbounded",
        discard: true
      }),
      run.stoppedBy
    )
    const stops: Array<Effect.Effect<StopReason>> = [Effect.as(run.countReached, "count" as const)]
    if (stop.idleTimeout !== undefined) stops.push(Effect.as(run.idle(stop.idleTimeout), "idle" as const))
    if (stop.signal !== undefined) stops.push(Effect.as(stop.signal, "signal" as const))
    // The first to complete wins, a failure too (raceAll would wait for a success).
    const stoppedBy = yield* Effect.raceFirst(all, Effect.raceAll(stops))
    yield* Effect.forEach(consumers, (c) => c.tracker.finalStore, { concurrency: "unbounded", discard: true })
    const summaries = consumers.map((c, i) => ({
      partition: partitions[i]!,
      ...c.summary(run.partitionStop(i) ?? stoppedBy),
      messages: run.processedOf(i)
    }))
    return { superStream, messages: run.processed(), stoppedBy, partitions: summaries }
  })).pipe(Effect.withSpan("StreamOffsets.receiveSuperStream"))

// ---------------------------------------------------------------------------------------------
// inspectOffset: where a consumer stands, without consuming
// ---------------------------------------------------------------------------------------------

/**
 * Where a consumer stands on a stream ({@link inspectOffset}).
 *
 * @since 0.1.0
 * @category inspect
 */
export interface OffsetReport {
  /** The stream. */
  readonly stream: string
  /** The consumer. */
  readonly consumerName: string
  /** The offset stored for the consumer; `None` when nothing is stored. */
  readonly storedOffset: Option.Option<bigint>
  /** The first offset the stream holds; `None` when it is empty. */
  readonly firstOffset: Option.Option<bigint>
  /** The offset of the stream's last message; `None` when it has none. */
  readonly lastOffset: Option.Option<bigint>
  /** Offsets between the stored one and the last message (an upper bound on messages: tracking entries take offsets too). */
  readonly lag: Option.Option<bigint>
}

/**
 * Where a consumer stands on a stream: its stored offset, the stream's bounds, the lag.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { inspectOffset } from "effect-stream-offsets"
 *
 * const program = Effect.gen(function*() {
 *   const report = yield* inspectOffset("orders", "billing")
 *   const lag = Option.getOrElse(report.lag, () => 0n)
 *   if (lag > 10_000n) yield* Effect.logWarning(`billing is ${lag} offsets behind on orders`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category inspect
 */
export const inspectOffset: (
  stream: string,
  consumerName: string
) => Effect.Effect<OffsetReport, InvalidArgument | BrokerError | StreamNotFound | OffsetStoreError, StreamBroker | OffsetStore> = Effect
  .fn("StreamOffsets.inspectOffset")(function*(stream: string, consumerName: string) {
    const broker = yield* StreamBroker
    const offsets = yield* OffsetStore
    yield* validateStreamName(stream)
    yield* validateName("consumer name", consumerName)
    const bounds = yield* broker.bounds(stream)
    const storedOffset = yield* offsets.query(consumerName, stream)
    const lag = Option.match(bounds.lastOffset, {
      onNone: () => 0n,
      onSome: (lastOffset) =>
        Option.match(storedOffset, {
          onNone: () => lastOffset + 1n - Option.getOrElse(bounds.firstOffset, () => 0n),
          onSome: (stored) => (lastOffset > stored ? lastOffset - stored : 0n)
        })
    })
    return { stream, consumerName, storedOffset, ...bounds, lag: Option.some(lag) } satisfies OffsetReport
  })

/**
 * {@link inspectOffset} for each partition of a super stream, partition 0 first.
 *
 * @example
 * ```ts
 * import { Effect, Option } from "effect"
 * import { inspectSuperStreamOffsets } from "effect-stream-offsets"
 *
 * const program = Effect.gen(function*() {
 *   const reports = yield* inspectSuperStreamOffsets("orders", "billing")
 *   for (const report of reports) {
 *     yield* Effect.log(`${report.stream}: stored ${Option.getOrElse(report.storedOffset, () => "nothing")}`)
 *   }
 * })
 * ```
 *
 * @since 0.1.0
 * @category super streams
 */
export const inspectSuperStreamOffsets: (
  superStream: string,
  consumerName: string
) => Effect.Effect<
  ReadonlyArray<OffsetReport>,
  InvalidArgument | BrokerError | StreamNotFound | SuperStreamNotFound | OffsetStoreError,
  StreamBroker | OffsetStore
> = Effect.fn("StreamOffsets.inspectSuperStreamOffsets")(function*(superStream: string, consumerName: string) {
  const broker = yield* StreamBroker
  yield* validateStreamName(superStream)
  const partitions = yield* broker.partitions(superStream)
  return yield* Effect.forEach(partitions, (partition) => inspectOffset(partition, consumerName))
})

// ---------------------------------------------------------------------------------------------
// Producer: a long-lived publisher for apps, each message confirmed
// ---------------------------------------------------------------------------------------------

/**
 * What a {@link Producer} publishes to, and how.
 *
 * @since 0.1.0
 * @category producer
 */
export interface ProducerOptions {
  /** The stream to publish to. */
  readonly stream: string
  /**
   * A producer name: the broker deduplicates by publishing id (messages may carry their own: the
   * outbox pattern), and the producer rides out a lost connection, sending again what was not
   * confirmed. Without one, what was in flight when a connection was lost fails with
   * ConnectionLost (it may or may not be in the stream).
   */
  readonly name?: string | undefined
  /** Declares the stream with this retention first (idempotently). Default: the stream must exist. */
  readonly retention?: Retention | undefined
  /** At most this many messages wait for a confirm; `publish` waits for room beyond it. Default 10,000. */
  readonly maxInFlight?: number | undefined
  /**
   * A message written and not confirmed within this long fails with ConfirmTimeout. Time spent
   * waiting out an outage (a named producer) does not count: the message is sent again and its
   * time starts over. Default 10 s.
   */
  readonly confirmTimeout?: Duration.DurationInput | undefined
  /**
   * Sub-entry batching: up to this many messages written together (up to 65,535) share one entry
   * of the stream and one publishing id (that of the last; with their own ids, a named producer then
   * deduplicates whole batches). Consumers read them as usual. Not with filter values. Default 1.
   */
  readonly subEntrySize?: number | undefined
  /** How sub-entry batches are compressed: "none" (default) or "gzip". */
  readonly compression?: Compression | undefined
  /**
   * Publish values of this Schema: each is encoded into the body (in the form `bodyFormat` says;
   * "json" also sets the content type `application/json` unless the message has one). A value the
   * schema cannot encode fails `publish` with InvalidArgument, and nothing is published.
   */
  readonly schema?: Schema.Schema<any, any, never> | undefined
  /** How a body holds the schema's encoded form. Default "json". */
  readonly bodyFormat?: BodyFormat | undefined
}

/**
 * A value for a Producer with a `schema`, with what else the message carries: its properties,
 * application properties, annotations, filter value, its own publishing id. Made with
 * `Producer.message(value, { ... })`; a plain value is a message without them.
 *
 * @since 0.1.0
 * @category producer
 */
export class ValueMessage<A> {
  /** Prefer `Producer.message(value, sections)`. */
  constructor(
    /** The value, encoded into the body by the producer's schema. */
    readonly value: A,
    /** The message's other sections, and perhaps its own publishing id. */
    readonly sections: Omit<OutgoingMessage, "body" | "amqpValue" | "amqpSequence"> & {
      readonly publishingId?: bigint | undefined
    } = {}
  ) {}
}

/**
 * What a Producer publishes: a body, an {@link OutgoingMessage}, and for a named producer perhaps
 * its own publishing id (positive, increasing: one at or below the last the broker has for the
 * name is not published again, and reported `skipped`).
 *
 * @since 0.1.0
 * @category producer
 */
export type ProducerMessage = Sendable | (OutgoingMessage & { readonly publishingId?: bigint | undefined })

/**
 * How `publish` ended: the broker confirmed the message, or (a named producer) already had its id.
 *
 * @since 0.1.0
 * @category producer
 */
export interface Published {
  /** The message's publishing id. */
  readonly publishingId: bigint
  /** True when the broker already had it (not published again). */
  readonly skipped: boolean
}

/**
 * How `publishAll` ended: every message confirmed, or skipped.
 *
 * @since 0.1.0
 * @category producer
 */
export interface PublishAllSummary {
  /** Messages published and confirmed. */
  readonly published: number
  /** Messages the broker already had (a named producer). */
  readonly skipped: number
}

const /** @ignore (the base of ProducerClosed) */ ProducerClosedBase: TaggedErrorClass<"ProducerClosed", { readonly stream: string }> = Data.TaggedError("ProducerClosed")
/**
 * The producer's scope has ended: nothing more can be published through it.
 *
 * @since 0.1.0
 * @category errors
 */
export class ProducerClosed extends ProducerClosedBase {
  /** The error in one line. */
  override get message(): string {
    return `the producer of stream "${this.stream}" is closed (its scope has ended)`
  }
}

/**
 * How a Producer's `publish` can fail.
 *
 * @since 0.1.0
 * @category errors
 */
export type ProducerError = PublishError | ConfirmTimeout | ProducerClosed | InvalidArgument | StreamError

/**
 * A publisher that lives as long as its scope, for apps: `publish` one message from any fiber and
 * know when the broker confirmed it; `publishAll` a Stream of them. Calls from many fibers at once
 * are batched into frames; at most `maxInFlight` messages wait for confirms (then `publish`
 * waits: backpressure). When the scope closes, what was handed over is still confirmed (bounded by
 * `confirmTimeout`), then the publisher closes; `publish` after that fails with ProducerClosed.
 *
 * @since 0.1.0
 * @category producer
 */
export interface Producer<M = ProducerMessage> {
  /** The stream it publishes to. */
  readonly stream: string
  /** Its producer name, if it has one. */
  readonly name: string | undefined
  /** With a `schema`, a message is a value, or a `Producer.message(value, { ... })`. */
  readonly publish: (message: M) => Effect.Effect<Published, ProducerError>
  /** Publishes every message of the stream, in order, and succeeds when each is confirmed (or skipped). */
  readonly publishAll: <E, R>(messages: Stream.Stream<M, E, R>) => Effect.Effect<PublishAllSummary, ProducerError | E, R>
  /** The highest publishing id this producer knows the broker has, or has sent (0 for none). */
  readonly lastPublishingId: Effect.Effect<bigint>
}

/**
 * A Producer with a `schema`: it publishes values of `A`, bare or with sections (`Producer.message`).
 *
 * @since 0.1.0
 * @category producer
 */
export type ValueProducer<A> = Producer<A | ValueMessage<A>>

/**
 * Makes {@link Producer}s: in a scope ({@link Producer.make}), as a layer under your tag ({@link Producer.layer}).
 *
 * @example
 * ```ts
 * import { Context, Effect, Layer, Schema } from "effect"
 * import { Producer, StreamBroker, type ValueProducer } from "effect-stream-offsets"
 *
 * const Order = Schema.Struct({ id: Schema.Number, amount: Schema.Number })
 * type Order = typeof Order.Type
 *
 * // The app's producer of orders, a service of its own.
 * class Orders extends Context.Tag("Orders")<Orders, ValueProducer<Order>>() {}
 * const OrdersLive = Producer.layer(Orders, { stream: "orders", name: "orders-app", schema: Order })
 *
 * const placeOrder = (order: Order) =>
 *   Effect.gen(function*() {
 *     const orders = yield* Orders
 *     // Succeeds once the broker has confirmed the message.
 *     const published = yield* orders.publish(Producer.message(order, { properties: { messageId: `order-${order.id}` } }))
 *     yield* Effect.log(`order ${order.id} is message ${published.publishingId}`)
 *   })
 * export const main = placeOrder({ id: 1, amount: 42 }).pipe(
 *   Effect.provide(OrdersLive.pipe(Layer.provide(StreamBroker.layerConfig())))
 * )
 *
 * // Or for a scope of its own: plain messages, closed (after the last confirm) with the scope.
 * export const once = Effect.scoped(Effect.gen(function*() {
 *   const producer = yield* Producer.make({ stream: "events" })
 *   yield* producer.publish({ body: "started", applicationProperties: { host: "app-1" } })
 * }))
 * ```
 *
 * @since 0.1.0
 * @category producer
 */
export const Producer: {
  /**
   * A Producer for the scope's lifetime; with a `schema`, one that publishes its values.
   *
   * @since 0.1.0
   * @category constructors
   */
  readonly make: {
    <A, I>(
      options: ProducerOptions & { readonly schema: Schema.Schema<A, I, never> }
    ): Effect.Effect<Producer<A | ValueMessage<A>>, SendError, StreamBroker | Scope.Scope>
    (options: ProducerOptions): Effect.Effect<Producer, SendError, StreamBroker | Scope.Scope>
  }
  /**
   * A layer of a Producer under a tag of the app's (`class Orders extends Context.Tag("Orders")<Orders, Producer>() {}`;
   * with a `schema`, `<Orders, ValueProducer<Order>>`).
   *
   * @since 0.1.0
   * @category layers
   */
  readonly layer: {
    <I, A, In>(
      tag: Context.Tag<I, ValueProducer<A>>,
      options: ProducerOptions & { readonly schema: Schema.Schema<A, In, never> }
    ): Layer.Layer<I, SendError, StreamBroker>
    <I>(tag: Context.Tag<I, Producer>, options: ProducerOptions & { readonly schema?: undefined }): Layer.Layer<I, SendError, StreamBroker>
  }
  /**
   * A value for a Producer with a `schema`, with the message's other sections and perhaps its own publishing id.
   *
   * @since 0.1.0
   * @category constructors
   */
  readonly message: <A>(value: A, sections?: ValueMessage<A>["sections"]) => ValueMessage<A>
} = {
  make: (options: ProducerOptions) => checkedProducer(options),
  layer: <I>(tag: Context.Tag<I, Producer<any>>, options: ProducerOptions) => Layer.scoped(tag, checkedProducer(options)),
  message: (value, sections) => new ValueMessage(value, sections)
}

// =============================================================================================
// Metrics
// =============================================================================================

/**
 * Messages written to the broker by `send`, `sendToSuperStream` and producers.
 *
 * @since 0.1.0
 * @category metrics
 */
export const messagesSent: Metric.Metric.Counter<number> = Metric.counter("stream_offsets_messages_sent", {
  description: "Messages written to the broker",
  incremental: true
})
/**
 * Messages the broker confirmed.
 *
 * @since 0.1.0
 * @category metrics
 */
export const messagesConfirmed: Metric.Metric.Counter<number> = Metric.counter("stream_offsets_messages_confirmed", {
  description: "Messages the broker confirmed",
  incremental: true
})
/**
 * Messages delivered to the consumer's processing (receive's onMessage, consume's downstream).
 *
 * @example
 * ```ts
 * import { Effect, Metric } from "effect"
 * import { messagesConsumed, offsetsStored } from "effect-stream-offsets"
 *
 * const report = Effect.gen(function*() {
 *   const consumed = yield* Metric.value(messagesConsumed)
 *   const stored = yield* Metric.value(offsetsStored)
 *   yield* Effect.log(`consumed ${consumed.count}, offsets stored ${stored.count}`)
 * })
 * ```
 *
 * @since 0.1.0
 * @category metrics
 */
export const messagesConsumed: Metric.Metric.Counter<number> = Metric.counter("stream_offsets_messages_consumed", {
  description: "Messages handed to the consumer's processing",
  incremental: true
})
/**
 * Offsets stored, by every offset store.
 *
 * @since 0.1.0
 * @category metrics
 */
export const offsetsStored: Metric.Metric.Counter<number> = Metric.counter("stream_offsets_offsets_stored", {
  description: "Offsets stored",
  incremental: true
})
/**
 * Messages the broker refused (a publish error with its code), by the producer's stream and name.
 *
 * @since 0.1.0
 * @category metrics
 */
export const messagesRejected: Metric.Metric.Counter<number> = Metric.counter("stream_offsets_messages_rejected", {
  description: "Messages the broker refused (publish errors)",
  incremental: true
})
/**
 * Seconds from writing a message to its confirm: one observation per confirm frame (its oldest
 * message), not per message.
 *
 * @since 0.1.0
 * @category metrics
 */
export const confirmLatency: Metric.Metric.Histogram<number> = Metric.histogram(
  "stream_offsets_confirm_latency_seconds",
  MetricBoundaries.exponential({ start: 0.001, factor: 2, count: 14 }),
  "Seconds from writing messages to their confirm (one observation per confirm frame)"
)
/**
 * Messages handed to a producer (`send`, a `Producer`) and not settled yet (confirmed, skipped
 * or failed): set per batch written and per confirm frame.
 *
 * @since 0.1.0
 * @category metrics
 */
export const confirmsInFlight: Metric.Metric.Gauge<number> = Metric.gauge("stream_offsets_confirms_in_flight", {
  description: "Messages handed to a producer and not settled yet"
})
/**
 * Seconds a consumer's offset store took (the broker's store sends no reply: the time to write it).
 *
 * @since 0.1.0
 * @category metrics
 */
export const offsetStoreLatency: Metric.Metric.Histogram<number> = Metric.histogram(
  "stream_offsets_offset_store_latency_seconds",
  MetricBoundaries.exponential({ start: 0.0005, factor: 2, count: 14 }),
  "Seconds an offset store took"
)
/**
 * Offset stores that failed (an `OffsetStoreError`, which ends the workflow), by the consumer's
 * stream and name.
 *
 * @since 0.1.0
 * @category metrics
 */
export const offsetStoreFailures: Metric.Metric.Counter<number> = Metric.counter("stream_offsets_offset_store_failures", {
  description: "Offset stores that failed",
  incremental: true
})
/**
 * How far a consumer is behind: the stream's last offset minus the last processed one. Refreshed
 * every 2 seconds while connected, from the broker's stream statistics, which count in
 * chunks (tracking entries take offsets too): an estimate while behind, and 0 once the consumer
 * has processed everything the broker sent it and the stream has no message chunk past it.
 *
 * @since 0.1.0
 * @category metrics
 */
export const consumerLag: Metric.Metric.Gauge<number> = Metric.gauge("stream_offsets_consumer_lag", {
  description: "Offsets between the stream's end and the consumer's last processed message"
})
/**
 * Connections lost and made again (a first connection is not counted), per broker layer.
 *
 * @since 0.1.0
 * @category metrics
 */
export const reconnects: Metric.Metric.Counter<number> = Metric.counter("stream_offsets_reconnects", {
  description: "Connections to the broker made again after one was lost",
  incremental: true
})
/**
 * Seconds without a connection, one observation per outage (lost to connected again).
 *
 * @since 0.1.0
 * @category metrics
 */
export const disconnectedDuration: Metric.Metric.Histogram<number> = Metric.histogram(
  "stream_offsets_disconnected_seconds",
  MetricBoundaries.exponential({ start: 0.1, factor: 2, count: 12 }),
  "Seconds without a connection, per outage"
)
/**
 * 1 while the broker layer holds a connection, 0 while it is connecting again or gave up.
 *
 * @since 0.1.0
 * @category metrics
 */
export const connectionUp: Metric.Metric.Gauge<number> = Metric.gauge("stream_offsets_connection_up", {
  description: "1 while connected to the broker, 0 otherwise"
})

// =============================================================================================
// --- internal --- everything below is machinery: not exported, or exported for tests only
// =============================================================================================

// ---------------------------------------------------------------------------------------------
// Send machinery: publishing to one stream (source, confirm tracker, session); super stream routing
// ---------------------------------------------------------------------------------------------

/**
 * Publishes the messages to a stream through a Producer: a named one numbers them by position (run
 * again, it publishes only what the broker lacks) and rides out lost connections; the messages are
 * read as the producer has room for them. Succeeds when every message is confirmed.
 */
const publishStream = <E extends SendError>(
  stream: string,
  messages: Stream.Stream<Sendable, E>,
  options: SendTuning & { readonly retention?: Retention | undefined; readonly superStream?: string | undefined }
): Effect.Effect<SendSummary, SendError, StreamBroker> =>
  Effect.scoped(Effect.gen(function*() {
    const maxInFlight = options.maxInFlight ?? DEFAULT_SEND_IN_FLIGHT
    const producer = yield* makeProducer(
      {
        stream,
        name: options.producerName,
        retention: options.retention,
        maxInFlight,
        confirmTimeout: options.confirmTimeout,
        subEntrySize: options.subEntrySize,
        compression: options.compression
      },
      { drainOnClose: false, streamExists: true, superStream: options.superStream }
    )
    const summary = yield* producer.publishByPosition(messages).pipe(
      // Its scope is this one: it cannot be closed under us.
      Effect.catchTag("ProducerClosed", Effect.die)
    )
    return { stream, sent: summary.published, confirmed: summary.published, skipped: summary.skipped }
  }))

/**
 * The messages to send as a Stream, read as they are needed, up to `batchSize` a chunk: a plain
 * loop over an iterable; an async one (a file, stdin) awaited item by item. An iterable that
 * throws fails it with InvalidArgument.
 */
const messageStream = (
  messages: Iterable<Sendable> | AsyncIterable<Sendable>,
  batchSize: number
): Stream.Stream<Sendable, InvalidArgument> =>
  Stream.suspend(() => {
    const sync = Symbol.iterator in messages ? messages[Symbol.iterator]() : undefined
    const async = sync === undefined ? (messages as AsyncIterable<Sendable>)[Symbol.asyncIterator]() : undefined
    const state = { done: false }
    const unreadable = (error: unknown) =>
      Option.some(
        error instanceof InvalidArgument
          ? error
          : new InvalidArgument({ message: `could not read the messages to send: ${errorText(error)}` })
      )
    const pull = Effect.gen(function*() {
      const chunk: Array<Sendable> = []
      while (chunk.length < batchSize && !state.done) {
        let item: IteratorResult<Sendable>
        if (sync) {
          try {
            item = sync.next()
          } catch (error) {
            return yield* Effect.fail(unreadable(error))
          }
        } else item = yield* Effect.tryPromise({ try: () => async!.next(), catch: unreadable })
        if (item.done) state.done = true
        else chunk.push(item.value)
      }
      return chunk.length > 0 ? Chunk.unsafeFromArray(chunk) : yield* Effect.fail(Option.none())
    })
    return Stream.repeatEffectChunkOption(pull)
  })

/** Messages read at a time for sending: bounded, and at most half the in-flight window. */
const sendBatchSize = (options: Pick<SendOptions, "maxInFlight">): number =>
  Math.min(5000, Math.ceil((options.maxInFlight ?? DEFAULT_SEND_IN_FLIGHT) / 2))

/** `send`'s default in-flight window. */
const DEFAULT_SEND_IN_FLIGHT = 50_000

/** The options of `send` that shape publishing (shared with `sendToSuperStream`). */
type SendTuning = Pick<SendOptions, "producerName" | "maxInFlight" | "confirmTimeout" | "subEntrySize" | "compression">

/** The publishing options, checked before anything is declared or sent. */
const validateSendTuning = (options: SendTuning): Effect.Effect<void, InvalidArgument> =>
  Effect.gen(function*() {
    const invalid = (message: string) => Effect.fail(new InvalidArgument({ message }))
    if (options.producerName !== undefined) yield* validateName("producer name", options.producerName)
    const { compression, maxInFlight, subEntrySize } = options
    if (maxInFlight !== undefined && !(Number.isSafeInteger(maxInFlight) && maxInFlight > 0)) {
      return yield* invalid(`maxInFlight must be a positive integer, got ${maxInFlight}`)
    }
    if (subEntrySize !== undefined && !(Number.isInteger(subEntrySize) && subEntrySize >= 1 && subEntrySize <= 65_535)) {
      return yield* invalid(`subEntrySize must be an integer from 1 to 65535, got ${subEntrySize}`)
    }
    if (compression !== undefined && compression !== "none" && compression !== "gzip") {
      return yield* invalid(`compression must be "none" or "gzip", got ${JSON.stringify(compression)}`)
    }
    if (compression === "gzip" && (subEntrySize ?? 1) === 1) {
      return yield* invalid("compression applies to sub-entry batches: give subEntrySize > 1 with it")
    }
  })

/**
 * How `sendToSuperStream` routes a chunk of messages: the partition index of each, or -1 for
 * every partition (a marker). Hash routing is computed in place; key routing asks the broker once
 * per key it has not seen (a broker failure stays what it is, not "bad input").
 */
type PartitionRoute = (messages: Chunk.Chunk<Sendable>) => Effect.Effect<ReadonlyArray<number>, RouteError>
type RouteError = BrokerError | SuperStreamNotFound | InvalidArgument

const makeRoute = (
  broker: StreamBrokerShape,
  superStream: string,
  partitions: ReadonlyArray<string>,
  routing: Routing,
  toEveryPartition: ((body: Uint8Array) => boolean) | undefined
): PartitionRoute => {
  const isMarker = toEveryPartition ?? (() => false)
  // The caller's functions (the marker test, the key) may throw: that is the messages' fault.
  const inPlace = <A>(f: () => A) =>
    Effect.try({ try: f, catch: (error) => new InvalidArgument({ message: `could not route the messages to send: ${errorText(error)}` }) })
  if (routing._tag === "Hash") {
    const key = routing.key
    return (messages) =>
      inPlace(() =>
        Chunk.toReadonlyArray(messages).map((message) => {
          const body = bodyBytes(message)
          return isMarker(body) ? -1 : hashPartition(key === undefined ? body : key(body), partitions.length)
        })
      )
  }
  const known = new Map<string, number>()
  const lookUp = (key: string) =>
    Effect.flatMap(broker.route(superStream, key), (streams) => {
      const index = partitions.findIndex((p) => streams.includes(p))
      if (index < 0) {
        return Effect.fail(new InvalidArgument({ message: `no partition of super stream "${superStream}" is bound to the routing key "${key}"` }))
      }
      return Effect.sync(() => void known.set(key, index))
    })
  return (messages) =>
    Effect.flatMap(
      inPlace(() => Chunk.toReadonlyArray(messages).map((message) => {
        const body = bodyBytes(message)
        return isMarker(body) ? undefined : routing.key(body)
      })),
      // The keys not seen yet are looked up, in the order they come; then every message is routed in place.
      (keys) =>
        Effect.map(
          Effect.forEach(new Set(keys.filter((key) => key !== undefined && !known.has(key))), (key) => lookUp(key!), { discard: true }),
          () => keys.map((key) => (key === undefined ? -1 : known.get(key)!))
        )
    )
}

/**
 * The messages split into one Stream per partition, for the scope's lifetime: one fiber reads them
 * a chunk at a time, routes the chunk (one effect per chunk) and offers each partition its part
 * (a marker to every partition) in a bounded mailbox of `limit` messages. A partition whose
 * publisher stalls (a leader away, a full window) fills its mailbox, and then the reading waits for
 * it: the other partitions wait too, rather than the messages piling up in memory. A failure to
 * read or route fails every partition's stream, after the chunks before it.
 */
const splitByPartition = <E>(
  messages: Stream.Stream<Sendable, E>,
  partitions: number,
  route: (messages: Chunk.Chunk<Sendable>) => Effect.Effect<ReadonlyArray<number>, E>,
  options: { readonly limit?: number; readonly batchSize?: number } = {}
): Effect.Effect<ReadonlyArray<Stream.Stream<Sendable, E>>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { batchSize = 5000, limit = SPLIT_QUEUE_LIMIT } = options
    const mailboxes = yield* Effect.forEach(Array.from({ length: partitions }), () => Mailbox.make<Sendable, E>(limit))
    const offer = (chunk: Chunk.Chunk<Sendable>, indexes: ReadonlyArray<number>) => {
      const parts = mailboxes.map((): Array<Sendable> => [])
      Chunk.forEach(chunk, (message, i) => {
        const index = indexes[i]!
        if (index < 0) for (const part of parts) part.push(message)
        else parts[index]!.push(message)
      })
      return Effect.forEach(parts, (part, i) => part.length === 0 ? Effect.void : mailboxes[i]!.offerAll(part), { discard: true })
    }
    yield* Stream.runForEachChunk(messages, (chunk) => Effect.flatMap(route(chunk), (indexes) => offer(chunk, indexes))).pipe(
      Effect.onExit((exit) => Effect.forEach(mailboxes, (mailbox) => mailbox.done(exit), { discard: true })),
      Effect.forkScoped
    )
    return mailboxes.map((mailbox) => mailboxStream(mailbox, batchSize))
  })

/** What a mailbox is given, as a Stream of chunks of at most `batchSize`. */
const mailboxStream = <A, E>(mailbox: Mailbox.ReadonlyMailbox<A, E>, batchSize: number): Stream.Stream<A, E> =>
  Stream.suspend(() => {
    let taken = Chunk.empty<A>()
    const pull: Effect.Effect<Chunk.Chunk<A>, Option.Option<E>> = Effect.suspend(() => {
      if (Chunk.isNonEmpty(taken)) {
        const head = Chunk.take(taken, batchSize)
        taken = Chunk.drop(taken, batchSize)
        return Effect.succeed(head)
      }
      return Effect.flatMap(Effect.mapError(mailbox.takeAll, Option.some), ([chunk, done]) => {
        if (done && Chunk.isEmpty(chunk)) return Effect.fail(Option.none())
        taken = chunk
        return pull
      })
    })
    return Stream.repeatEffectChunkOption(pull)
  })

/** The body of a message to send, as bytes (what routing hashes, and what the marker is). */
const bodyBytes = (message: Sendable): Uint8Array => {
  const body = typeof message === "string" || message instanceof Uint8Array ? message : message.body
  return typeof body === "string" ? utf8Encoder.encode(body) : body instanceof Uint8Array ? body : EMPTY
}

/** Messages one partition's mailbox holds at most while the reading waits for it. */
const SPLIT_QUEUE_LIMIT = 50_000

/** A first-in first-out queue without `Array.shift`'s copying. */
class Fifo<A> {
  private items: Array<A> = []
  private head = 0
  push(item: A) {
    this.items.push(item)
  }
  isEmpty() {
    return this.head >= this.items.length
  }
  size() {
    return this.items.length - this.head
  }
  shift(): A {
    const item = this.items[this.head++]!
    this.compact()
    return item
  }
  takeUpTo(n: number): Array<A> {
    const taken = this.items.slice(this.head, this.head + n)
    this.head += taken.length
    this.compact()
    return taken
  }
  private compact() {
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }
}

/**
 * The entries sent and not confirmed yet, in the order sent (their publishing ids increase). A
 * confirm usually is for the oldest one; one out of order is found by bisection. (A Map keyed by
 * bigint ids cost a third of `send`'s time: V8 hashes a bigint by value.)
 */
class PendingEntries<E extends PublishEntry = PublishEntry> {
  private entries: Array<E | undefined> = []
  private head = 0
  push(entry: E) {
    this.entries.push(entry)
  }
  /** Confirms the entry with this id, if it is pending, and gives it. */
  confirm(id: bigint): E | undefined {
    const { entries } = this
    let i = this.head
    if (entries[i]?.publishingId !== id) {
      let low = this.head
      let high = entries.length - 1
      i = -1
      while (low <= high) {
        const mid = (low + high) >>> 1
        // A confirmed entry keeps its place (undefined): look at its neighbours for an id.
        const at = this.idNear(mid, low, high)
        if (at === undefined) break
        const [j, found] = at
        if (found === id) {
          i = j
          break
        }
        if (found < id) low = j + 1
        else high = j - 1
      }
      if (i < 0) return undefined
    }
    const entry = entries[i]!
    entries[i] = undefined
    this.advance()
    return entry
  }
  /** An entry still pending near `mid` (within low..high), and its id. */
  private idNear(mid: number, low: number, high: number): readonly [number, bigint] | undefined {
    for (let d = 0; mid - d >= low || mid + d <= high; d++) {
      const up = mid + d <= high ? this.entries[mid + d] : undefined
      if (up !== undefined) return [mid + d, up.publishingId]
      const down = mid - d >= low ? this.entries[mid - d] : undefined
      if (down !== undefined) return [mid - d, down.publishingId]
    }
    return undefined
  }
  private advance() {
    while (this.head < this.entries.length && this.entries[this.head] === undefined) this.head++
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head)
      this.head = 0
    }
  }
  /** Confirms every pending entry with an id up to `id`, and gives them. */
  confirmUpTo(id: bigint): Array<E> {
    const confirmed: Array<E> = []
    for (let i = this.head; i < this.entries.length; i++) {
      const entry = this.entries[i]
      if (entry !== undefined && entry.publishingId <= id) {
        confirmed.push(entry)
        this.entries[i] = undefined
      }
    }
    this.advance()
    return confirmed
  }
  /** The oldest entry still pending. */
  oldest(): E | undefined {
    return this.entries[this.head]
  }
  unconfirmed(): Array<E> {
    return this.entries.slice(this.head).filter((e): e is E => e !== undefined)
  }
  /** Takes every pending entry out (they will not be confirmed here). */
  drain(): Array<E> {
    const all = this.unconfirmed()
    this.entries = []
    this.head = 0
    return all
  }
}

// ---------------------------------------------------------------------------------------------
// Producer machinery: requests, the session (writer, confirms, timeouts), recovery, closing
// ---------------------------------------------------------------------------------------------

/**
 * What becomes of a message handed to a Producer (one of them, once). Plain functions, not
 * effects: they run for every message (`Deferred.unsafeDone` for a `publish`, counts for a
 * `publishAll`); the room they free in the window is given back in bulk (`ProducerState.freed`).
 */
interface Settle {
  readonly confirmed: (publishingId: bigint) => void
  readonly skipped: (publishingId: bigint) => void
  readonly failed: (error: ProducerError) => void
}

/** Why a message (`position`: in a publishAll, from 1) cannot be published. */
const cannotPublish = (position: number | undefined, error: unknown) =>
  new InvalidArgument({
    message: `${position === undefined ? "the message" : `message ${position}`} cannot be published: ${errorText(error)}`
  })

/** A message written and waiting for its confirm (one, or a sub-entry batch). */
interface InFlight extends PublishEntry {
  readonly settle: Settle
  sentAt: number
}

/**
 * A message handed to a Producer, checked and encoded; once written (alone), it is its own entry
 * in flight: one object per message from `publish` to its confirm.
 */
class ProducerRequest implements InFlight {
  sentAt = 0
  constructor(
    readonly messages: ReadonlyArray<OutboundMessage>,
    /** Its own publishing id, else 0n until the writer numbers it. */
    public publishingId: bigint,
    readonly settle: Settle
  ) {}
}

/**
 * The requests handed over and not yet written, for the writer to take in batches (an array, not
 * an Effect Queue: no list node or Chunk copy per message, which cost `send` a third more time).
 */
class RequestQueue {
  private readonly fifo = new Fifo<ProducerRequest>()
  private signal: Deferred.Deferred<void> | undefined
  offerAll(requests: ReadonlyArray<ProducerRequest>) {
    for (const r of requests) this.fifo.push(r)
    if (this.signal !== undefined && requests.length > 0) {
      Deferred.unsafeDone(this.signal, Exit.void)
      this.signal = undefined
    }
  }
  takeUpTo(n: number): Array<ProducerRequest> {
    return this.fifo.takeUpTo(n)
  }
  takeAll(): Array<ProducerRequest> {
    return this.fifo.takeUpTo(this.fifo.size())
  }
  /** Waits until there is a request to take. */
  readonly available: Effect.Effect<void> = Effect.suspend(() =>
    this.fifo.isEmpty() ? Deferred.await(this.signal ??= Deferred.unsafeMake<void>(FiberId.none)) : Effect.void
  )
}

/**
 * How a producer turns what it is given into requests: encoded with the schema if it has one,
 * checked (a message that cannot be published fails alone, naming its position), numbered by
 * position for a named producer's `publishAll` (`byPosition`) or by its own `publishingId`.
 */
const producerRequests = (options: ProducerOptions, subEntrySize: number) => {
  const { name } = options
  const encodeValue = options.schema === undefined ? undefined : bodyEncoder(options.schema, options.bodyFormat)
  /** With a schema, a value (or a ValueMessage) as the message it is published as. */
  const asMessage = (input: unknown): ProducerMessage => {
    if (encodeValue === undefined) return input as ProducerMessage
    const { sections, value } = input instanceof ValueMessage ? input : new ValueMessage(input)
    const body = encodeValue(value)
    const properties = options.bodyFormat === undefined || options.bodyFormat === "json"
      ? { contentType: "application/json", ...sections.properties }
      : sections.properties
    return { ...sections, properties, body }
  }
  /**
   * A request for a message, checked and encoded (plain code: a publishAll runs it for each);
   * `settle` is `settled`. A `position` (from 1 in a publishAll) names the message in errors, and
   * is its publishing id when `byPosition` (a named producer).
   */
  const request = (input: unknown, settle: Settle, position?: number, byPosition?: boolean): ProducerRequest | InvalidArgument => {
    let message: ProducerMessage
    try {
      message = asMessage(input)
    } catch (error) {
      return cannotPublish(position, error)
    }
    const publishingId = byPosition && name !== undefined
      ? BigInt(position!)
      : typeof message === "object" && !(message instanceof Uint8Array) && "publishingId" in message
      ? message.publishingId
      : undefined
    if (publishingId !== undefined) {
      if (name === undefined) {
        return new InvalidArgument({ message: "a message's own publishingId needs a named producer (ProducerOptions.name)" })
      }
      if (typeof publishingId !== "bigint" || publishingId <= 0n) {
        return new InvalidArgument({ message: `a publishingId must be a positive bigint, got ${String(publishingId)}` })
      }
    }
    try {
      const outbound = toOutbound(message)
      // The protocol has no filter values for sub-entry batches.
      if (subEntrySize > 1 && outbound.filterValue !== undefined) {
        codecError("it has a filter value, and sub-entry batches cannot carry filter values (publish filtered messages without subEntrySize)")
      }
      return new ProducerRequest([outbound], publishingId ?? 0n, settle)
    } catch (error) {
      return cannotPublish(position, error)
    }
  }
  return request
}

/** What a producer's publishing shares: its stream and state, how requests are made, settled and handed over. */
interface ProducerHandOver {
  readonly stream: string
  readonly state: ProducerState
  readonly request: ReturnType<typeof producerRequests>
  readonly settled: (settle: Settle) => Settle
  readonly hand: (requested: ReadonlyArray<ProducerRequest>) => Effect.Effect<void, ProducerClosed>
}

/** `Producer.publish`: one message handed over, waited for until it is settled. */
const publishOneWith = ({ hand, request, settled, state, stream }: ProducerHandOver) => (message: unknown) =>
  Effect.suspend((): Effect.Effect<Published, ProducerError> => {
    if (state.closed) return Effect.fail(new ProducerClosed({ stream }))
    const done = Deferred.unsafeMake<Published, ProducerError>(FiberId.none)
    const requested = request(
      message,
      settled({
        confirmed: (publishingId) => Deferred.unsafeDone(done, Exit.succeed({ publishingId, skipped: false })),
        skipped: (publishingId) => Deferred.unsafeDone(done, Exit.succeed({ publishingId, skipped: true })),
        failed: (error) => Deferred.unsafeDone(done, Exit.fail(error))
      })
    )
    return requested instanceof InvalidArgument ? Effect.fail(requested) : Effect.zipRight(hand([requested]), Deferred.await(done))
  })

/**
 * Publishes a stream of messages, counting them in bulk (not a Deferred per message), handed
 * over a chunk at a time; a message that cannot be published fails it before its chunk is handed
 * over. Succeeds once every message handed over is confirmed (or skipped).
 */
const publishAllWith = (producer: ProducerHandOver) =>
<E, R>(messages: Stream.Stream<unknown, E, R>, byPosition: boolean): Effect.Effect<PublishAllSummary, ProducerError | E, R> =>
  Effect.gen(function*() {
    const { hand, request, settled, state, stream } = producer
    const done = Deferred.unsafeMake<void, ProducerError>(FiberId.none)
    const counts = { handed: 0, published: 0, skipped: 0, ended: false }
    const check = () => {
      if (counts.ended && counts.published + counts.skipped === counts.handed) Deferred.unsafeDone(done, Exit.void)
    }
    const settle = settled({
      confirmed: () => (counts.published++, check()),
      skipped: () => (counts.skipped++, check()),
      // A timeout counts every message handed over and not confirmed, not only the first late one.
      failed: (error) =>
        Deferred.unsafeDone(
          done,
          Exit.fail(
            error._tag === "ConfirmTimeout"
              ? new ConfirmTimeout({ stream: error.stream, timeout: error.timeout, unconfirmed: counts.handed - counts.published - counts.skipped })
              : error
          )
        )
    })
    yield* Stream.runForEachChunk(messages, (chunk) =>
      Effect.suspend((): Effect.Effect<void, ProducerError> => {
        if (state.closed) return Effect.fail(new ProducerClosed({ stream }))
        const requested: Array<ProducerRequest> = []
        const all = Chunk.toReadonlyArray(chunk)
        for (let i = 0; i < all.length; i++) {
          const r = request(all[i]!, settle, counts.handed + requested.length + 1, byPosition)
          if (r instanceof InvalidArgument) return Effect.fail(r)
          requested.push(r)
        }
        counts.handed += requested.length
        return hand(requested)
      })).pipe(Effect.raceFirst(Effect.zipRight(Deferred.await(done), Effect.never)))
    counts.ended = true
    check()
    yield* Deferred.await(done)
    return { published: counts.published, skipped: counts.skipped }
  })

/**
 * A producer's close: no more is taken; what was handed over is still published and confirmed,
 * within `drainFor` and the release bound (not waited for without it); then the sessions end and
 * whatever is left fails with ProducerClosed.
 */
const closeProducer = (producer: {
  readonly stream: string
  readonly state: ProducerState
  readonly requests: RequestQueue
  readonly pending: PendingEntries<InFlight>
  readonly sessions: Fiber.RuntimeFiber<unknown, unknown>
  readonly drainFor: Duration.Duration | undefined
}): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { drainFor, pending, requests, state, stream } = producer
    state.closed = true
    if (drainFor !== undefined && state.outstanding > 0) {
      const drained = yield* Deferred.make<void>()
      state.drained = drained
      // (A finalizer is uninterruptible: the wait itself must be, for the bound to hold.)
      yield* Deferred.await(drained).pipe(Effect.interruptible, Effect.timeout(Duration.sum(drainFor, RELEASE_TIMEOUT)), Effect.ignore)
    }
    yield* Fiber.interrupt(producer.sessions)
    const held = state.held === undefined ? [] : [state.held.settle]
    state.held = undefined
    const left = held.concat(requests.takeAll().map((r) => r.settle), pending.drain().map((e) => e.settle))
    for (const settle of left) settle.failed(new ProducerClosed({ stream }))
    yield* freeRoom(state)
  })

/**
 * A producer's window of messages in flight: a request takes its room when it is handed over
 * (waiting while the window is full: backpressure) and frees it when it is settled, whoever waits
 * for it; the last one a closing producer waits for says so. Invariant: `outstanding` counts the
 * requests handed over and not settled.
 */
const inFlightWindow = (stream: string, state: ProducerState, requests: RequestQueue, maxInFlight: number) => {
  const end = () => {
    state.outstanding--
    state.freed++
    if (state.drained !== undefined && state.outstanding === 0) Deferred.unsafeDone(state.drained, Exit.void)
  }
  return {
    settled: (settle: Settle): Settle => ({
      confirmed: (id) => (end(), settle.confirmed(id)),
      skipped: (id) => (end(), settle.skipped(id)),
      failed: (error) => (end(), settle.failed(error))
    }),
    hand: (requested: ReadonlyArray<ProducerRequest>): Effect.Effect<void, ProducerClosed> =>
      Effect.gen(function*() {
        for (let i = 0; i < requested.length; i += maxInFlight) {
          const part = requested.slice(i, i + maxInFlight)
          yield* state.window.take(part.length)
          if (state.closed) {
            yield* state.window.release(part.length)
            return yield* Effect.fail(new ProducerClosed({ stream }))
          }
          state.outstanding += part.length
          requests.offerAll(part)
        }
      })
  }
}

/** `Producer.make`'s effect (and its layer's): the options checked once, then the producer. */
const checkedProducer = (options: ProducerOptions): Effect.Effect<Producer<unknown>, SendError, StreamBroker | Scope.Scope> =>
  Effect.zipRight(validateProducerOptions(options), makeProducer(options))

/**
 * A Producer, and what `send` needs of it besides: `publishAll` that numbers the messages by their
 * position (a named producer run again skips what the broker has), and a close that does not wait
 * for what was handed over (`send` waits for every confirm itself; on a failure it stops there).
 */
interface ProducerInternals extends Producer<unknown> {
  readonly publishByPosition: <E, R>(messages: Stream.Stream<Sendable, E, R>) => Effect.Effect<PublishAllSummary, ProducerError | E, R>
}

const makeProducer = (
  options: ProducerOptions,
  internal: {
    readonly drainOnClose: boolean
    readonly streamExists: boolean
    /** The super stream `options.stream` is a partition of (the metrics' tags say so). */
    readonly superStream?: string | undefined
  } = { drainOnClose: true, streamExists: false }
): Effect.Effect<ProducerInternals, SendError, StreamBroker | Scope.Scope> =>
  Effect.gen(function*() {
    const broker = yield* StreamBroker
    const { name, stream } = options
    if (options.retention !== undefined) {
      yield* broker.declareStream(stream, options.retention)
    } else if (!internal.streamExists && !(yield* broker.streamExists(stream))) {
      return yield* Effect.fail(new StreamNotFound({ stream }))
    }
    const subEntrySize = options.subEntrySize ?? 1
    const maxInFlight = options.maxInFlight ?? 10_000
    const confirmTimeout = Duration.decode(options.confirmTimeout ?? DEFAULT_TIMEOUT)
    const window = yield* Effect.makeSemaphore(maxInFlight)
    const requests = new RequestQueue()
    const pending = new PendingEntries<InFlight>()
    const state: ProducerState = {
      closed: false,
      last: 0n,
      confirmed: 0,
      outstanding: 0,
      freed: 0,
      drained: undefined,
      held: undefined,
      window
    }
    const { hand, settled } = inFlightWindow(stream, state, requests, maxInFlight)
    // The first publisher is made before the producer is given out (waiting out an outage under the
    // retry policy): its broker's last publishing id is known from the start.
    const ready = yield* Deferred.make<void, SendError>()
    const session = producerSession({
      span: messagingSpan("send", { stream, superStream: internal.superStream, producer: name }),
      broker,
      stream,
      name,
      compression: options.compression,
      subEntrySize,
      confirmTimeout,
      requests,
      pending,
      state,
      ready
    })
    // The sessions' fibers (writer, confirms) inherit the tags: every update of theirs is tagged.
    const tags = metricTags({ stream, superStream: internal.superStream, producer: name })
    const sessions = yield* Effect.forkScoped(
      Effect.tagMetrics(producerSessions(broker, session, { name, stream, requests, pending, state, ready }), tags)
    )
    yield* Deferred.await(ready)

    const request = producerRequests(options, subEntrySize)
    const publishAll = publishAllWith({ hand, request, settled, state, stream })

    yield* Effect.addFinalizer(() =>
      closeProducer({ stream, state, requests, pending, sessions, drainFor: internal.drainOnClose ? confirmTimeout : undefined })
    )

    return {
      stream,
      name,
      publish: publishOneWith({ hand, request, settled, state, stream }),
      publishAll: (messages) => publishAll(messages, false),
      publishByPosition: (messages) => publishAll(messages, true),
      lastPublishingId: Effect.sync(() => state.last)
    } satisfies ProducerInternals
  }).pipe(Effect.withSpan("StreamOffsets.Producer.make"))

interface ProducerState {
  closed: boolean
  /** The highest publishing id the broker has (named) or this producer sent. */
  last: bigint
  confirmed: number
  /** Messages handed over and not settled yet; when closing, `drained` completes at 0. */
  outstanding: number
  /** Room in the window freed by settled messages, to give back (`freeRoom`). */
  freed: number
  readonly window: Effect.Semaphore
  drained: Deferred.Deferred<void> | undefined
  /** A request taken to see that one is waiting (after a failure): the next session sends it first. */
  held: ProducerRequest | undefined
}

/** Gives the window back the room settled messages freed. */
const freeRoom = (state: ProducerState): Effect.Effect<void> =>
  Effect.suspend(() => {
    const n = state.freed
    state.freed = 0
    return n > 0 ? state.window.release(n) : Effect.void
  })

/** What a producer's sessions share. */
interface SessionContext {
  /** The span of each batch written (OpenTelemetry's messaging conventions). */
  readonly span: MessagingSpan
  readonly broker: StreamBrokerShape
  readonly stream: string
  readonly name: string | undefined
  readonly compression: Compression | undefined
  readonly subEntrySize: number
  readonly confirmTimeout: Duration.Duration
  readonly requests: RequestQueue
  readonly pending: PendingEntries<InFlight>
  readonly state: ProducerState
  readonly ready: Deferred.Deferred<void, SendError>
}

/**
 * One publisher's life: what the broker lacks of the messages in flight is sent again (named), then
 * requests are taken in batches, numbered and written, confirms settle them, and a message not
 * confirmed in time fails. Fails when the publisher's connection is lost.
 */
const producerSession = (ctx: SessionContext): Effect.Effect<void, SendError> =>
  Effect.scoped(Effect.gen(function*() {
    const publisher = yield* ctx.broker.publisher(ctx.stream, { name: ctx.name, compression: ctx.compression })
    if (ctx.name !== undefined) yield* resendWhatTheBrokerLacks(ctx, publisher)
    yield* Deferred.succeed(ctx.ready, undefined)
    yield* Effect.forkScoped(settleConfirmations(ctx, publisher))
    // Whichever ends first ends the session (all three only end by failing).
    return yield* Effect.raceFirst(writeBatches(ctx, publisher), Effect.raceFirst(publisher.lost, confirmTimeouts(ctx)))
  }))

/**
 * A named producer's new publisher: what the broker has of the messages in flight is confirmed
 * (counted as confirms are: the CLI reports the count when a send fails), the rest goes again, in
 * order. Nothing the broker has is sent again.
 */
const resendWhatTheBrokerLacks = (ctx: SessionContext, publisher: Publisher): Effect.Effect<void, SendError> =>
  Effect.gen(function*() {
    const { pending, state } = ctx
    if (publisher.lastPublishingId > state.last) state.last = publisher.lastPublishingId
    let had = 0
    for (const e of pending.confirmUpTo(publisher.lastPublishingId)) {
      had += e.messages.length
      e.settle.confirmed(e.publishingId)
    }
    state.confirmed += had
    if (had > 0) yield* Metric.incrementBy(messagesConfirmed, had)
    yield* freeRoom(state)
    const again = pending.unconfirmed()
    const at = yield* Clock.currentTimeMillis
    for (const e of again) e.sentAt = at
    if (again.length > 0) yield* publisher.publish(again)
  })

/** Confirms and rejections, as they come, settle the messages in flight and free their room. */
const settleConfirmations = (ctx: SessionContext, publisher: Publisher): Effect.Effect<never> =>
  Queue.take(publisher.confirmations).pipe(
    Effect.flatMap((confirmation) => {
      const { pending, state, stream } = ctx
      let confirmed = 0
      let rejected = 0
      let oldest = Infinity
      if (confirmation._tag === "Confirmed") {
        for (const id of confirmation.publishingIds) {
          const entry = pending.confirm(id)
          if (entry === undefined) continue
          confirmed += entry.messages.length
          if (entry.sentAt < oldest) oldest = entry.sentAt
          entry.settle.confirmed(id)
        }
        state.confirmed += confirmed
      } else {
        const { code, publishingId } = confirmation
        const entry = pending.confirm(publishingId)
        if (entry !== undefined) rejected = entry.messages.length
        entry?.settle.failed(new PublishError({ stream, publishingId, code }))
      }
      return Effect.zipRight(confirmMetrics(state, confirmed, rejected, oldest), freeRoom(state))
    }),
    Effect.forever
  )

/** One confirm frame's metrics: counts, its oldest message's latency, what is still in flight. */
const confirmMetrics = (state: ProducerState, confirmed: number, rejected: number, oldestSentAt: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    if (confirmed > 0) yield* Metric.incrementBy(messagesConfirmed, confirmed)
    if (rejected > 0) yield* Metric.incrementBy(messagesRejected, rejected)
    if (oldestSentAt !== Infinity) {
      yield* Metric.update(confirmLatency, Math.max(0, (yield* Clock.currentTimeMillis) - oldestSentAt) / 1000)
    }
    yield* Metric.set(confirmsInFlight, state.outstanding)
  })

/**
 * The oldest message in flight is the first to be late. A named producer takes that as a
 * connection that no longer works (a broker that stopped answering, or that refuses publishers
 * during a disk alarm, or is very slow): the session ends, and the next one sends again what the
 * broker does not have. An unnamed one cannot tell what the broker has: the message fails.
 */
const confirmTimeouts = (ctx: SessionContext): Effect.Effect<never, ConnectionLost> =>
  Effect.gen(function*() {
    const { name, pending, state, stream } = ctx
    const limit = Duration.toMillis(ctx.confirmTimeout)
    for (;;) {
      const oldest = pending.oldest()
      const at = yield* Clock.currentTimeMillis
      if (oldest !== undefined && at - oldest.sentAt >= limit) {
        if (name !== undefined) {
          return yield* Effect.fail(
            new ConnectionLost({
              during: `publishing to "${stream}"`,
              reason: `no confirm within ${Duration.format(ctx.confirmTimeout)} (the broker is not answering, or refuses publishers: a disk alarm)`
            })
          )
        }
        pending.confirm(oldest.publishingId)
        oldest.settle.failed(new ConfirmTimeout({ stream, unconfirmed: oldest.messages.length, timeout: ctx.confirmTimeout }))
        yield* freeRoom(state)
        continue
      }
      yield* Effect.sleep(Duration.millis(oldest === undefined ? limit : Math.max(1, oldest.sentAt + limit - at)))
    }
  })

/**
 * Takes requests in batches (up to 5,000), numbers them (an id the broker has, or was sent, is
 * skipped and said so), groups them into sub-entries, and writes them; a message the broker cannot
 * take (larger than a frame) fails alone.
 */
const writeBatches = (ctx: SessionContext, publisher: Publisher): Effect.Effect<never, SendError> =>
  Effect.forever(Effect.gen(function*() {
    const { pending, requests, state, subEntrySize } = ctx
    const held = state.held
    if (held === undefined) yield* requests.available
    const batch = held === undefined ? requests.takeUpTo(5000) : [held, ...requests.takeUpTo(4999)]
    state.held = undefined
    const at = yield* Clock.currentTimeMillis
    const entries: Array<InFlight> = []
    const skipped: Array<readonly [Settle, bigint]> = []
    const put = (entry: InFlight) => {
      pending.push(entry)
      entries.push(entry)
    }
    // Messages of the batch that go into one sub-entry, with their ids.
    let group: Array<ProducerRequest> = []
    const closeGroup = () => {
      if (group.length > 0) put(subEntry(group, at))
      group = []
    }
    // Numbered and put in flight without a pause: an interruption (a lost connection) finds every
    // message of the batch either in flight (sent again, or failed) or settled.
    for (const request of batch) {
      const id = request.publishingId === 0n ? state.last + 1n : request.publishingId
      if (id <= state.last) {
        skipped.push([request.settle, id])
        continue
      }
      state.last = id
      request.publishingId = id
      request.sentAt = at
      if (subEntrySize === 1) put(request)
      else if (group.push(request) >= subEntrySize) closeGroup()
    }
    closeGroup()
    for (const [settle, id] of skipped) settle.skipped(id)
    yield* freeRoom(state)
    if (entries.length === 0) return
    let written = 0
    for (const e of entries) written += e.messages.length
    yield* Metric.incrementBy(messagesSent, written)
    yield* Metric.set(confirmsInFlight, state.outstanding)
    yield* withMessagingSpan(publisher.publish(entries), ctx.span, written).pipe(
      Effect.catchTag("InvalidArgument", (error) =>
        Effect.suspend(() => {
          for (const e of entries) if (pending.confirm(e.publishingId) !== undefined) e.settle.failed(error)
          return freeRoom(state)
        }))
    )
  }))

/** Messages written as one sub-entry batch, under the id of the last; each settles as its own. */
const subEntry = (group: ReadonlyArray<ProducerRequest>, sentAt: number): InFlight => ({
  publishingId: group[group.length - 1]!.publishingId,
  messages: group.map((request) => request.messages[0]!),
  settle: {
    confirmed: () => group.forEach((request) => request.settle.confirmed(request.publishingId)),
    skipped: () => group.forEach((request) => request.settle.skipped(request.publishingId)),
    failed: (error) => group.forEach((request) => request.settle.failed(error))
  },
  sentAt
})

/**
 * Sessions one after another for the producer's life. After a lost connection a named producer
 * starts another (its messages in flight go again); an unnamed one fails those (it cannot tell what
 * the broker has) and goes on with new ones. A failure the retry policy gives up on fails what is
 * in flight and waiting, and the next request starts over.
 */
const producerSessions = (
  broker: StreamBrokerShape,
  session: Effect.Effect<void, SendError>,
  ctx: {
    readonly name: string | undefined
    readonly stream: string
    readonly requests: RequestQueue
    readonly pending: PendingEntries<InFlight>
    readonly state: ProducerState
    readonly ready: Deferred.Deferred<void, SendError>
  }
): Effect.Effect<never> => {
  const failInFlight = (error: ProducerError) =>
    Effect.suspend(() => {
      for (const e of ctx.pending.drain()) e.settle.failed(error)
      return freeRoom(ctx.state)
    })
  const once = recovering(broker.retry, session, {
    retryable: (error) => isTransient(error),
    progress: () => ctx.state.confirmed,
    onRetry: (error) =>
      Effect.zipRight(
        ctx.name === undefined ? failInFlight(error as ProducerError) : Effect.void,
        Effect.logWarning(
          `${error.message}; ${
            ctx.name === undefined
              ? "what was in flight failed"
              : `publishing again what was not confirmed (${
                ctx.pending.unconfirmed().reduce((n, e) => n + e.messages.length, 0)
              } message(s))`
          }`
        )
      )
  })
  return Effect.forever(
    Effect.catchAll(once, (error) =>
      Effect.gen(function*() {
        // Given up: everything waiting fails with why, and the next request starts over (a
        // producer that never connected fails to be made).
        yield* Deferred.fail(ctx.ready, error)
        yield* failInFlight(error as ProducerError)
        const waiting = ctx.requests.takeAll()
        for (const r of waiting) r.settle.failed(error as ProducerError)
        yield* freeRoom(ctx.state)
        yield* Effect.logWarning(`${error.message}; the producer of "${ctx.stream}" failed what it had, and starts over`)
        // The next request starts a new session, which sends it first.
        yield* ctx.requests.available
        ctx.state.held = ctx.requests.takeUpTo(1)[0]
      })
    )
  )
}

// ---------------------------------------------------------------------------------------------
// Consume machinery: the consumer (start, turns, subscriptions, stop selection), partitions, the offset tracker
// ---------------------------------------------------------------------------------------------

/**
 * What the consumer emits: the messages of one delivered chunk that are past the start, cut at the
 * stop condition. The last selection says what stopped the consumer: the stop reason is data the
 * stream carries, not a flag set on the side.
 */
interface Selection {
  readonly messages: Chunk.Chunk<StreamMessage>
  /** How many messages the consumer emitted before this chunk: the index of its first message. */
  readonly firstIndex: number
  readonly stop: StopReason | undefined
  /**
   * The last offset this selection accounts for: its messages, and those dropped among and after
   * them (filtered out, skipped as undecodable). Once its messages are processed, the consumer is
   * past it, and stores may say so.
   */
  readonly through: bigint | undefined
  /** Messages skipped as undecodable (`onDecodeError: "skip"`): each is said once. */
  readonly skipped: ReadonlyArray<UndecodableMessage> | undefined
  /** The message that ends the consumer (`onDecodeError: "fail"`), after this selection's messages. */
  readonly failure: MessageDecodeError | undefined
}

/** One consumer of `consume` or `receive`: its selections, its offset tracker, its summary. */
interface Consumer {
  readonly selections: Stream.Stream<Selection, ConsumeError>
  readonly tracker: OffsetTracker
  /** A single active consumer's turn (undefined for a plain one): what it may process, and when. */
  readonly turn: Turn | undefined
  readonly summary: (stoppedBy: StopReason) => ReceiveSummary
  /** The span of each chunk `receive` processes (OpenTelemetry's messaging conventions). */
  readonly span: MessagingSpan
}

/**
 * Checks the options, finds where to start, and builds the stream of selections: one subscription
 * after another (a lost connection or a stream between leaders subscribes again, under the
 * broker's retry policy, after the last message delivered), cut at the stop conditions. Whatever
 * ends it, the last processed offset is stored when its scope closes (bounded).
 */
const makeConsumer = (
  options: ConsumeOptions,
  /** The super stream `options.stream` is a partition of. */
  superStream?: string
): Effect.Effect<Consumer, ConsumeError, StreamBroker | OffsetStore | Scope.Scope> =>
  Effect.gen(function*() {
    const broker = yield* StreamBroker
    const offsets = yield* OffsetStore
    const { consumerName, stream } = options
    const tracking = options.tracking ?? DEFAULT_TRACKING
    // A super stream's options were checked once for all its partitions.
    if (superStream === undefined) yield* validateConsumeOptions(options)
    // Say so when the stream is missing, rather than "no offset" or an empty wait.
    if (!(yield* broker.streamExists(stream))) return yield* Effect.fail(new StreamNotFound({ stream }))
    const inTurn = { isActive: () => true }
    const tags = metricTags({ stream, superStream, consumer: consumerName })
    const tracker = yield* makeOffsetTracker({
      store: (offset) => measuredStore(offsets.store(consumerName, stream, offset), tags),
      query: offsets.query(consumerName, stream),
      every: storeEvery(tracking) ?? Infinity,
      confirmTimeout: Duration.decode(options.confirmStoreTimeout ?? "5 seconds"),
      mayStore: () => inTurn.isActive()
    })
    // A failure or an interruption outside a subscription (between two, during an outage) still
    // stores the last processed offset, within the bound.
    yield* Effect.addFinalizer(() => tracker.finalStore)
    const position = makePosition(options, tracker)
    const turn = options.singleActive ? yield* makeTurn(tracker, position) : undefined
    if (turn) inTurn.isActive = turn.isActive
    const start = yield* position.resolveStart
    yield* Effect.annotateCurrentSpan({ stream, consumerName, start: startLabel(start) })
    yield* Effect.forkScoped(refreshLag(broker, stream, tracker, position, tags))
    // "The end" is the last message in the stream now, before consuming starts.
    const end = options.stop?.untilEnd ? (yield* broker.bounds(stream)).lastOffset : Option.none<bigint>()

    const outages = perOutage(broker.retry)
    const subscriptions = Stream.retry(
      subscription(broker, options, tracking, tracker, position, turn && { turn, superStream }, outages.ended),
      resubscribePolicy(outages.policy, position)
    )
    const admission: Admission = {
      stream,
      test: stopTest(options.stop),
      end: Option.getOrUndefined(end),
      onDecodeError: options.onDecodeError,
      keep: keepFilter(options.filter),
      decode: options.schema === undefined ? undefined : bodyDecoder(options.schema, options.bodyFormat)
    }
    const selected = options.stop?.untilEnd && nothingBefore(end, start)
      ? Stream.make(emptySelection("end"))
      : selectUntilStop(subscriptions, admission, options.stop?.idleTimeout)
    return {
      selections: countedSelections(selected, stream, taggedMetric(messagesConsumed, tags)),
      tracker,
      turn,
      span: messagingSpan("process", { stream, superStream, consumer: consumerName }),
      summary: (stoppedBy) => {
        const progress = tracker.progress()
        return {
          messages: progress.messages,
          firstOffset: progress.first,
          lastOffset: progress.last,
          start: position.start(),
          resumed: position.resumed(),
          stoppedBy,
          storedOffset: progress.lastStored,
          storeConfirmed: progress.storeConfirmed,
          storeProblem: progress.storeProblem
        }
      }
    }
  })

/**
 * The selections as the consumer hands them on: counted in `messagesConsumed`, skipped undecodable
 * messages said; a message that cannot be decoded ends the stream with its error after the
 * selection that holds the messages before it, so that those are processed (and stored) first.
 */
const countedSelections = <E>(
  selected: Stream.Stream<Selection, E>,
  stream: string,
  consumed: Metric.Metric.Counter<number>
): Stream.Stream<Selection, E | MessageDecodeError> => {
  const failed: { error?: MessageDecodeError } = {}
  return Stream.concat(
    Stream.tap(selected, (selection) => {
      if (selection.failure !== undefined) failed.error = selection.failure
      return Effect.zipRight(
        Metric.incrementBy(consumed, Chunk.size(selection.messages)),
        selection.skipped === undefined ? Effect.void : Effect.forEach(selection.skipped, (m) =>
          Effect.logWarning(`skipped the message at offset ${m.offset} of stream "${stream}": it cannot be decoded (${m.reason})`), {
          discard: true
        })
      )
    }),
    Stream.suspend(() => (failed.error === undefined ? Stream.empty : Stream.fail(failed.error)))
  )
}

/** An offset store, timed (`offsetStoreLatency`) and its failures counted, under the consumer's tags. */
const measuredStore = (store: Effect.Effect<void, OffsetStoreError>, tags: MetricTags): Effect.Effect<void, OffsetStoreError> =>
  Effect.gen(function*() {
    const started = yield* nanosNow
    yield* Effect.tapError(store, () => Metric.increment(offsetStoreFailures))
    yield* Metric.update(offsetStoreLatency, Number((yield* nanosNow) - started) / 1e9)
  }).pipe(Effect.tagMetrics(tags))

/** The clock in nanoseconds (`Clock.currentTimeNanos` of a TestClock fails between whole milliseconds). */
const nanosNow = Clock.clockWith((clock) => Effect.sync(() => clock.unsafeCurrentTimeNanos()))

/** How often a consumer's lag is refreshed: one stream statistics request each time. */
const LAG_REFRESH = Duration.seconds(2)

/**
 * Sets `consumerLag` every {@link LAG_REFRESH}, while the consumer lives. The broker's statistics
 * name the stream's last chunk, not its last message, and a tracking entry (our own stores) is a
 * chunk too: so a consumer that has the last chunk, or that was sent nothing new for a whole
 * period and processed all it was sent (the broker sends whatever it has to a consumer with
 * credit), is behind by what it has not processed yet; otherwise the estimate is the last chunk's
 * offset minus the last processed. During an outage the gauge stays as it was.
 */
const refreshLag = (
  broker: StreamBrokerShape,
  stream: string,
  tracker: OffsetTracker,
  position: Position,
  tags: MetricTags
): Effect.Effect<void> => {
  const lag = taggedMetric(consumerLag, tags)
  const seen = { delivered: undefined as bigint | undefined }
  const once = Effect.flatMap(broker.lastChunk(stream), (lastChunk) => {
    const delivered = position.lastDelivered()
    const quiet = delivered === seen.delivered
    seen.delivered = delivered
    const processed = Option.getOrUndefined(tracker.progress().last)
    const start = position.start()
    const before = processed ?? (start._tag === "Offset" ? start.offset - 1n : -1n)
    const behindBuffer = delivered === undefined || processed === undefined ? 0n : delivered - processed
    const caughtUp = Option.isNone(lastChunk) || (delivered !== undefined && lastChunk.value <= delivered) ||
      (quiet && behindBuffer === 0n && delivered !== undefined)
    const value = caughtUp ? behindBuffer : Option.getOrThrow(lastChunk) - before
    return Metric.set(lag, Number(value > 0n ? value : 0n))
  })
  // Only while connected: a request during an outage would join it, or start one after the
  // policy gave up (and hold the workflow's own reconnection to a new policy).
  const whenConnected = Effect.flatMap(broker.connectionState, (state) => state._tag === "Connected" ? Effect.ignore(once) : Effect.void)
  return Effect.repeat(whenConnected, Schedule.spaced(LAG_REFRESH)).pipe(Effect.asVoid)
}

const validateFilter = (filter: ConsumeFilter | undefined, stop: StopConditions | undefined): Effect.Effect<void, InvalidArgument> => {
  if (filter === undefined) return Effect.void
  const invalid = (message: string) => Effect.fail(new InvalidArgument({ message }))
  if (!Array.isArray(filter.values) || filter.values.length === 0) return invalid("filter.values needs at least one filter value")
  const bad = filter.values.find((v) => typeof v !== "string" || v === "" || utf8Encoder.encode(v).length > MAX_FILTER_VALUE_BYTES)
  if (bad !== undefined) return invalid(`a filter value must be a non-empty string of at most ${MAX_FILTER_VALUE_BYTES} bytes, got ${JSON.stringify(bad)}`)
  // The broker says nothing of the chunks it skips: the end could be skipped, and never reached.
  if (stop?.untilEnd) return invalid("stop.untilEnd cannot be used with a filter: the broker skips chunks silently, so the end may never be seen (use stop.idleTimeout)")
  return Effect.void
}

/** The messages a filter keeps of the chunks the broker delivers. */
const keepFilter = (filter: ConsumeFilter | undefined): ((message: StreamMessage) => boolean) | undefined => {
  if (filter === undefined) return undefined
  if (filter.postFilter !== undefined) return filter.postFilter
  const values = new Set(filter.values)
  const { property } = filter
  if (property !== undefined) {
    const unfiltered = filter.matchUnfiltered === true
    return (message) => {
      const value = message.applicationProperties?.[property]
      return typeof value === "string" ? values.has(value) : unfiltered
    }
  }
  return (message) => {
    const value = filterValueOf(message)
    return value === undefined || values.has(value)
  }
}

/** The count and the idle timeout of stop conditions. */
const validateStop = (stop: StopConditions = {}): Effect.Effect<void, InvalidArgument> =>
  stop.count !== undefined && !(Number.isInteger(stop.count) && stop.count > 0)
    ? Effect.fail(new InvalidArgument({ message: `the stop count must be a positive integer, got ${stop.count}` }))
    : stop.idleTimeout !== undefined && Duration.toMillis(stop.idleTimeout) <= 0
    ? Effect.fail(new InvalidArgument({ message: "the idle timeout must be longer than 0" }))
    : Effect.void

/** After how many messages a store falls due; undefined: never (only at the stop). */
const storeEvery = (tracking: TrackingStrategy): number | undefined =>
  tracking._tag === "Manual" ? tracking.every : tracking._tag === "Auto" ? tracking.messages : undefined

/**
 * Where the consumer is in the stream: where it started (stored + 1, else the start position;
 * resolved again on activation, single active, where its own progress counts too), and the last
 * message it delivered, after which a new subscription resumes.
 */
interface Position {
  readonly resolveStart: Effect.Effect<StartPosition, OffsetStoreError>
  /**
   * Where a single active consumer starts when the broker activates it: after what it processed
   * itself or what is stored, whichever is later (what it was given but did not process before it
   * stepped down is not counted: it was dropped).
   */
  readonly resolveActivation: Effect.Effect<StartPosition, OffsetStoreError>
  readonly start: () => StartPosition
  readonly resumed: () => boolean
  /** Where the next subscription starts. */
  readonly subscribeAt: () => StartPosition
  /** The messages of a chunk at or after the subscription's start (the broker starts at a chunk's beginning). */
  readonly deliver: (chunk: Chunk.Chunk<StreamMessage>) => Chunk.Chunk<StreamMessage>
  readonly lastDelivered: () => bigint | undefined
}

const makePosition = (options: ConsumeOptions, tracker: OffsetTracker): Position => {
  const state = {
    start: options.start ?? StartPosition.First(),
    resumed: false,
    subscribedAt: options.start ?? StartPosition.First(),
    lastDelivered: undefined as bigint | undefined
  }
  const startAfter = (from: Option.Option<bigint>) => {
    state.start = Option.match(from, {
      onNone: () => options.start ?? StartPosition.First(),
      onSome: (offset) => StartPosition.Offset({ offset: offset + 1n })
    })
    state.resumed = Option.isSome(from)
    state.subscribedAt = state.start
    return state.start
  }
  // What was stored when this consumer started: all that `ignoreStoredOffset` ignores (an offset a
  // single active peer stores later, handing a partition over, is where to go on from).
  const atStart = { stored: undefined as Option.Option<bigint> | undefined }
  const resolveStart = Effect.map(tracker.readStored, (stored) => {
    atStart.stored ??= stored
    return startAfter(
      state.lastDelivered !== undefined
        ? maxOffset(Option.some(state.lastDelivered), stored)
        : options.ignoreStoredOffset
        ? Option.none<bigint>()
        : stored
    )
  })
  const resolveActivation = Effect.map(tracker.readStored, (stored) => {
    const processed = tracker.progress().last
    state.lastDelivered = Option.getOrUndefined(processed)
    const storedBefore = atStart.stored ?? stored
    const ignored = options.ignoreStoredOffset && Option.getEquivalence((a: bigint, b: bigint) => a === b)(stored, storedBefore)
    return startAfter(maxOffset(processed, ignored ? Option.none() : stored))
  })
  return {
    resolveStart,
    resolveActivation,
    start: () => state.start,
    resumed: () => state.resumed,
    subscribeAt: () => {
      if (state.lastDelivered !== undefined) state.subscribedAt = StartPosition.Offset({ offset: state.lastDelivered + 1n })
      return state.subscribedAt
    },
    deliver: (chunk) => {
      // Anything below the requested offset was processed before (or was not asked for): dropped.
      const floor = state.subscribedAt._tag === "Offset" ? state.subscribedAt.offset : -1n
      const kept = Chunk.unsafeHead(chunk).offset >= floor ? chunk : Chunk.filter(chunk, (m) => m.offset >= floor)
      if (Chunk.isNonEmpty(kept)) state.lastDelivered = Chunk.lastNonEmpty(kept).offset
      return kept
    },
    lastDelivered: () => state.lastDelivered
  }
}

/**
 * A single active consumer's turn. The broker says when it starts (activation: from after the
 * processed or stored offset) and when it ends (step-down, when a super stream's consumers
 * rebalance: the last processed offset is stored and read back before the broker is answered, so
 * the next consumer starts right after it). Messages are processed under the turn's lock, and only
 * while it is active, from its start on, each offset once: what was delivered but not processed
 * when it stepped down is dropped (the next consumer gets it). That is all it takes: between the
 * delivery buffer and processing there is only the chunk in hand (the pipeline reads nothing
 * ahead), and the real buffer drops what comes between a step-down and the next activation.
 */
interface Turn {
  readonly activate: Effect.Effect<StartPosition>
  readonly stepDown: Effect.Effect<void>
  /** The subscription ended (a lost connection): the broker dropped it from the group; no store. */
  readonly end: () => void
  /** The messages of a selection this turn may process (none while inactive). */
  readonly admit: (messages: Chunk.Chunk<StreamMessage>) => Chunk.Chunk<StreamMessage>
  /** Runs processing under the turn's lock: a step-down waits for it, and then stores. */
  readonly locked: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
  /** Stores are made only during a turn: out of turn the partition's offset is another consumer's. */
  readonly isActive: () => boolean
}

/**
 * A single active consumer's turn. Invariants: messages are processed only while active (`admit`
 * gives none otherwise, and from a new turn only those after its start and after what this
 * consumer processed); a step-down waits for the processing under way (`locked`), stores, and only
 * then is out of turn.
 */
const makeTurn = (tracker: OffsetTracker, position: Pick<Position, "resolveActivation">): Effect.Effect<Turn> =>
  Effect.map(Effect.makeSemaphore(1), (lock) => {
    const state = { active: false, floor: -1n }
    return {
      // If where to start cannot be found (the offset store failing), the consumer fails rather
      // than starting somewhere else (a replay from the first message, say).
      activate: lock.withPermits(1)(Effect.orDie(Effect.tap(position.resolveActivation, (start) => {
        state.active = true
        state.floor = start._tag === "Offset" ? start.offset : -1n
      }))),
      // Stored while still active (nothing is processed meanwhile: the lock), then out of turn.
      stepDown: lock.withPermits(1)(Effect.ensuring(tracker.finalStore, Effect.sync(() => void (state.active = false)))),
      end: () => void (state.active = false),
      admit: (messages) => {
        if (!state.active || Chunk.isEmpty(messages)) return Chunk.empty()
        const last = Option.getOrElse(tracker.progress().last, () => -1n)
        const floor = state.floor > last ? state.floor : last + 1n
        return Chunk.filter(messages, (m) => m.offset >= floor)
      },
      locked: (effect) => lock.withPermits(1)(effect),
      isActive: () => state.active
    }
  })

/** One subscription's messages, from where the consumer is. */
const subscription = (
  broker: StreamBrokerShape,
  options: ConsumeOptions,
  tracking: TrackingStrategy,
  tracker: OffsetTracker,
  position: Position,
  single: { readonly turn: Turn; readonly superStream: string | undefined } | undefined,
  subscribed: () => void
): Stream.Stream<StreamMessage, ConsumeError> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const deliveries = yield* broker.subscribe({
      stream: options.stream,
      start: position.subscribeAt(),
      bufferSize: options.bufferSize,
      filter: options.filter && { values: options.filter.values, matchUnfiltered: options.filter.matchUnfiltered === true },
      singleActive: single && {
        name: options.consumerName,
        onActivate: single.turn.activate,
        onStepDown: single.turn.stepDown,
        superStream: single.superStream
      }
    })
    subscribed()
    // Registered after subscribing, so it runs before the consumer is closed: however the
    // subscription ends, the last processed offset is stored (and confirmed) before stepping down.
    // Not after a lost connection: the next subscription resumes from memory.
    yield* Effect.addFinalizer((exit) =>
      Exit.isFailure(exit) && Option.exists(Cause.failureOption(exit.cause), isTransient)
        ? Effect.sync(() => single?.turn.end())
        : tracker.finalStore
    )
    if (tracking._tag === "Auto") {
      // A failed store (the broker away for a moment) is said, and the timer goes on.
      yield* tracker.storeIfAhead.pipe(
        Effect.catchAll((error) => Effect.logWarning(`${error.message}; storing again at the next interval`)),
        Effect.repeat(Schedule.spaced(tracking.interval)),
        Effect.forkScoped
      )
    }
    return Stream.mapChunks(deliveries, position.deliver)
  }))

/**
 * The retry policy per outage: a subscription made since the last failure ended that outage, so
 * the next one starts the policy over. (Counting messages would not do: a consumer at the end of
 * a quiet stream, or a single active one waiting for its turn, receives none between outages.)
 */
const perOutage = <E>(policy: Schedule.Schedule<unknown, E>) => {
  const subscriptions = { made: 0, seen: 0 }
  return {
    ended: () => void subscriptions.made++,
    policy: Schedule.resetWhen(policy, () => {
      const ended = subscriptions.made > subscriptions.seen
      subscriptions.seen = subscriptions.made
      return ended
    })
  }
}

/** The broker's retry policy, for transient failures only, saying where the consumer resumes. */
const resubscribePolicy = (
  policy: Schedule.Schedule<unknown, StreamError>,
  position: Position
): Schedule.Schedule<unknown, ConsumeError> =>
  policy.pipe(
    Schedule.mapInput((error: ConsumeError) => error as StreamError),
    Schedule.whileInput((error: ConsumeError) => isTransient(error)),
    Schedule.tapInput((error: ConsumeError) =>
      isTransient(error)
        ? Effect.logWarning(`${error.message}; resuming after offset ${position.lastDelivered() ?? "none"}`)
        : Effect.void
    )
  )

/** Which stop condition, if any, a message meets; `index` is its position in the consumer's run. */
type StopTest = (message: StreamMessage, index: number) => StopReason | undefined

const stopTest = (stop: StopConditions = {}): StopTest => {
  const isMarker = stop.marker
  return (message, index) =>
    isMarker && isMarker(message)
      ? "marker"
      : stop.count !== undefined && index + 1 >= stop.count
      ? "count"
      : undefined
}

/** What the consumer lets through, and where it stops. */
interface Admission {
  readonly stream: string
  readonly test: StopTest
  /** `untilEnd`: the offset of the stream's last message when consuming started (undefined: no end). */
  readonly end?: bigint | undefined
  /** Default "fail". */
  readonly onDecodeError?: "fail" | "skip" | undefined
  /** Messages this returns false for are dropped (filtering); undefined keeps every one. */
  readonly keep?: ((message: StreamMessage) => boolean) | undefined
  /** Decodes a kept message's body (a `schema`): the message with its value, or why it does not decode. */
  readonly decode?: ((message: StreamMessage) => StreamMessage | string) | undefined
}

/**
 * Chunks of messages, each cut after the first message that meets a stop condition, which ends
 * the stream; with an idle timeout, a wait that long for the next chunk ends it too ("idle").
 * Undecodable messages are skipped or end the stream (`failure`, after the messages before them);
 * filtered-out ones are dropped. The end holds for every offset, dropped or not.
 */
const selectUntilStop = <E, R>(
  messages: Stream.Stream<StreamMessage, E, R>,
  admission: Admission,
  idleTimeout?: Duration.DurationInput | undefined
): Stream.Stream<Selection, E, R> => {
  const selections = messages.pipe(
    Stream.chunks,
    Stream.mapAccum(0, (emitted, chunk) => select(admission, emitted, chunk)),
    Stream.takeUntil((selection) => selection.stop !== undefined || selection.failure !== undefined)
  )
  return idleTimeout === undefined ? selections : Stream.timeoutTo(selections, idleTimeout, Stream.make(emptySelection("idle")))
}

const emptySelection = (stop: StopReason): Selection => ({
  messages: Chunk.empty(),
  firstIndex: 0,
  stop,
  through: undefined,
  skipped: undefined,
  failure: undefined
})

/** One chunk through the admission: what is emitted, and whether it stops. Copies only when it drops something. */
const select = (
  admission: Admission,
  emitted: number,
  chunk: Chunk.Chunk<StreamMessage>
): readonly [number, Selection] => {
  const { end, keep, test } = admission
  const all = Chunk.toReadonlyArray(chunk)
  const state = {
    kept: undefined as Array<StreamMessage> | undefined,
    skipped: undefined as Array<UndecodableMessage> | undefined,
    through: undefined as bigint | undefined
  }
  const cut = (considered: number, stop: StopReason | undefined, failure?: MessageDecodeError): readonly [number, Selection] => {
    const messages = state.kept !== undefined
      ? Chunk.unsafeFromArray(state.kept)
      : considered === all.length
      ? chunk
      : Chunk.take(chunk, considered)
    const selection = { messages, firstIndex: emitted, stop, through: state.through, skipped: state.skipped, failure }
    return [emitted + Chunk.size(messages), selection]
  }
  for (let i = 0; i < all.length; i++) {
    let message = all[i]!
    let undecodable = message instanceof UndecodableMessage ? message : undefined
    const dropped = undecodable === undefined && keep !== undefined && !keep(message)
    // A kept message decodes with the schema, or is undecodable too.
    if (undecodable === undefined && !dropped && admission.decode !== undefined) {
      const decoded = admission.decode(message)
      if (typeof decoded === "string") undecodable = new UndecodableMessage(message.offset, decoded, message.body)
      else {
        message = decoded
        state.kept ??= all.slice(0, i)
      }
    }
    if (undecodable !== undefined && admission.onDecodeError !== "skip") {
      return cut(i, undefined, new MessageDecodeError({ stream: admission.stream, offset: message.offset, reason: undecodable.reason }))
    }
    state.through = message.offset
    const atEnd = end !== undefined && message.offset >= end
    if (undecodable !== undefined || dropped) {
      state.kept ??= all.slice(0, i)
      if (undecodable !== undefined) (state.skipped ??= []).push(undecodable)
      if (atEnd) return cut(i + 1, "end")
      continue
    }
    state.kept?.push(message)
    const stop = test(message, emitted + (state.kept?.length ?? i + 1) - 1) ?? (atEnd ? "end" : undefined)
    if (stop !== undefined) return cut(i + 1, stop)
  }
  return cut(all.length, undefined)
}

/** `receive`'s processing of a selection: each message to `onMessage`, then the store that fell due. */
const processSelection = <E, R>(
  tracker: OffsetTracker,
  { firstIndex, messages, through }: Selection,
  onMessage: ((message: StreamMessage, index: number) => Effect.Effect<void, E, R>) | undefined
): Effect.Effect<void, E | OffsetStoreError, R> => {
  const passed = Effect.suspend(() => {
    tracker.passed(through, firstIndex + Chunk.size(messages))
    return tracker.storeDue
  })
  if (onMessage === undefined) {
    return Effect.suspend(() => {
      // An index over the array, not the Chunk's iterator (an object per message).
      const all = Chunk.toReadonlyArray(messages)
      for (let i = 0; i < all.length; i++) tracker.processed(all[i]!.offset, firstIndex + i + 1)
      return passed
    })
  }
  // In order, one at a time. A handler that returns `Effect.void` (nothing to do for this message:
  // a count, a filter) is not run: the loop goes on at once, without an effect per message.
  const all = Chunk.toReadonlyArray(messages)
  const from = (start: number): Effect.Effect<void, E | OffsetStoreError, R> =>
    Effect.suspend(() => {
      for (let i = start; i < all.length; i++) {
        const message = all[i]!
        const handled = onMessage(message, firstIndex + i)
        if (handled !== Effect.void) {
          return Effect.flatMap(handled, () => {
            tracker.processed(message.offset, firstIndex + i + 1)
            return from(i + 1)
          })
        }
        tracker.processed(message.offset, firstIndex + i + 1)
      }
      return passed
    })
  return from(0)
}

/**
 * When anything last happened, for an idle stop over several streams: `active` marks an effect as
 * activity while it runs and when it ends; `idle` completes once nothing was active for `timeout`
 * (by the Clock: a TestClock moves it).
 */
const makeActivity = Effect.map(Clock.currentTimeMillis, (started) => {
  const state = { busy: 0, last: started }
  return {
    active: <A, E, R>(effect: Effect.Effect<A, E, R>) =>
      Effect.zipRight(
        Effect.sync(() => void state.busy++),
        Effect.ensuring(
          effect,
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.sync(() => {
              state.busy--
              state.last = now
            }))
        )
      ),
    idle: (timeout: Duration.DurationInput): Effect.Effect<void> =>
      Effect.gen(function*() {
        const quiet = Duration.toMillis(timeout)
        for (;;) {
          const quietFor = state.busy > 0 ? 0 : (yield* Clock.currentTimeMillis) - state.last
          if (quietFor >= quiet) return
          yield* Effect.sleep(Duration.millis(quiet - quietFor))
        }
      })
  }
})

/**
 * The processing of a super stream's partitions: each selection by its partition's consumer (in
 * its turn), messages handed on with their partition and an index over every partition, cut at the
 * count; the stop reason of each partition, and of the whole.
 */
const makePartitionRun = <E, R>(
  partitions: ReadonlyArray<string>,
  consumers: ReadonlyArray<Consumer>,
  options: Pick<SuperStreamReceiveOptions<E, R>, "onMessage" | "stop">
) =>
  Effect.gen(function*() {
    const count = options.stop?.count
    const countReached = yield* Deferred.make<void>()
    const state = {
      processed: 0,
      /** Messages taken for processing: the count is never passed, whatever the partitions do at once. */
      reserved: 0,
      perPartition: partitions.map(() => 0),
      /** The stop each partition reached, and whether this consumer processed its message. */
      reached: partitions.map((): StopReason | undefined => undefined),
    }
    const activity = yield* makeActivity
    const onMessage = options.onMessage
    const handlers = partitions.map((partition, i) => (message: StreamMessage) => {
      const counted = Effect.sync(() => {
        state.processed++
        state.perPartition[i]!++
      })
      return onMessage === undefined
        ? counted
        : Effect.suspend(() => Effect.zipRight(onMessage({ ...message, partition }, state.processed), counted))
    })
    const reserve = (n: number) => {
      const room = count === undefined ? n : Math.max(0, Math.min(n, count - state.reserved))
      state.reserved += room
      return room
    }
    // What the turn admits, cut at the count.
    const processAdmitted = (i: number, selection: Selection, admitted: Chunk.Chunk<StreamMessage>) => {
      const room = reserve(Chunk.size(admitted))
      // Cut at the count: what comes after the cut is not passed.
      const cut = room < Chunk.size(admitted)
      const messages = cut ? Chunk.take(admitted, room) : admitted
      const through = cut ? undefined : selection.through
      const processed = processSelection(consumers[i]!.tracker, { ...selection, messages, through }, handlers[i])
      const spanned = Chunk.isEmpty(messages) ? processed : withMessagingSpan(processed, consumers[i]!.span, Chunk.size(messages))
      return Effect.tap(spanned, () => {
        if (selection.stop !== undefined) state.reached[i] = selection.stop
        return count !== undefined && state.processed >= count ? Deferred.succeed(countReached, undefined) : Effect.void
      })
    }
    return {
      processed: () => state.processed,
      /** Messages processed of a partition in this run. */
      processedOf: (i: number) => state.perPartition[i]!,
      countReached: Deferred.await(countReached),
      /** Completes once no partition delivered or processed anything for `timeout`. */
      idle: activity.idle,
      process: (i: number, selection: Selection) => {
        const turn = consumers[i]!.turn
        return activity.active(
          turn === undefined
            ? processAdmitted(i, selection, selection.messages)
            : turn.locked(Effect.suspend(() => {
              const { messages, through } = admitted(turn, selection)
              return processAdmitted(i, { ...selection, through }, messages)
            }))
        )
      },
      partitionStop: (i: number) => state.reached[i],
      /** Every partition reached its stop. */
      stoppedBy: (): StopReason => state.reached.includes("end") ? "end" : "marker"
    }
  })

/**
 * What the consumers of a super stream share: the checked options, the partitions, and each
 * partition's consumer options (the marker and the end hold per partition; the count, the idle
 * timeout and the signal are the caller's to apply to the whole).
 */
const superStreamConsumers = (options: Omit<ConsumeOptions, "stream"> & { readonly superStream: string }) =>
  Effect.gen(function*() {
    const broker = yield* StreamBroker
    yield* validateSuperStreamConsumeOptions(options)
    const stop = options.stop ?? {}
    const partitions = yield* broker.partitions(options.superStream)
    const partitionOptions = (stream: string): ConsumeOptions => ({
      ...options,
      stream,
      stop: { marker: stop.marker, untilEnd: stop.untilEnd }
    })
    return { partitions, partitionOptions, stop }
  })

/** What a single active consumer's turn admits of a selection: the rest of the chunk is not its to pass. */
const admitted = (turn: Turn, selection: Selection): Selection => {
  const messages = turn.admit(selection.messages)
  return Chunk.size(messages) === Chunk.size(selection.messages) ? selection : { ...selection, messages, through: undefined }
}

/** `processSelection` by a consumer: a single active one processes under its turn, what its turn admits. */
const processInTurn = <E, R>(
  consumer: Consumer,
  selection: Selection,
  onMessage: ((message: StreamMessage, index: number) => Effect.Effect<void, E, R>) | undefined
): Effect.Effect<void, E | OffsetStoreError, R> => {
  const turn = consumer.turn
  const processed = turn === undefined
    ? processSelection(consumer.tracker, selection, onMessage)
    : turn.locked(Effect.suspend(() => processSelection(consumer.tracker, admitted(turn, selection), onMessage)))
  return Chunk.isEmpty(selection.messages) ? processed : withMessagingSpan(processed, consumer.span, Chunk.size(selection.messages))
}

/** A message of `consume`: its commit marks it processed in the consumer's tracker. */
class Consumed implements ConsumedMessage {
  readonly #commit: (offset: bigint, count: number) => Effect.Effect<void, OffsetStoreError>
  constructor(
    readonly message: StreamMessage,
    readonly index: number,
    commit: (offset: bigint, count: number) => Effect.Effect<void, OffsetStoreError>
  ) {
    this.#commit = commit
  }
  get offset() {
    return this.message.offset
  }
  get body() {
    return this.message.body
  }
  get properties() {
    return this.message.properties
  }
  get applicationProperties() {
    return this.message.applicationProperties
  }
  get messageAnnotations() {
    return this.message.messageAnnotations
  }
  get header() {
    return this.message.header
  }
  get amqpValue() {
    return this.message.amqpValue
  }
  get amqpSequence() {
    return this.message.amqpSequence
  }
  /** With a `schema`: what the body decoded to. */
  get value(): unknown {
    return (this.message as Partial<DecodedMessage<unknown>>).value
  }
  get commit(): Effect.Effect<void, OffsetStoreError> {
    return this.#commit(this.message.offset, this.index + 1)
  }
}

/** What the offset tracker knows. */
interface TrackerProgress {
  /** Messages processed (committed) in this run. */
  readonly messages: number
  readonly first: Option.Option<bigint>
  readonly last: Option.Option<bigint>
  /** The highest offset stored, by this run or before it. */
  readonly lastStored: Option.Option<bigint>
  readonly storeConfirmed: boolean
  readonly storeProblem: Option.Option<string>
}

/**
 * The consumer's offsets: what was processed, when a store falls due, what was stored. Stores only
 * move forward; the final store is made once per last processed offset, read back (the broker does
 * not acknowledge a store) and bounded, and its outcome is kept for the summary.
 */
interface OffsetTracker {
  readonly progress: () => TrackerProgress
  /** The stored offset (stores never go below it, even when it is ignored for starting). */
  readonly readStored: Effect.Effect<Option.Option<bigint>, OffsetStoreError>
  /**
   * Marks `offset` processed as the `count`-th message of the run (an older or repeated one is
   * ignored). Plain and synchronous, for every message: a store that falls due waits for `storeDue`.
   */
  readonly processed: (offset: bigint, count: number) => void
  /**
   * Once `count` messages are processed, the consumer is past `offset` (what came after them was
   * dropped: filtered out, skipped as undecodable): stores may go that far.
   */
  readonly passed: (offset: bigint | undefined, count: number) => void
  /** Makes the store that fell due, at the offset of the message that made it due. */
  readonly storeDue: Effect.Effect<void, OffsetStoreError>
  /** Stores the last processed offset if it is ahead of the stored one. */
  readonly storeIfAhead: Effect.Effect<void, OffsetStoreError>
  /** The last processed offset, stored and read back within the bound; never fails. */
  readonly finalStore: Effect.Effect<void>
}

/** What a tracker is made from. */
interface OffsetTrackerOptions {
  readonly store: (offset: bigint) => Effect.Effect<void, OffsetStoreError>
  readonly query: Effect.Effect<Option.Option<bigint>, OffsetStoreError>
  /** A store falls due after this many messages (Infinity: never). */
  readonly every: number
  readonly confirmTimeout: Duration.Duration
  /** False while stores must not be made (a single active consumer out of its turn). Default always. */
  readonly mayStore?: (() => boolean) | undefined
}

/**
 * The offset tracker, from three pieces: where the consumer is (`makeProcessedOffsets`), the
 * stores that only move forward (`makeForwardStores`), and the final store, made once per position,
 * bounded, its outcome kept for the summary (`makeFinalStore`).
 */
const makeOffsetTracker = (options: OffsetTrackerOptions): Effect.Effect<OffsetTracker> =>
  Effect.map(Effect.makeSemaphore(1), (lock) => {
    const processed = makeProcessedOffsets(options.every)
    const stores = makeForwardStores(options, lock)
    const storeIfAhead = Effect.suspend(() => {
      const at = processed.position()
      return at === undefined ? Effect.void : stores.storeAt(at)
    })
    const final = makeFinalStore(options, processed, stores, storeIfAhead)
    return {
      progress: () => ({
        messages: processed.state.messages,
        first: Option.fromNullable(processed.state.first),
        last: Option.fromNullable(processed.state.last),
        lastStored: stores.state.lastStored,
        storeConfirmed: final.outcome.confirmed,
        storeProblem: final.outcome.problem
      }),
      readStored: stores.readStored,
      processed: processed.processed,
      passed: processed.passed,
      // Per chunk, not per message: a delivered chunk can hold thousands of messages; one store.
      storeDue: Effect.suspend(() => {
        const offset = processed.takeDue()
        return offset === undefined ? Effect.void : stores.storeAt(offset)
      }),
      storeIfAhead,
      finalStore: final.finalStore
    }
  })

/**
 * Where the consumer is. Invariants: `messages` and `last` only grow (an older or repeated count is
 * ignored); the position is the last processed offset, or past it once the messages after it were
 * dropped (`through`), never before it; a store falls due (`due`) every `every` messages, at the
 * offset of the message that made it due. Plain and synchronous: it runs for every message.
 */
const makeProcessedOffsets = (every: number) => {
  const state = {
    messages: 0,
    first: undefined as bigint | undefined,
    last: undefined as bigint | undefined,
    sinceStore: 0,
    due: undefined as bigint | undefined,
    /** How far the consumer is past what it processed (dropped messages), and passes waiting for a count. */
    through: undefined as bigint | undefined,
    passes: [] as Array<{ readonly offset: bigint; readonly count: number }>
  }
  const pass = (offset: bigint) => {
    if (state.through === undefined || offset > state.through) state.through = offset
  }
  return {
    state,
    /** Its last processed offset, or past it when the messages after it were dropped. */
    position: (): bigint | undefined =>
      state.through !== undefined && (state.last === undefined || state.through > state.last) ? state.through : state.last,
    processed: (offset: bigint, count: number) => {
      if (count <= state.messages) return
      state.sinceStore += count - state.messages
      state.messages = count
      state.first ??= offset
      state.last = offset
      while (state.passes.length > 0 && state.passes[0]!.count <= count) pass(state.passes.shift()!.offset)
      if (state.sinceStore >= every) {
        state.due = offset
        state.sinceStore = 0
      }
    },
    passed: (offset: bigint | undefined, count: number) => {
      if (offset === undefined) return
      if (count <= state.messages) pass(offset)
      else state.passes.push({ offset, count })
    },
    /** The store that fell due, if any, now taken. */
    takeDue: (): bigint | undefined => {
      const offset = state.due
      state.due = undefined
      return offset
    }
  }
}

/**
 * Stores that only move forward. Invariants: `lastStored` is the highest offset stored or read
 * (by this run or before it); a store at or below it, or out of turn (`mayStore` false), is not
 * made; stores are made one at a time (`lock`).
 */
const makeForwardStores = (options: OffsetTrackerOptions, lock: Effect.Semaphore) => {
  const state = { lastStored: Option.none<bigint>(), storedByThisRun: false }
  return {
    state,
    storeAt: (offset: bigint): Effect.Effect<void, OffsetStoreError> =>
      lock.withPermits(1)(Effect.suspend(() =>
        (Option.isSome(state.lastStored) && offset <= state.lastStored.value) || options.mayStore?.() === false
          ? Effect.void
          : Effect.tap(options.store(offset), () => {
            state.lastStored = Option.some(offset)
            state.storedByThisRun = true
          })
      )),
    readStored: Effect.tap(options.query, (stored) => void (state.lastStored = maxOffset(state.lastStored, stored)))
  }
}

/**
 * The final store. Invariants: bounded by `confirmTimeout` whatever the broker does, even inside a
 * finalizer (hence interruptible): a stop never waits for a broker that is away, and the outcome
 * says what happened instead; only what this run stored is read back (a stop with nothing new to
 * store, during an outage say, does not wait for the broker); out of turn (a single active
 * consumer whose connection was lost), nothing is stored, and what was processed is said not stored
 * unless the store, read then, is at or past it (the member active now stored past it); made once per position (a second stop at the same position waits for the first).
 */
const makeFinalStore = (
  options: OffsetTrackerOptions,
  processed: ReturnType<typeof makeProcessedOffsets>,
  stores: ReturnType<typeof makeForwardStores>,
  storeIfAhead: Effect.Effect<void, OffsetStoreError>
) => {
  const outcome = { confirmed: false, problem: Option.none<string>() }
  const notStored = () => {
    const { last } = processed.state
    const { lastStored } = stores.state
    return options.mayStore?.() === false && last !== undefined && !(Option.isSome(lastStored) && lastStored.value >= last)
  }
  const outOfTurn = Effect.suspend(() =>
    Effect.fail(`offset ${processed.state.last} not stored: this consumer is no longer the active one (its connection was lost)`)
  )
  const once = Effect.zipRight(
    storeIfAhead,
    Effect.suspend(() =>
      notStored()
        // Out of turn, what this run processed is covered only if the active member stored past it
        // (it then resumed before it, and its store says so): read the store once before saying no.
        ? Effect.zipRight(stores.readStored, Effect.suspend(() => notStored() ? outOfTurn : Effect.void))
        : stores.state.storedByThisRun
        ? readBack(options.query, stores.state.lastStored)
        : Effect.void
    )
  ).pipe(
    Effect.interruptible,
    Effect.timeoutFail({
      duration: options.confirmTimeout,
      onTimeout: () => `not confirmed within ${Duration.format(options.confirmTimeout)}`
    }),
    Effect.match({
      onFailure: (problem) => {
        outcome.confirmed = false
        outcome.problem = Option.some(typeof problem === "string" ? problem : problem.message)
      },
      onSuccess: () => {
        outcome.confirmed = true
        outcome.problem = Option.none()
      }
    })
  )
  let madeAt: { readonly position: bigint | undefined; readonly done: Deferred.Deferred<void> } | undefined
  return {
    outcome,
    finalStore: Effect.suspend(() => {
      // A store for this position made or under way: wait for it (its outcome is then the one kept).
      const position = processed.position()
      if (madeAt !== undefined && madeAt.position === position) return Deferred.await(madeAt.done)
      const done = Deferred.unsafeMake<void>(FiberId.none)
      madeAt = { position, done }
      return Effect.ensuring(once, Deferred.succeed(done, undefined))
    })
  }
}

/** The broker does not acknowledge a store: read it back until it shows (at or past `expected`). */
const readBack = (
  query: Effect.Effect<Option.Option<bigint>, OffsetStoreError>,
  expected: Option.Option<bigint>
): Effect.Effect<void, OffsetStoreError | string> =>
  Option.isNone(expected)
    ? Effect.void
    : query.pipe(
      Effect.flatMap((seen) =>
        Option.isSome(seen) && seen.value >= expected.value
          ? Effect.void
          : Effect.fail(`the stored offset reads ${Option.getOrElse(Option.map(seen, String), () => "none")}`)
      ),
      Effect.retry({ schedule: Schedule.spaced("20 millis"), while: (e) => typeof e === "string" })
    )

const maxOffset = (a: Option.Option<bigint>, b: Option.Option<bigint>): Option.Option<bigint> =>
  Option.isNone(a) ? b : Option.isNone(b) ? a : Option.some(a.value > b.value ? a.value : b.value)

/** True when no message can lie between `start` and `end` (the last message offset, if any). */
const nothingBefore = (end: Option.Option<bigint>, start: StartPosition): boolean =>
  Option.match(end, {
    onNone: () => true,
    onSome: (last) => start._tag === "Next" || (start._tag === "Offset" && start.offset > last)
  })

const startLabel = StartPosition.$match({
  First: () => "first",
  Last: () => "last",
  Next: () => "next",
  Offset: ({ offset }) => `offset ${offset}`,
  Timestamp: ({ date }) => `timestamp ${date.toISOString()}`
})

// ---------------------------------------------------------------------------------------------
// Recovery: the connection supervisor, `recovering`, what is transient
// ---------------------------------------------------------------------------------------------
/** The connection supervisor of a StreamBroker layer: one client at a time, replaced when lost. */
interface ConnectionSupervisor<C> {
  /** The client in use; when there is none or it was lost, a new one, connected under the retry policy. */
  readonly client: Effect.Effect<C, ConnectionError>
  /** Says a connection of `client` was lost: reconnecting starts at once (ignored for a replaced client). */
  readonly lost: (client: C, reason: string) => void
  /** Says the client in use, if any, was lost. */
  readonly loseCurrent: (reason: string) => void
  /** False once `client` was lost or replaced: closing its consumers is pointless then. */
  readonly isCurrent: (client: C) => boolean
  /** The client in use, unless it was lost. */
  readonly current: () => C | undefined
  /** True once a connection was made: a failure before that is more likely a mistake than an outage. */
  readonly everConnected: () => boolean
  readonly state: SubscriptionRef.SubscriptionRef<ConnectionState>
}

interface SupervisorOptions<C> {
  readonly where: string
  readonly policy: Schedule.Schedule<unknown, StreamError>
  readonly connect: (attempt: number) => Effect.Effect<{ readonly client: C; readonly endpoint: string }, ConnectionError>
  /** Closes a client: `reason` says why it was replaced (undefined when the scope closes). */
  readonly close: (client: C, reason: string | undefined) => Effect.Effect<void>
}

/**
 * Owns the connection: connects under the retry policy (rotating through the endpoints, one per
 * attempt), reconnects as soon as a connection is lost, publishes each transition in `state` and
 * logs it once, and closes the client when the scope closes. Used by the real and the memory
 * broker alike.
 */
const superviseConnection = <C>(options: SupervisorOptions<C>): Effect.Effect<ConnectionSupervisor<C>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    const state = yield* SubscriptionRef.make<ConnectionState>(
      ConnectionState.Connecting({ attempt: 1, since: new Date(yield* Clock.currentTimeMillis), lastError: undefined })
    )
    const connection: HeldConnection<C> = {
      current: undefined,
      lostBecause: undefined,
      everConnected: false,
      gaveUp: 0,
      lastFailure: undefined
    }
    const client = currentOrNewClient(options, state, connection, yield* Effect.makeSemaphore(1), scope)

    const lost = (lostClient: C, reason: string) => {
      if (lostClient !== connection.current || connection.lostBecause !== undefined) return
      connection.lostBecause = reason
      const reconnect = Effect.zipRight(
        Effect.zipRight(Metric.set(connectionUp, 0), Effect.logWarning(`the connection to ${options.where} was lost (${reason}); reconnecting`)),
        Effect.ignore(client)
      ).pipe(Effect.withSpan("StreamOffsets.reconnect"))
      runFork(Effect.forkIn(reconnect, scope))
    }

    // Closing for good: what the close itself ends is not a lost connection to recover from.
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        connection.lostBecause ??= "the layer closed"
        return connection.current === undefined ? Effect.void : options.close(connection.current, undefined)
      })
    )
    return {
      client,
      lost,
      loseCurrent: (reason) => connection.current !== undefined && lost(connection.current, reason),
      isCurrent: (c) => c === connection.current && connection.lostBecause === undefined,
      current: () => (connection.lostBecause === undefined ? connection.current : undefined),
      everConnected: () => connection.everConnected,
      state
    } satisfies ConnectionSupervisor<C>
  })

/**
 * The client a supervisor holds, and why it must be replaced (undefined while it is fine); the
 * outages that gave up, and the last one's error.
 */
interface HeldConnection<C> {
  current: C | undefined
  lostBecause: string | undefined
  everConnected: boolean
  gaveUp: number
  lastFailure: ConnectionError | undefined
}

/**
 * `ConnectionSupervisor.client`: the client in use, or (one caller at a time) the old one closed
 * and a new one connected under the policy. One outage is waited out once: a caller that waited
 * while an outage gave up gets its error, not a new outage under a fresh policy (three callers in
 * a row made a 10 s policy last 30 s); a caller that comes after starts a new one.
 */
const currentOrNewClient = <C>(
  options: SupervisorOptions<C>,
  state: SubscriptionRef.SubscriptionRef<ConnectionState>,
  connection: HeldConnection<C>,
  lock: Effect.Semaphore,
  scope: Scope.Scope
): Effect.Effect<C, ConnectionError> =>
  Effect.suspend(() => {
    const gaveUpBefore = connection.gaveUp
    return lock.withPermits(1)(Effect.suspend(() => {
      if (connection.current !== undefined && connection.lostBecause === undefined) return Effect.succeed(connection.current)
      if (connection.gaveUp > gaveUpBefore && connection.lastFailure !== undefined) return Effect.fail(connection.lastFailure)
      const old = connection.current
      const reason = connection.lostBecause
      connection.current = undefined
      return Effect.zipRight(
        old === undefined ? Effect.void : Effect.forkIn(options.close(old, reason), scope),
        connectUnderPolicy(options, state, connection.everConnected).pipe(
          Effect.tapBoth({
            onSuccess: (connected) =>
              Effect.sync(() => {
                connection.current = connected
                connection.lostBecause = undefined
                connection.everConnected = true
              }),
            // Only an outage the policy gave up on is shared; a failure that was not retried (say, a
            // socket destroyed while connecting, taken for permanent) lets the next caller try.
            onFailure: (error) =>
              Effect.sync(() => {
                if (!(error.cause instanceof ConnectionError && error.cause.retryable === true)) return
                connection.gaveUp++
                connection.lastFailure = error
              })
          })
        )
      )
    }))
  })

/**
 * One outage: attempts under the policy, each published in `state`; the first failure that will
 * be retried is logged once, the success (after a first connection, or after several attempts)
 * once; a policy that gives up says so in the error, which is then not retryable any more.
 */
const connectUnderPolicy = <C>(
  options: SupervisorOptions<C>,
  state: SubscriptionRef.SubscriptionRef<ConnectionState>,
  everConnected: boolean
): Effect.Effect<C, ConnectionError> =>
  Effect.gen(function*() {
    const now = Effect.map(Clock.currentTimeMillis, (ms) => new Date(ms))
    const since = yield* now
    const outage = { attempts: 0, lastError: undefined as ConnectionError | undefined, warned: false }
    const attempt = Effect.suspend(() => {
      outage.attempts++
      const current = ConnectionState.Connecting({ attempt: outage.attempts, since, lastError: outage.lastError?.message })
      return Effect.zipRight(SubscriptionRef.set(state, current), options.connect(outage.attempts))
    }).pipe(Effect.tapError((error) => Effect.sync(() => void (outage.lastError = error))))
    // Said once per outage, and only when the policy does try again (it is asked even for an
    // error that `while` then refuses to retry).
    const policy = Schedule.onDecision(options.policy, (_, decision) =>
      Effect.suspend(() => {
        const error = outage.lastError
        if (decision._tag !== "Continue" || outage.warned || error?.retryable !== true) return Effect.void
        outage.warned = true
        return Effect.logWarning(`${error.message}; retrying`)
      }))
    return yield* attempt.pipe(
      Effect.retry({ schedule: policy, while: (error) => error.retryable === true }),
      Effect.tapBoth({
        onFailure: (error) =>
          Effect.zipRight(
            Metric.set(connectionUp, 0),
            Effect.flatMap(now, (at) => SubscriptionRef.set(state, ConnectionState.Disconnected({ since: at, reason: error.message })))
          ),
        onSuccess: ({ endpoint }) =>
          Effect.gen(function*() {
            const at = yield* now
            yield* SubscriptionRef.set(state, ConnectionState.Connected({ endpoint, since: at }))
            yield* Metric.set(connectionUp, 1)
            if (everConnected) {
              yield* Metric.increment(reconnects)
              yield* Metric.update(disconnectedDuration, (at.getTime() - since.getTime()) / 1000)
            }
            if (everConnected || outage.attempts > 1) {
              const took = Duration.format(Duration.millis(at.getTime() - since.getTime()))
              yield* Effect.logInfo(`connected to ${endpoint} after ${outage.attempts} attempt(s) in ${took}`)
            }
          })
        }),
      Effect.mapError((error) =>
        error.retryable
          ? new ConnectionError({ message: `${error.message} (gave up after ${outage.attempts} attempts)`, cause: error, retryable: false })
          : error
      ),
      Effect.map(({ client }) => client)
    )
  })

/** What a broker shape tells about its supervised connection. */
const supervisedFields = <C>(supervisor: ConnectionSupervisor<C>, policy: Schedule.Schedule<unknown, StreamError>) => ({
  retry: policy,
  connectionState: SubscriptionRef.get(supervisor.state),
  connectionChanges: supervisor.state.changes
})

/**
 * Worth trying again: a lost connection, a broker that refused or did not answer, a stream between
 * leaders (code 6, or not on any node while a cluster elects one). Not: credentials, vhost, a
 * missing stream, a policy that already gave up.
 */
const isTransient = (error: unknown): boolean =>
  error instanceof ConnectionLost
    ? true
    : error instanceof ConnectionError
    ? error.retryable === true
    : error instanceof BrokerError
    ? error.transient !== undefined
    : false

/**
 * The broker's answer to a new publisher during a disk alarm (a connection that publishes is not
 * read from until it clears): wait it out.
 */
const PUBLISHERS_REFUSED = "the broker is refusing publishers (a resource alarm: disk or memory; code 17)"

/** A stream whose cluster is electing a leader (the client's words): wait, the connection is fine. */
const NO_LEADER = /not found on any node/

/** What a refusal that is retried waits for, to be said once: an alarm to clear, a leader. */
const waitingFor = (error: BrokerError): string | undefined =>
  error.transient === "alarm"
    ? "waiting for it to clear"
    : error.transient === "noLeader"
    ? "waiting for the stream to have a leader (none right now: a cluster electing one, or without a majority)"
    : undefined

/**
 * Runs `session` until it succeeds. After a failure that `retryable` accepts (a lost connection, a
 * stream between leaders) it runs again, pausing as the broker's retry policy says, and fails when
 * the policy gives up. A session that made progress starts the policy over: a consumer that runs
 * for weeks survives every outage, not only the first.
 */
const recovering = <A, E, R>(
  policy: Schedule.Schedule<unknown, StreamError>,
  session: Effect.Effect<A, E, R>,
  options: {
    readonly retryable: (error: E) => boolean
    readonly progress: () => number
    readonly onRetry: (error: E) => Effect.Effect<void>
  }
): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const driver = yield* Schedule.driver(policy)
    for (;;) {
      const before = options.progress()
      const outcome = yield* Effect.either(session)
      if (Either.isRight(outcome)) return outcome.right
      const error = outcome.left
      if (!options.retryable(error)) return yield* Effect.fail(error)
      if (options.progress() > before) yield* driver.reset
      yield* options.onRetry(error)
      if (Either.isLeft(yield* Effect.either(driver.next(error as StreamError)))) return yield* Effect.fail(error)
    }
  })
// ---------------------------------------------------------------------------------------------
// Messages on the wire: the AMQP 1.0 codec, delivered chunks, publish frames
// ---------------------------------------------------------------------------------------------

/** Why bytes are not an AMQP 1.0 message (or a value cannot be written as one). */
class AmqpCodecError extends Error {}
const codecError = (message: string): never => {
  throw new AmqpCodecError(message)
}

/** Reads AMQP 1.0 (big-endian) from a byte range; every read is bounds-checked. */
class AmqpReader {
  private readonly view: DataView
  constructor(readonly bytes: Uint8Array, public pos = 0, public end = bytes.length) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
  need(n: number): number {
    const at = this.pos
    if (n < 0 || at + n > this.end) codecError(`truncated at byte ${at} (${n} more needed, ${this.end - at} left)`)
    this.pos = at + n
    return at
  }
  u8(): number {
    return this.bytes[this.need(1)]!
  }
  i8(): number {
    return this.view.getInt8(this.need(1))
  }
  u16(): number {
    return this.view.getUint16(this.need(2))
  }
  i16(): number {
    return this.view.getInt16(this.need(2))
  }
  u32(): number {
    return this.view.getUint32(this.need(4))
  }
  i32(): number {
    return this.view.getInt32(this.need(4))
  }
  u64(): bigint {
    return this.view.getBigUint64(this.need(8))
  }
  i64(): bigint {
    return this.view.getBigInt64(this.need(8))
  }
  f32(): number {
    return this.view.getFloat32(this.need(4))
  }
  f64(): number {
    return this.view.getFloat64(this.need(8))
  }
  /** A view of the next `n` bytes (no copy). */
  take(n: number): Uint8Array {
    const at = this.need(n)
    return this.bytes.subarray(at, at + n)
  }
  /** UTF-8 text, strictly (bytes that are not UTF-8 fail); short ASCII without TextDecoder, which costs more per call. */
  utf8(n: number): string {
    const at = this.need(n)
    const bytes = this.bytes
    if (n <= 64) {
      let ascii = true
      for (let i = at; i < at + n; i++) {
        if (bytes[i]! > 0x7f) {
          ascii = false
          break
        }
      }
      if (ascii) return String.fromCharCode.apply(null, bytes.subarray(at, at + n) as unknown as Array<number>)
    }
    return strictUtf8.decode(bytes.subarray(at, at + n))
  }
}
const strictUtf8 = new TextDecoder("utf-8", { fatal: true })

const MAX_DATE_MS = 8_640_000_000_000_000n
const INT32_MIN = -(2 ** 31)
const INT32_MAX = 2 ** 31 - 1
const isInt32 = (n: number) => Number.isInteger(n) && n >= INT32_MIN && n <= INT32_MAX
const typed = <T extends AmqpTyped["_tag"]>(_tag: T, value: unknown) => ({ _tag, value }) as AmqpTyped

/** One AMQP 1.0 value, whatever its encoding (AMQP 1.0 types, section 1.6). */
const readValue = (r: AmqpReader): AmqpValue => readValueOf(r, r.u8())

const readValueOf = (r: AmqpReader, code: number): AmqpValue => {
  switch (code) {
    case 0x00: {
      const descriptor = readValue(r)
      return { _tag: "described", descriptor, value: readValue(r) }
    }
    case 0x40:
      return null
    case 0x41:
      return true
    case 0x42:
      return false
    case 0x56: {
      const b = r.u8()
      return b === 0 ? false : b === 1 ? true : codecError(`invalid boolean byte ${b}`)
    }
    case 0x50:
      return typed("ubyte", r.u8())
    case 0x51:
      return typed("byte", r.i8())
    case 0x60:
      return typed("ushort", r.u16())
    case 0x61:
      return typed("short", r.i16())
    case 0x43:
      return typed("uint", 0)
    case 0x52:
      return typed("uint", r.u8())
    case 0x70:
      return typed("uint", r.u32())
    case 0x54:
      return r.i8()
    case 0x71:
      return r.i32()
    case 0x44:
      return typed("ulong", 0n)
    case 0x53:
      return typed("ulong", BigInt(r.u8()))
    case 0x80:
      return typed("ulong", r.u64())
    case 0x55:
      return BigInt(r.i8())
    case 0x81:
      return r.i64()
    case 0x72:
      return typed("float", r.f32())
    case 0x82: {
      // A double that reads as an int would be written back as one: it keeps its type.
      const d = r.f64()
      return isInt32(d) ? typed("double", d) : d
    }
    case 0x74:
      return typed("decimal32", r.take(4))
    case 0x84:
      return typed("decimal64", r.take(8))
    case 0x94:
      return typed("decimal128", r.take(16))
    case 0x73: {
      const point = r.u32()
      return point > 0x10ffff ? codecError(`invalid char ${point}`) : typed("char", String.fromCodePoint(point))
    }
    case 0x83: {
      // Beyond the range of a Date (±8.64e15 ms) it stays a number of milliseconds.
      const ms = r.i64()
      return ms >= -MAX_DATE_MS && ms <= MAX_DATE_MS ? new Date(Number(ms)) : { _tag: "timestamp", value: ms }
    }
    case 0x98:
      return typed("uuid", uuidText(r.take(16)))
    case 0xa0:
      return r.take(r.u8())
    case 0xb0:
      return r.take(r.u32())
    case 0xa1:
      return r.utf8(r.u8())
    case 0xb1:
      return r.utf8(r.u32())
    case 0xa3:
      return typed("symbol", r.utf8(r.u8()))
    case 0xb3:
      return typed("symbol", r.utf8(r.u32()))
    case 0x45:
      return []
    case 0xc0:
      return readCompound(r, r.u8(), 1, (count) => readList(r, count))
    case 0xd0:
      return readCompound(r, r.u32(), 4, (count) => readList(r, count))
    case 0xc1:
      return readCompound(r, r.u8(), 1, (count) => readMap(r, count))
    case 0xd1:
      return readCompound(r, r.u32(), 4, (count) => readMap(r, count))
    case 0xe0:
      return readCompound(r, r.u8(), 1, (count) => readArray(r, count))
    case 0xf0:
      return readCompound(r, r.u32(), 4, (count) => readArray(r, count))
    default:
      return codecError(`unknown format code 0x${code.toString(16).padStart(2, "0")}`)
  }
}

/** A list, map or array: its size (bytes after the size field) must hold exactly its count and elements. */
const readCompound = <A>(r: AmqpReader, size: number, width: 1 | 4, read: (count: number) => A): A => {
  const end = r.pos + size
  if (end > r.end) codecError(`a compound of ${size} bytes overruns its container`)
  const outer = r.end
  r.end = end
  const count = width === 1 ? r.u8() : r.u32()
  // Every element takes a byte at least, but in an array of a zero-width type (null, true, uint0):
  // a count beyond the bytes there are would only make a message that costs memory to no end.
  if (count > end - r.pos) codecError(`a compound counts ${count} elements in ${end - r.pos} bytes`)
  const value = read(count)
  if (r.pos !== end) codecError(`a compound's size says ${size} bytes, its elements take ${size - (end - r.pos)}`)
  r.end = outer
  return value
}

const readList = (r: AmqpReader, count: number): ReadonlyArray<AmqpValue> => {
  const values: Array<AmqpValue> = []
  for (let i = 0; i < count; i++) values.push(readValue(r))
  return values
}

const readMap = (r: AmqpReader, count: number): AmqpTyped => {
  if (count % 2 !== 0) codecError(`a map with an odd number of elements (${count})`)
  const entries: Array<readonly [AmqpValue, AmqpValue]> = []
  for (let i = 0; i < count; i += 2) entries.push([readValue(r), readValue(r)])
  return { _tag: "map", value: entries }
}

/** An array: one element constructor (possibly described), then the elements without theirs. */
const readArray = (r: AmqpReader, count: number): AmqpTyped => {
  let code = r.u8()
  const descriptor = code === 0x00 ? readValue(r) : undefined
  if (descriptor !== undefined) code = r.u8()
  const values: Array<AmqpValue> = []
  for (let i = 0; i < count; i++) {
    const value = readValueOf(r, code)
    values.push(descriptor === undefined ? value : { _tag: "described", descriptor, value })
  }
  return { _tag: "array", value: values }
}

const uuidText = (bytes: Uint8Array): string => {
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** The message sections by descriptor (their ulong codes, or the symbols the spec gives them). */
const SECTION_SYMBOLS: Record<string, number> = {
  "amqp:header:list": 0x70,
  "amqp:delivery-annotations:map": 0x71,
  "amqp:message-annotations:map": 0x72,
  "amqp:properties:list": 0x73,
  "amqp:application-properties:map": 0x74,
  "amqp:data:binary": 0x75,
  "amqp:amqp-sequence:list": 0x76,
  "amqp:amqp-value:*": 0x77,
  "amqp:footer:map": 0x78
}

const readSectionCode = (r: AmqpReader): number => {
  if (r.u8() !== 0x00) codecError(`not an AMQP 1.0 message: byte ${r.pos - 1} starts no section`)
  const code = r.u8()
  // The common encoding (smallulong) without building a value.
  if (code === 0x53) {
    const section = r.u8()
    return section >= 0x70 && section <= 0x78 ? section : codecError(`not an AMQP 1.0 message section: descriptor 0x${section.toString(16)}`)
  }
  const descriptor = readValueOf(r, code)
  if (typeof descriptor === "object" && descriptor !== null && "_tag" in descriptor) {
    if (descriptor._tag === "ulong" && descriptor.value >= 0x70n && descriptor.value <= 0x78n) return Number(descriptor.value)
    if (descriptor._tag === "symbol" && SECTION_SYMBOLS[descriptor.value] !== undefined) return SECTION_SYMBOLS[descriptor.value]!
  }
  return codecError(`not an AMQP 1.0 message section: descriptor ${describeValue(descriptor)}`)
}

const describeValue = (value: AmqpValue): string =>
  typeof value === "object" && value !== null && "_tag" in value ? `${value._tag} ${String(value.value)}` : String(value)

/** Everything a message holds but its offset. */
type MessageContent = Omit<StreamMessage, "offset">

/**
 * One AMQP 1.0 message, from its sections in `r` up to `end`. Throws an AmqpCodecError when the
 * bytes are not one (the caller turns that into an UndecodableMessage).
 */
const readMessage = (r: AmqpReader, end: number): MessageContent => {
  r.end = end
  const content: {
    -readonly [K in keyof MessageContent]?: MessageContent[K]
  } = {}
  let data: Uint8Array | Array<Uint8Array> | undefined
  let sequence: Array<ReadonlyArray<AmqpValue>> | undefined
  while (r.pos < end) {
    const section = readSectionCode(r)
    const code = r.u8()
    switch (section) {
      case 0x75: {
        const bytes = code === 0xa0 ? r.take(r.u8()) : code === 0xb0 ? r.take(r.u32()) : codecError("a data section that is not binary")
        data = data === undefined ? bytes : [...(Array.isArray(data) ? data : [data]), bytes]
        break
      }
      case 0x70:
        content.header = headerOf(readValueOf(r, code))
        break
      case 0x71:
      case 0x78:
        readValueOf(r, code) // delivery annotations and the footer: read past
        break
      case 0x72:
        content.messageAnnotations = readRecord(r, code, "message annotations")
        break
      case 0x73:
        content.properties = propertiesOf(readValueOf(r, code))
        break
      case 0x74:
        content.applicationProperties = readRecord(r, code, "application properties")
        break
      case 0x76: {
        const list = readValueOf(r, code)
        if (!Array.isArray(list)) codecError("an amqp-sequence section that is not a list")
        ;(sequence ??= []).push(list as ReadonlyArray<AmqpValue>)
        break
      }
      case 0x77:
        content.amqpValue = readValueOf(r, code)
        break
    }
  }
  if (sequence !== undefined) content.amqpSequence = sequence
  content.body = data === undefined
    ? bytesOfValue(content.amqpValue)
    : Array.isArray(data)
    ? Buffer.concat(data)
    : data
  return content as MessageContent
}

const EMPTY = new Uint8Array(0)
const utf8Encoder = new TextEncoder()
const bytesOfValue = (value: AmqpValue | undefined): Uint8Array =>
  typeof value === "string" ? utf8Encoder.encode(value) : value instanceof Uint8Array ? value : EMPTY

/**
 * Annotations (symbol keys) and application properties (string keys) as a record, read straight
 * from the map's encoding; null is an empty one.
 */
const readRecord = (r: AmqpReader, code: number, what: string): Record<string, AmqpValue> => {
  if (code === 0x40) return {}
  if (code !== 0xc1 && code !== 0xd1) return codecError(`${what} that are not a map`)
  return readCompound(r, code === 0xc1 ? r.u8() : r.u32(), code === 0xc1 ? 1 : 4, (count) => {
    if (count % 2 !== 0) codecError(`a map with an odd number of elements (${count})`)
    const record: Record<string, AmqpValue> = {}
    for (let i = 0; i < count; i += 2) {
      const key = keyText(readValue(r), what)
      const value = readValue(r)
      // A key such as "__proto__" from another client is an ordinary key.
      if (key === "__proto__") Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true })
      else record[key] = value
    }
    return record
  })
}
const keyText = (key: AmqpValue, what: string): string =>
  typeof key === "string"
    ? key
    : typeof key === "object" && key !== null && "_tag" in key && (key._tag === "symbol" || key._tag === "ulong")
    ? String(key.value)
    : codecError(`${what} with a key that is not a string or symbol`)

/** The fields of a list-shaped section, by position; `null` and missing trailing fields are absent. */
const fieldsOf = (value: AmqpValue, what: string): ReadonlyArray<AmqpValue> =>
  value === null ? [] : Array.isArray(value) ? value : codecError(`a ${what} section that is not a list`)

const field = <A>(fields: ReadonlyArray<AmqpValue>, i: number, name: string, read: (v: AmqpValue) => A | undefined) => {
  const value = fields[i]
  if (value === undefined || value === null) return undefined
  const read_ = read(value)
  return read_ === undefined ? codecError(`field ${name} has the wrong type (${describeValue(value)})`) : read_
}
const asString = (v: AmqpValue) => typeof v === "string" ? v : undefined
/** A symbol field; a string is taken too (some clients write one). */
const asSymbol = (v: AmqpValue) => typeof v === "string" ? v : tagged(v, "symbol") ? (v.value as string) : undefined
const asBinary = (v: AmqpValue) => v instanceof Uint8Array ? v : undefined
const asDate = (v: AmqpValue) => v instanceof Date ? v : undefined
const asBoolean = (v: AmqpValue) => typeof v === "boolean" ? v : undefined
/** An unsigned field (ubyte, uint): its number. */
const asUnsigned = (v: AmqpValue) => tagged(v, "ubyte") || tagged(v, "uint") ? (v.value as number) : undefined
const asMessageId = (v: AmqpValue): MessageId | undefined =>
  typeof v === "string" || v instanceof Uint8Array ? v : tagged(v, "ulong") ? (v.value as bigint) : tagged(v, "uuid") ? v : undefined
const tagged = (v: AmqpValue, tag: AmqpTyped["_tag"]): v is AmqpTyped =>
  typeof v === "object" && v !== null && "_tag" in v && v._tag === tag

/** The fields of the properties section, by position, with the type each must have. */
const PROPERTY_FIELDS_BY_POSITION: ReadonlyArray<readonly [keyof MessageProperties, string, (v: AmqpValue) => unknown]> = [
  ["messageId", "message-id", asMessageId],
  ["userId", "user-id", asBinary],
  ["to", "to", asString],
  ["subject", "subject", asString],
  ["replyTo", "reply-to", asString],
  ["correlationId", "correlation-id", asMessageId],
  ["contentType", "content-type", asSymbol],
  ["contentEncoding", "content-encoding", asSymbol],
  ["absoluteExpiryTime", "absolute-expiry-time", asDate],
  ["creationTime", "creation-time", asDate],
  ["groupId", "group-id", asString],
  ["groupSequence", "group-sequence", asUnsigned],
  ["replyToGroupId", "reply-to-group-id", asString]
]
const HEADER_FIELDS_BY_POSITION: ReadonlyArray<readonly [keyof MessageHeader, string, (v: AmqpValue) => unknown]> = [
  ["durable", "durable", asBoolean],
  ["priority", "priority", asUnsigned],
  ["ttl", "ttl", asUnsigned],
  ["firstAcquirer", "first-acquirer", asBoolean],
  ["deliveryCount", "delivery-count", asUnsigned]
]

/** A list-shaped section as an object of the fields that are set (messages stay small objects). */
const fieldsObject = <A>(value: AmqpValue, what: string, fields: ReadonlyArray<readonly [string, string, (v: AmqpValue) => unknown]>): A => {
  const f = fieldsOf(value, what)
  const object: Record<string, unknown> = {}
  for (let i = 0; i < f.length && i < fields.length; i++) {
    const [key, name, read] = fields[i]!
    const v = field(f, i, name, read)
    if (v !== undefined) object[key] = v
  }
  return object as A
}
const propertiesOf = (value: AmqpValue): MessageProperties => fieldsObject(value, "properties", PROPERTY_FIELDS_BY_POSITION)
const headerOf = (value: AmqpValue): MessageHeader => fieldsObject(value, "header", HEADER_FIELDS_BY_POSITION)

/**
 * Whether the `size` bytes at `at` are a message that is one data section of at most 255 bytes and
 * nothing else (what `send` and most clients write for a short body): its body starts 5 bytes in.
 */
const isBodyOnly = (bytes: Uint8Array, at: number, size: number): boolean =>
  size >= 5 && bytes[at] === 0 && bytes[at + 1] === 0x53 && bytes[at + 2] === 0x75 && bytes[at + 3] === 0xa0 && bytes[at + 4] === size - 5

/**
 * One message of a stream from its stored bytes: a StreamMessage, or an UndecodableMessage that
 * says why not. The common message (one data section) takes the fast path.
 *
 * @since 0.1.0
 * @category messages
 */
export const decodeMessage = (bytes: Uint8Array, offset: bigint): StreamMessage => {
  if (isBodyOnly(bytes, 0, bytes.length)) return { offset, body: bytes.subarray(5) }
  try {
    return { offset, ...readMessage(new AmqpReader(bytes), bytes.length) }
  } catch (error) {
    return undecodable(offset, error, bytes)
  }
}

const undecodable = (offset: bigint, error: unknown, data: Uint8Array) => {
  if (!(error instanceof AmqpCodecError || error instanceof RangeError || error instanceof TypeError)) throw error
  return new UndecodableMessage(offset, error.message, data)
}

// ---- writing ----

/** A growable buffer: `room` says where the next bytes go. */
class GrowableBuffer {
  bytes: Buffer
  view: DataView
  pos = 0
  constructor(size = 256) {
    this.bytes = Buffer.allocUnsafe(size)
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength)
  }
  /** Where `n` more bytes go: the buffer grows if needed (so `bytes` and `view` are read after it). */
  room(n: number): number {
    if (this.pos + n > this.bytes.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.pos + n))
      this.bytes.copy(bigger, 0, 0, this.pos)
      this.bytes = bigger
      this.view = new DataView(bigger.buffer, bigger.byteOffset, bigger.byteLength)
    }
    const at = this.pos
    this.pos += n
    return at
  }
  /** What was written, as a plain Uint8Array (decoded fields that view it are then plain too). */
  result(): Uint8Array {
    return new Uint8Array(this.bytes.buffer, this.bytes.byteOffset, this.pos)
  }
}

/** The big-endian writes of AMQP 1.0's types, on a growable buffer. */
class AmqpWriter extends GrowableBuffer {
  u8(v: number) {
    const at = this.room(1)
    this.bytes[at] = v
  }
  u16(v: number) {
    const at = this.room(2)
    this.view.setUint16(at, v)
  }
  u32(v: number) {
    const at = this.room(4)
    this.view.setUint32(at, v)
  }
  i8(v: number) {
    const at = this.room(1)
    this.view.setInt8(at, v)
  }
  i16(v: number) {
    const at = this.room(2)
    this.view.setInt16(at, v)
  }
  i32(v: number) {
    const at = this.room(4)
    this.view.setInt32(at, v)
  }
  u64(v: bigint) {
    const at = this.room(8)
    this.view.setBigUint64(at, v)
  }
  i64(v: bigint) {
    const at = this.room(8)
    this.view.setBigInt64(at, v)
  }
  f32(v: number) {
    const at = this.room(4)
    this.view.setFloat32(at, v)
  }
  f64(v: number) {
    const at = this.room(8)
    this.view.setFloat64(at, v)
  }
  put(bytes: Uint8Array) {
    const at = this.room(bytes.length)
    this.bytes.set(bytes, at)
  }
  /** UTF-8 text of `size` bytes (`Buffer.byteLength`), written natively. */
  text(text: string, size: number) {
    const at = this.room(size)
    this.bytes.write(text, at, size, "utf8")
  }
  /** Writes a size-prefixed compound: `write` fills it, then its size is set. */
  sized(width: 1 | 4, write: () => void) {
    const at = this.room(width)
    write()
    const size = this.pos - at - width
    if (width === 1) this.bytes[at] = size
    else this.view.setUint32(at, size)
  }
}

const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const UINT64_MAX = 2n ** 64n - 1n

const inRange = (what: string, n: number, min: number, max: number, integer = true) =>
  (!integer || Number.isInteger(n)) && n >= min && n <= max ? n : codecError(`${what} must be ${integer ? "an integer " : ""}from ${min} to ${max}, got ${n}`)

/** Writes a value with its constructor, in its smallest encoding. */
const writeValue = (w: AmqpWriter, value: AmqpValue): void => {
  if (value === null) return w.u8(0x40)
  switch (typeof value) {
    case "boolean":
      return w.u8(value ? 0x41 : 0x42)
    case "string":
      return writeText(w, 0xa1, value)
    case "number":
      if (isInt32(value)) {
        if (value >= -128 && value <= 127) return (w.u8(0x54), w.i8(value))
        return (w.u8(0x71), w.i32(value))
      }
      return (w.u8(0x82), w.f64(value))
    case "bigint":
      if (value < INT64_MIN || value > INT64_MAX) codecError(`a bigint is an AMQP long (64 bits, signed): ${value} is out of range (use Amqp.ulong)`)
      if (value >= -128n && value <= 127n) return (w.u8(0x55), w.i8(Number(value)))
      return (w.u8(0x81), w.i64(value))
  }
  if (value instanceof Uint8Array) return writeBinary(w, value)
  if (value instanceof Date) {
    const ms = value.getTime()
    if (!Number.isFinite(ms)) codecError("an invalid Date")
    return (w.u8(0x83), w.i64(BigInt(ms)))
  }
  if (Array.isArray(value)) return writeList(w, value)
  return writeTyped(w, value as AmqpTyped)
}

const writeText = (w: AmqpWriter, small: 0xa1 | 0xa3, text: string) => {
  const size = Buffer.byteLength(text, "utf8")
  if (size <= 255) return (w.u8(small), w.u8(size), w.text(text, size))
  return (w.u8(small + 0x10), w.u32(size), w.text(text, size))
}
const writeBinary = (w: AmqpWriter, bytes: Uint8Array) => {
  if (bytes.length <= 255) return (w.u8(0xa0), w.u8(bytes.length), w.put(bytes))
  return (w.u8(0xb0), w.u32(bytes.length), w.put(bytes))
}
const writeList = (w: AmqpWriter, values: ReadonlyArray<AmqpValue>) => {
  if (values.length === 0) return w.u8(0x45)
  w.u8(0xd0)
  w.sized(4, () => {
    w.u32(values.length)
    for (const v of values) writeValue(w, v)
  })
}
const writeMap = (w: AmqpWriter, entries: ReadonlyArray<readonly [AmqpValue, AmqpValue]>, key: (w: AmqpWriter, k: AmqpValue) => void = writeValue) => {
  w.u8(0xd1)
  w.sized(4, () => {
    w.u32(entries.length * 2)
    for (const [k, v] of entries) {
      key(w, k)
      writeValue(w, v)
    }
  })
}

const writeTyped = (w: AmqpWriter, value: AmqpTyped): void => {
  switch (value._tag) {
    case "ubyte":
      return (w.u8(0x50), w.u8(inRange("a ubyte", value.value, 0, 255)))
    case "byte":
      return (w.u8(0x51), w.i8(inRange("a byte", value.value, -128, 127)))
    case "ushort":
      return (w.u8(0x60), w.u16(inRange("a ushort", value.value, 0, 65535)))
    case "short":
      return (w.u8(0x61), w.i16(inRange("a short", value.value, -32768, 32767)))
    case "uint": {
      const n = inRange("a uint", value.value, 0, 2 ** 32 - 1)
      return n === 0 ? w.u8(0x43) : n <= 255 ? (w.u8(0x52), w.u8(n)) : (w.u8(0x70), w.u32(n))
    }
    case "ulong": {
      const n = value.value
      if (typeof n !== "bigint" || n < 0n || n > UINT64_MAX) return codecError(`a ulong must be a bigint from 0 to 2^64-1, got ${n}`)
      return n === 0n ? w.u8(0x44) : n <= 255n ? (w.u8(0x53), w.u8(Number(n))) : (w.u8(0x80), w.u64(n))
    }
    case "timestamp": {
      const ms = value.value
      if (typeof ms !== "bigint" || ms < INT64_MIN || ms > INT64_MAX) return codecError(`a timestamp must be a bigint of 64 bits, got ${ms}`)
      return (w.u8(0x83), w.i64(ms))
    }
    case "float":
      return (w.u8(0x72), w.f32(value.value))
    case "double":
      return (w.u8(0x82), w.f64(value.value))
    case "char": {
      const point = [...value.value]
      return point.length === 1 ? (w.u8(0x73), w.u32(point[0]!.codePointAt(0)!)) : codecError(`a char must be one character, got "${value.value}"`)
    }
    case "symbol":
      return /^[\x00-\x7f]*$/.test(value.value) ? writeText(w, 0xa3, value.value) : codecError(`a symbol must be ASCII, got "${value.value}"`)
    case "uuid": {
      const hex = value.value.replace(/-/g, "")
      if (!/^[0-9a-fA-F]{32}$/.test(hex)) return codecError(`not a UUID: "${value.value}"`)
      w.u8(0x98)
      for (let i = 0; i < 32; i += 2) w.u8(parseInt(hex.slice(i, i + 2), 16))
      return
    }
    case "decimal32":
    case "decimal64":
    case "decimal128": {
      const [code, size] = value._tag === "decimal32" ? [0x74, 4] : value._tag === "decimal64" ? [0x84, 8] : [0x94, 16]
      if (!(value.value instanceof Uint8Array) || value.value.length !== size) return codecError(`a ${value._tag} is ${size} bytes`)
      return (w.u8(code), w.put(value.value))
    }
    case "map":
      return writeMap(w, value.value)
    case "described":
      return (w.u8(0x00), writeValue(w, value.descriptor), writeValue(w, value.value))
    case "array":
      return writeArray(w, value.value)
    default:
      return codecError(`not an AMQP value: ${JSON.stringify(value)}`)
  }
}

/**
 * An array: one constructor (for described elements: the descriptor and the value's constructor),
 * then each element without it. Elements are written in a fixed-width encoding (the small variants
 * differ by value), and must all have the same constructor.
 */
const writeArray = (w: AmqpWriter, values: ReadonlyArray<AmqpValue>) => {
  const elements = values.map(arrayElement)
  const prefix = elements[0]?.prefix ?? Uint8Array.of(0x40)
  const same = (a: Uint8Array) => a.length === prefix.length && a.every((b, i) => b === prefix[i])
  if (!elements.every((e) => same(e.prefix))) codecError("the elements of an AMQP array must have one type (and one descriptor)")
  if (elements.length > 0 && prefix.at(-1) === 0x40) codecError("an AMQP array cannot hold nulls")
  w.u8(0xf0)
  w.sized(4, () => {
    w.u32(values.length)
    w.put(prefix)
    for (const e of elements) w.put(e.payload)
  })
}

/** An array element: its constructor (with its descriptor when described) and what follows it. */
const arrayElement = (v: AmqpValue): { readonly prefix: Uint8Array; readonly payload: Uint8Array } => {
  if (tagged(v, "described")) {
    const d = new AmqpWriter(16)
    d.u8(0x00)
    writeValue(d, (v as Extract<AmqpTyped, { _tag: "described" }>).descriptor)
    const inner = arrayElement((v as Extract<AmqpTyped, { _tag: "described" }>).value)
    d.put(inner.prefix)
    return { prefix: d.result(), payload: inner.payload }
  }
  const one = new AmqpWriter(16)
  writeFixedWidth(one, v)
  const bytes = one.result()
  return { prefix: bytes.subarray(0, 1), payload: bytes.subarray(1) }
}

/** A value in a fixed-width encoding (no small or zero-width variants, which would differ by value). */
const writeFixedWidth = (w: AmqpWriter, v: AmqpValue) => {
  if (typeof v === "number" && isInt32(v)) return (w.u8(0x71), w.i32(v))
  if (typeof v === "bigint") {
    if (v < INT64_MIN || v > INT64_MAX) codecError(`a bigint is an AMQP long (64 bits, signed): ${v} is out of range`)
    return (w.u8(0x81), w.i64(v))
  }
  if (Array.isArray(v)) {
    w.u8(0xd0)
    return w.sized(4, () => {
      w.u32(v.length)
      for (const e of v) writeValue(w, e)
    })
  }
  if (typeof v === "string") {
    const size = Buffer.byteLength(v, "utf8")
    return (w.u8(0xb1), w.u32(size), w.text(v, size))
  }
  if (v instanceof Uint8Array) return (w.u8(0xb0), w.u32(v.length), w.put(v))
  if (typeof v === "boolean") return (w.u8(0x56), w.u8(v ? 1 : 0))
  if (tagged(v, "symbol")) {
    const text = v.value as string
    if (typeof text !== "string" || !/^[\x00-\x7f]*$/.test(text)) return codecError(`a symbol must be ASCII, got ${JSON.stringify(text)}`)
    return (w.u8(0xb3), w.u32(text.length), w.text(text, text.length))
  }
  if (tagged(v, "uint")) return (w.u8(0x70), w.u32(inRange("a uint", v.value as number, 0, 2 ** 32 - 1)))
  if (tagged(v, "ulong")) {
    const n = v.value
    if (typeof n !== "bigint" || n < 0n || n > UINT64_MAX) return codecError(`a ulong must be a bigint from 0 to 2^64-1, got ${n}`)
    return (w.u8(0x80), w.u64(n))
  }
  if (tagged(v, "map")) {
    w.u8(0xd1)
    return w.sized(4, () => {
      const entries = (v as Extract<AmqpTyped, { _tag: "map" }>).value
      w.u32(entries.length * 2)
      for (const [k, e] of entries) (writeValue(w, k), writeValue(w, e))
    })
  }
  if (tagged(v, "array")) {
    // writeArray always writes array32.
    return writeArray(w, (v as Extract<AmqpTyped, { _tag: "array" }>).value)
  }
  return writeValue(w, v)
}

/** Writes a described section `00 53 code` and its value. */
const section = (w: AmqpWriter, code: number, write: () => void) => {
  w.u8(0x00)
  w.u8(0x53)
  w.u8(code)
  write()
}

/** A record as an AMQP map (symbol keys for annotations); an error names the key it is about. */
const writeRecord = (w: AmqpWriter, what: string, record: Readonly<Record<string, AmqpValue>>, symbolKeys: boolean) => {
  w.u8(0xd1)
  w.sized(4, () => {
    const count = w.room(4)
    let n = 0
    for (const key in record) {
      if (!Object.hasOwn(record, key)) continue
      try {
        if (symbolKeys) writeTyped(w, { _tag: "symbol", value: key })
        else writeText(w, 0xa1, key)
        writeValue(w, record[key]!)
      } catch (error) {
        if (error instanceof AmqpCodecError) codecError(`${what}.${key}: ${error.message}`)
        throw error
      }
      n += 2
    }
    w.view.setUint32(count, n)
  })
}

/** A list-shaped section (header, properties): its fields by position, trailing absent ones left out. */
const writeFields = <A extends object>(
  w: AmqpWriter,
  what: string,
  object: A,
  fields: ReadonlyArray<readonly [keyof A & string, (w: AmqpWriter, value: never) => void]>
) => {
  let count = fields.length
  while (count > 0 && object[fields[count - 1]![0]] === undefined) count--
  if (count === 0) return w.u8(0x45)
  w.u8(0xd0)
  w.sized(4, () => {
    w.u32(count)
    for (let i = 0; i < count; i++) {
      const [key, write] = fields[i]!
      const value = object[key]
      if (value === undefined || value === null) w.u8(0x40)
      else {
        try {
          ;(write as (w: AmqpWriter, value: unknown) => void)(w, value)
        } catch (error) {
          if (error instanceof AmqpCodecError) codecError(`${what}.${key}: ${error.message}`)
          throw error
        }
      }
    }
  })
}

const writeString = (w: AmqpWriter, v: string) => (typeof v === "string" ? writeText(w, 0xa1, v) : codecError("must be a string"))
const writeSymbolField = (w: AmqpWriter, v: string) =>
  typeof v === "string" ? writeTyped(w, { _tag: "symbol", value: v }) : codecError("must be a string")
const writeTimestamp = (w: AmqpWriter, v: Date) => (v instanceof Date ? writeValue(w, v) : codecError("must be a Date"))
const writeBoolean = (w: AmqpWriter, v: boolean) => (typeof v === "boolean" ? writeValue(w, v) : codecError("must be a boolean"))
const writeUbyte = (w: AmqpWriter, v: number) => writeTyped(w, { _tag: "ubyte", value: v })
const writeUint = (w: AmqpWriter, v: number) => writeTyped(w, { _tag: "uint", value: v })
const writeMessageId = (w: AmqpWriter, id: MessageId) => {
  if (typeof id === "bigint") return writeTyped(w, { _tag: "ulong", value: id })
  if (typeof id === "string" || id instanceof Uint8Array || tagged(id, "uuid")) return writeValue(w, id)
  return codecError("must be a string, a bigint (ulong), a Uint8Array or Amqp.uuid(...)")
}

const HEADER_WRITERS: ReadonlyArray<readonly [keyof MessageHeader, (w: AmqpWriter, value: never) => void]> = [
  ["durable", writeBoolean],
  ["priority", writeUbyte],
  ["ttl", writeUint],
  ["firstAcquirer", writeBoolean],
  ["deliveryCount", writeUint]
]
const PROPERTY_WRITERS: ReadonlyArray<readonly [keyof MessageProperties, (w: AmqpWriter, value: never) => void]> = [
  ["messageId", writeMessageId],
  ["userId", (w, v: Uint8Array) => (v instanceof Uint8Array ? writeBinary(w, v) : codecError("must be a Uint8Array"))],
  ["to", writeString],
  ["subject", writeString],
  ["replyTo", writeString],
  ["correlationId", writeMessageId],
  ["contentType", writeSymbolField],
  ["contentEncoding", writeSymbolField],
  ["absoluteExpiryTime", writeTimestamp],
  ["creationTime", writeTimestamp],
  ["groupId", writeString],
  ["groupSequence", writeUint],
  ["replyToGroupId", writeString]
]

const isEmpty = (record: object | undefined) => {
  if (record === undefined || record === null) return true
  for (const key in record) if (Object.hasOwn(record, key)) return false
  return true
}

/**
 * The sections an outgoing message has before its body (header, message annotations, properties,
 * application properties), encoded once; none for a message that is only a body.
 */
const encodeHead = (message: OutgoingMessage): Uint8Array | undefined => {
  const { applicationProperties, header, properties } = message
  const annotations = message.filterValue === undefined
    ? message.messageAnnotations
    : { ...message.messageAnnotations, [FILTER_VALUE_ANNOTATION]: message.filterValue }
  if (isEmpty(header) && isEmpty(annotations) && isEmpty(properties) && isEmpty(applicationProperties)) return undefined
  const w = new AmqpWriter()
  if (!isEmpty(header)) section(w, 0x70, () => writeFields(w, "header", header!, HEADER_WRITERS))
  if (!isEmpty(annotations)) section(w, 0x72, () => writeRecord(w, "messageAnnotations", annotations!, true))
  if (!isEmpty(properties)) section(w, 0x73, () => writeFields(w, "properties", properties!, PROPERTY_WRITERS))
  if (!isEmpty(applicationProperties)) section(w, 0x74, () => writeRecord(w, "applicationProperties", applicationProperties!, false))
  return w.result()
}

/** The sub-entry compressions of the stream protocol, by their code. */
const COMPRESSIONS = ["none", "gzip", "snappy", "lz4", "zstd"] as const
/**
 * How sub-entry batches are compressed: the codecs every runtime here has (`zstd` and the others: only read errors).
 *
 * @since 0.1.0
 * @category models
 */
export type Compression = "none" | "gzip"

/**
 * A message ready to publish (what a {@link PublishEntry} carries): its body, its other sections
 * encoded once, its filter value. Made by {@link toOutbound}.
 *
 * @since 0.1.0
 * @category messages
 */
export interface OutboundMessage {
  /** The body: written as one `data` section (unless `bodySections`). */
  readonly body: Uint8Array
  /** The sections before the body (header, annotations, properties, application properties), encoded. */
  readonly head: Uint8Array | undefined
  /** An `amqp-value` or `amqp-sequence` body, encoded, written instead of `body`'s data section. */
  readonly bodySections: Uint8Array | undefined
  /** The filter value the publisher sends beside the message (stream filtering). */
  readonly filterValue: string | undefined
}

/**
 * What gets one publishing id: one message, or several in a sub-entry batch (the broker then
 * confirms and deduplicates them together).
 *
 * @since 0.1.0
 * @category services
 */
export interface PublishEntry {
  /** The entry's publishing id. */
  readonly publishingId: bigint
  /** Its message, or the messages of its sub-entry batch. */
  readonly messages: ReadonlyArray<OutboundMessage>
}

/** The longest filter value the protocol carries (a string: a 16-bit signed length). */
const MAX_FILTER_VALUE_BYTES = 32_767

/**
 * Messages `messageFromJson` made (and froze, so that they cannot change): it checks a message by
 * encoding it, and `send` does not encode it again.
 */
const encoded = new WeakMap<OutgoingMessage, OutboundMessage>()

/**
 * An outgoing message (or a body) as it will be published, for {@link StreamBroker}'s low-level
 * `publisher` (the workflows and the Producer call it themselves); bad values fail here (a
 * thrown `InvalidArgument`), before anything is sent.
 *
 * @since 0.1.0
 * @category messages
 */
export const toOutbound = (message: OutgoingMessage | Uint8Array | string): OutboundMessage => {
  if (typeof message === "object" && !(message instanceof Uint8Array)) {
    return encoded.get(message) ?? encodeOutgoing(message)
  }
  // Buffer.from, not TextEncoder: on Node it costs a fifth as much per message.
  if (typeof message === "string") return { body: Buffer.from(message, "utf8"), head: undefined, bodySections: undefined, filterValue: undefined }
  return { body: message, head: undefined, bodySections: undefined, filterValue: undefined }
}

const encodeOutgoing = (message: OutgoingMessage): OutboundMessage => {
  const body = typeof message.body === "string"
    ? Buffer.from(message.body, "utf8")
    : message.body instanceof Uint8Array
    ? message.body
    : codecError("body must be a string or a Uint8Array")
  const annotated = message.messageAnnotations?.[FILTER_VALUE_ANNOTATION]
  const filterValue = message.filterValue ?? (typeof annotated === "string" ? annotated : undefined)
  if (filterValue !== undefined) {
    if (typeof filterValue !== "string" || filterValue === "") codecError("a filter value must be a non-empty string")
    if (utf8Encoder.encode(filterValue).length > MAX_FILTER_VALUE_BYTES) {
      codecError(`a filter value must be at most ${MAX_FILTER_VALUE_BYTES} bytes, got ${utf8Encoder.encode(filterValue).length}`)
    }
  }
  return { body, head: encodeHead(message), bodySections: encodeBodySections(message), filterValue }
}

const encodeBodySections = (message: OutgoingMessage): Uint8Array | undefined => {
  if (message.amqpValue === undefined && message.amqpSequence === undefined) return undefined
  const w = new AmqpWriter()
  if (message.amqpValue !== undefined) section(w, 0x77, () => writeValue(w, message.amqpValue!))
  else for (const list of message.amqpSequence!) section(w, 0x76, () => (Array.isArray(list) ? writeList(w, list) : codecError("each amqpSequence section must be a list")))
  return w.result()
}

/**
 * The bytes a stream stores for a message (its sections, then its body as one data section).
 *
 * @since 0.1.0
 * @category messages
 */
export const encodeMessage = (message: OutgoingMessage | Uint8Array | string): Uint8Array => {
  const outbound = toOutbound(message)
  const w = new AmqpWriter(messageSize(outbound))
  writeOutbound(w, outbound)
  return w.result()
}

const messageSize = (m: OutboundMessage) =>
  (m.head?.length ?? 0) + (m.bodySections?.length ?? 3 + (m.body.length <= 255 ? 2 : 5) + m.body.length)
const writeOutbound = (w: AmqpWriter, m: OutboundMessage) => {
  if (m.head !== undefined) w.put(m.head)
  if (m.bodySections !== undefined) w.put(m.bodySections)
  else section(w, 0x75, () => writeBinary(w, m.body))
}

/** A Deliver frame (without its size prefix) of the stream protocol, decoded: every entry of its chunk. */
interface Delivery {
  readonly subscriptionId: number
  readonly messages: Array<StreamMessage>
}

/**
 * Decodes a delivered chunk (Deliver v1 or v2): each entry, plain or a sub-entry batch (none or
 * gzip), gets its offset (the chunk's first offset plus its record's position); what cannot be
 * read comes as an UndecodableMessage at its offset, so a consumer can fail on it or move past it.
 */
const decodeDeliver = (frame: Uint8Array): Delivery => {
  const r = new AmqpReader(frame)
  r.u16() // key
  const version = r.u16()
  const subscriptionId = r.u8()
  if (version === 2) r.u64() // committed chunk id
  r.u8() // magic and version
  const chunkType = r.u8()
  const entries = r.u16()
  const records = r.u32()
  r.i64() // timestamp
  r.u64() // epoch
  const first = r.u64()
  r.i32() // crc
  const dataLength = r.u32()
  r.u32() // trailer length
  r.u32() // bloom filter size and reserved: the broker sends no filter
  const messages: Array<StreamMessage> = []
  // Tracking chunks hold offsets, not messages.
  if (chunkType !== 0) return { subscriptionId, messages }
  const dataEnd = Math.min(r.pos + dataLength, frame.length)
  let offset = first
  try {
    for (let e = 0; e < entries; e++) {
      r.end = dataEnd
      if ((frame[r.pos]! & 0x80) === 0) {
        const size = r.u32()
        const at = r.need(size)
        // A message that is a body alone: one view, of its data (not one of the entry, then another).
        messages.push(
          isBodyOnly(frame, at, size) ? { offset, body: frame.subarray(at + 5, at + size) } : decodeMessage(frame.subarray(at, at + size), offset)
        )
        offset++
      } else {
        const type = r.u8()
        const count = r.u16()
        const plainSize = r.u32()
        const data = r.take(r.u32())
        for (const m of decodeSubEntries(data, (type & 0x70) >> 4, count, offset, plainSize)) messages.push(m)
        offset += BigInt(count)
      }
    }
  } catch (error) {
    // A chunk whose entries cannot be separated: its remaining records are reported, not lost.
    const reason = `the chunk at offset ${first} is malformed: ${error instanceof Error ? error.message : String(error)}`
    for (let i = offset; i < first + BigInt(records); i++) messages.push(new UndecodableMessage(i, reason, EMPTY))
  }
  return { subscriptionId, messages }
}

const decodeSubEntries = (data: Uint8Array, compression: number, count: number, first: bigint, plainSize: number): Array<StreamMessage> => {
  const name = COMPRESSIONS[compression] ?? `compression ${compression}`
  const all = (reason: string) => Array.from({ length: count }, (_, i) => new UndecodableMessage(first + BigInt(i), reason, EMPTY))
  let plain: Uint8Array
  try {
    plain = compression === 0
      ? data
      : compression === 1
      // Never more than the batch says it holds: a small frame must not inflate into gigabytes.
      ? gunzipSync(data, { maxOutputLength: Math.max(1, plainSize) })
      : codecError(`a sub-entry batch compressed with ${name}, which this consumer cannot decompress (none and gzip only)`)
  } catch (error) {
    return all(error instanceof AmqpCodecError ? error.message : `cannot decompress a ${name} sub-entry batch: ${errorText(error)}`)
  }
  const r = new AmqpReader(plain)
  const messages: Array<StreamMessage> = []
  try {
    for (let i = 0; i < count; i++) {
      r.end = plain.length
      messages.push(decodeMessage(r.take(r.u32()), first + BigInt(i)))
    }
  } catch (error) {
    const reason = `a sub-entry batch is malformed: ${errorText(error)}`
    for (let i = messages.length; i < count; i++) messages.push(new UndecodableMessage(first + BigInt(i), reason, EMPTY))
  }
  return messages
}

const FRAME_HEADER = 4 + 2 + 2 + 1 + 4

/**
 * The Publish frames for entries of one publisher, none over `frameMax` bytes: version 2 (a filter
 * value per message) when a message has one, else version 1. An entry of several messages is a
 * sub-entry batch, compressed as asked. An entry that cannot fit in a frame fails the whole call.
 */
const publishFrames = (
  publisherId: number,
  entries: ReadonlyArray<PublishEntry>,
  options: { readonly frameMax: number; readonly compression: Compression }
): Array<Uint8Array> => {
  const filtered = entries.some((e) => e.messages.some((m) => m.filterValue !== undefined))
  // Sizes first, then each frame written into one buffer: no allocation per message (this is the
  // hot path of publishing: a closure or a small array per message cost half of `send`'s time).
  const batches = entries.map((entry) => (entry.messages.length === 1 ? undefined : subEntryBatch(entry, filtered, options.compression)))
  const sizes = entries.map((entry, i) => {
    const batch = batches[i]
    if (batch !== undefined) return 8 + 1 + 2 + 4 + 4 + batch.data.length
    const m = entry.messages[0]!
    const filter = filtered ? 2 + (m.filterValue === undefined ? 0 : Buffer.byteLength(m.filterValue)) : 0
    return 8 + filter + 4 + messageSize(m)
  })
  const frames: Array<Uint8Array> = []
  for (let start = 0; start < entries.length;) {
    let size = FRAME_HEADER
    let end = start
    while (end < entries.length && size + sizes[end]! <= options.frameMax) size += sizes[end++]!
    if (end === start) {
      return codecError(`a message of ${sizes[start]} bytes does not fit in a frame (the broker's limit is ${options.frameMax} bytes)`)
    }
    const frame = Buffer.allocUnsafe(size)
    let o = frame.writeUInt32BE(size - 4, 0)
    o = frame.writeUInt16BE(PUBLISH_KEY, o)
    o = frame.writeUInt16BE(filtered ? 2 : 1, o)
    o = frame.writeUInt8(publisherId, o)
    o = frame.writeUInt32BE(end - start, o)
    for (let i = start; i < end; i++) {
      const entry = entries[i]!
      o = frame.writeBigUInt64BE(entry.publishingId, o)
      const batch = batches[i]
      if (batch !== undefined) {
        o = frame.writeUInt8(0x80 | (COMPRESSIONS.indexOf(options.compression) << 4), o)
        o = frame.writeUInt16BE(entry.messages.length, o)
        o = frame.writeUInt32BE(batch.plainSize, o)
        o = frame.writeUInt32BE(batch.data.length, o)
        frame.set(batch.data, o)
        o += batch.data.length
        continue
      }
      const m = entry.messages[0]!
      if (filtered) {
        if (m.filterValue === undefined) o = frame.writeInt16BE(-1, o)
        else {
          const n = frame.write(m.filterValue, o + 2, "utf8")
          o = frame.writeInt16BE(n, o) + n
        }
      }
      o = frame.writeUInt32BE(messageSize(m), o)
      o = writeMessageAt(frame, o, m)
    }
    frames.push(frame)
    start = end
  }
  return frames
}

/** Writes an outbound message at `o` (its sections, then its body as a data section); gives the end. */
const writeMessageAt = (frame: Buffer, at: number, m: OutboundMessage): number => {
  let o = at
  if (m.head !== undefined) {
    frame.set(m.head, o)
    o += m.head.length
  }
  if (m.bodySections !== undefined) {
    frame.set(m.bodySections, o)
    return o + m.bodySections.length
  }
  const body = m.body
  frame[o++] = 0x00
  frame[o++] = 0x53
  frame[o++] = 0x75
  if (body.length <= 255) {
    frame[o++] = 0xa0
    frame[o++] = body.length
  } else {
    frame[o++] = 0xb0
    o = frame.writeUInt32BE(body.length, o)
  }
  frame.set(body, o)
  return o + body.length
}

/** A sub-entry batch's records (a size and a message each), compressed as asked. */
const subEntryBatch = (entry: PublishEntry, filtered: boolean, compression: Compression) => {
  if (filtered) codecError("sub-entry batches cannot carry filter values: publish filtered messages one by one")
  const plain = Buffer.allocUnsafe(entry.messages.reduce((n, m) => n + 4 + messageSize(m), 0))
  let o = 0
  for (const m of entry.messages) o = writeMessageAt(plain, plain.writeUInt32BE(messageSize(m), o), m)
  return { plainSize: plain.length, data: compression === "gzip" ? gzipSync(plain) : plain }
}

// ---------------------------------------------------------------------------------------------
// Messages as JSON: the one-key objects of the types JSON lacks
// ---------------------------------------------------------------------------------------------

const base64 = (bytes: Uint8Array) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")
/** A bigint as a JSON number when that is exact, else as a string of digits. */
const jsonInteger = (n: bigint) => (n >= -MAX_SAFE && n <= MAX_SAFE ? Number(n) : n.toString())
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

const jsonOfValue = (value: AmqpValue): unknown => {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value
  if (typeof value === "number") return Number.isFinite(value) ? value : { double: String(value) }
  if (typeof value === "bigint") return { long: jsonInteger(value) }
  if (value instanceof Uint8Array) return { binary: base64(value) }
  if (value instanceof Date) return { timestamp: Number.isNaN(value.getTime()) ? null : value.toISOString() }
  if (Array.isArray(value)) return value.map(jsonOfValue)
  const t = value as AmqpTyped
  switch (t._tag) {
    case "ulong":
      return { ulong: jsonInteger(t.value) }
    case "timestamp":
      return { timestamp: t.value.toString() }
    case "float":
    case "double":
      return { [t._tag]: Number.isFinite(t.value) ? t.value : String(t.value) }
    case "decimal32":
    case "decimal64":
    case "decimal128":
      return { [t._tag]: Buffer.from(t.value).toString("hex") }
    case "array":
      return { array: t.value.map(jsonOfValue) }
    case "map":
      return { map: t.value.map(([k, v]) => [jsonOfValue(k), jsonOfValue(v)]) }
    case "described":
      return { described: [jsonOfValue(t.descriptor), jsonOfValue(t.value)] }
    default:
      return { [t._tag]: t.value }
  }
}

const jsonOfMessageId = (id: MessageId): unknown => typeof id === "string" ? id : typeof id === "bigint" ? { ulong: jsonInteger(id) } : jsonOfValue(id)

const jsonOfRecord = (record: Readonly<Record<string, AmqpValue>>) =>
  Object.fromEntries(Object.entries(record).map(([k, v]) => [k, jsonOfValue(v)]))

const strictText = new TextDecoder("utf-8", { fatal: true })

const jsonOfMessage = (message: StreamMessage): Record<string, unknown> => {
  if (message instanceof UndecodableMessage) {
    return { offset: message.offset.toString(), undecodable: message.reason, data: base64(message.data) }
  }
  let body: { body: string; encoding?: "base64" }
  try {
    body = { body: strictText.decode(message.body) }
  } catch {
    body = { body: base64(message.body), encoding: "base64" }
  }
  const { applicationProperties, header, messageAnnotations, properties } = message
  const some = (record: object | undefined) => record !== undefined && Object.keys(record).length > 0
  return {
    offset: message.offset.toString(),
    ...body,
    ...(some(properties)
      ? {
        properties: Object.fromEntries(
          Object.entries(properties!).map(([k, v]) => [
            k,
            k === "messageId" || k === "correlationId"
              ? jsonOfMessageId(v as MessageId)
              : v instanceof Date
              ? v.toISOString()
              : v instanceof Uint8Array
              ? base64(v)
              : v
          ])
        )
      }
      : {}),
    ...(some(applicationProperties) ? { applicationProperties: jsonOfRecord(applicationProperties!) } : {}),
    ...(some(messageAnnotations) ? { messageAnnotations: jsonOfRecord(messageAnnotations!) } : {}),
    ...(some(header) ? { header } : {}),
    ...(message.amqpValue !== undefined ? { amqpValue: jsonOfValue(message.amqpValue) } : {}),
    ...(message.amqpSequence !== undefined ? { amqpSequence: message.amqpSequence.map((s) => s.map(jsonOfValue)) } : {})
  }
}

// ---- reading JSON back; errors name the field (`applicationProperties.n: ...`) ----

const jsonError = (path: string, message: string): never => codecError(`${path}: ${message}`)
const isRecord = (json: unknown): json is Record<string, unknown> =>
  typeof json === "object" && json !== null && !Array.isArray(json)
const jsonTypeOf = (json: unknown) => json === null ? "null" : Array.isArray(json) ? "an array" : typeof json === "object" ? "an object" : `a ${typeof json}`

const jsonBigint = (json: unknown, path: string): bigint => {
  if (typeof json === "number" && Number.isSafeInteger(json)) return BigInt(json)
  if (typeof json === "string" && /^-?[0-9]+$/.test(json)) return BigInt(json)
  return jsonError(path, `expected an integer (a number, or a string of digits), got ${JSON.stringify(json)}`)
}
const jsonNumber = (json: unknown, path: string): number => {
  if (typeof json === "number") return json
  if (json === "NaN" || json === "Infinity" || json === "-Infinity") return Number(json)
  return jsonError(path, `expected a number, got ${JSON.stringify(json)}`)
}
const jsonString = (json: unknown, path: string): string =>
  typeof json === "string" ? json : jsonError(path, `expected a string, got ${jsonTypeOf(json)}`)
const jsonBase64 = (json: unknown, path: string): Uint8Array => {
  const text = jsonString(json, path)
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 === 1) jsonError(path, "expected base64")
  return new Uint8Array(Buffer.from(text, "base64"))
}
const jsonDate = (json: unknown, path: string): Date => {
  const date = new Date(jsonString(json, path))
  return Number.isNaN(date.getTime()) ? jsonError(path, `expected an ISO date, got ${JSON.stringify(json)}`) : date
}
/** An ISO date, or milliseconds in a string of digits (a timestamp beyond a Date's range). */
const jsonTimestamp = (json: unknown, path: string): AmqpValue =>
  typeof json === "string" && /^-?[0-9]+$/.test(json) ? { _tag: "timestamp", value: BigInt(json) } : jsonDate(json, path)
const jsonHex = (json: unknown, path: string, bytes: number): Uint8Array => {
  const text = jsonString(json, path)
  return /^[0-9a-fA-F]*$/.test(text) && text.length === bytes * 2
    ? new Uint8Array(Buffer.from(text, "hex"))
    : jsonError(path, `expected ${bytes} bytes in hex`)
}

/** The one-key objects, by key. */
const TYPED_JSON: Record<string, (json: unknown, path: string) => AmqpValue> = {
  long: (j, p) => jsonBigint(j, p),
  ulong: (j, p) => Amqp.ulong(jsonBigint(j, p)),
  ubyte: (j, p) => Amqp.ubyte(jsonNumber(j, p)),
  ushort: (j, p) => Amqp.ushort(jsonNumber(j, p)),
  uint: (j, p) => Amqp.uint(jsonNumber(j, p)),
  byte: (j, p) => Amqp.byte(jsonNumber(j, p)),
  short: (j, p) => Amqp.short(jsonNumber(j, p)),
  float: (j, p) => Amqp.float(jsonNumber(j, p)),
  double: (j, p) => Amqp.double(jsonNumber(j, p)),
  char: (j, p) => Amqp.char(jsonString(j, p)),
  symbol: (j, p) => Amqp.symbol(jsonString(j, p)),
  uuid: (j, p) => Amqp.uuid(jsonString(j, p)),
  binary: (j, p) => jsonBase64(j, p),
  timestamp: (j, p) => jsonTimestamp(j, p),
  decimal32: (j, p) => ({ _tag: "decimal32", value: jsonHex(j, p, 4) }),
  decimal64: (j, p) => ({ _tag: "decimal64", value: jsonHex(j, p, 8) }),
  decimal128: (j, p) => ({ _tag: "decimal128", value: jsonHex(j, p, 16) }),
  array: (j, p) => Amqp.array(jsonArray(j, p).map((e, i) => valueOfJson(e, `${p}[${i}]`))),
  map: (j, p) =>
    Amqp.map(jsonArray(j, p).map((entry, i) => {
      const pair = jsonArray(entry, `${p}[${i}]`)
      if (pair.length !== 2) jsonError(`${p}[${i}]`, "expected a [key, value] pair")
      return [valueOfJson(pair[0], `${p}[${i}][0]`), valueOfJson(pair[1], `${p}[${i}][1]`)] as const
    })),
  described: (j, p) => {
    const pair = jsonArray(j, p)
    if (pair.length !== 2) jsonError(p, "expected [descriptor, value]")
    return Amqp.described(valueOfJson(pair[0], `${p}[0]`), valueOfJson(pair[1], `${p}[1]`))
  }
}
const jsonArray = (json: unknown, path: string): ReadonlyArray<unknown> =>
  Array.isArray(json) ? json : jsonError(path, `expected an array, got ${jsonTypeOf(json)}`)

const valueOfJson = (json: unknown, path: string): AmqpValue => {
  if (json === null || typeof json === "string" || typeof json === "boolean" || typeof json === "number") return json
  if (Array.isArray(json)) return json.map((e, i) => valueOfJson(e, `${path}[${i}]`))
  const keys = Object.keys(json as object)
  const read = keys.length === 1 && Object.hasOwn(TYPED_JSON, keys[0]!) ? TYPED_JSON[keys[0]!] : undefined
  if (read === undefined) {
    return jsonError(path, `expected a JSON value or an object with one key naming an AMQP type (long, ulong, timestamp, binary, uuid, symbol, ...), got keys ${JSON.stringify(keys)}`)
  }
  return read((json as Record<string, unknown>)[keys[0]!], `${path}.${keys[0]}`)
}

const jsonMessageId = (json: unknown, path: string): MessageId => {
  if (typeof json === "string") return json
  const value = valueOfJson(json, path)
  if (value instanceof Uint8Array || tagged(value, "uuid")) return value
  if (tagged(value, "ulong")) return value.value as bigint
  return jsonError(path, "expected a string, {\"ulong\": ...}, {\"uuid\": ...} or {\"binary\": ...}")
}

const PROPERTY_FIELDS: Record<keyof MessageProperties, (json: unknown, path: string) => unknown> = {
  messageId: jsonMessageId,
  userId: jsonBase64,
  to: jsonString,
  subject: jsonString,
  replyTo: jsonString,
  correlationId: jsonMessageId,
  contentType: jsonString,
  contentEncoding: jsonString,
  absoluteExpiryTime: jsonDate,
  creationTime: jsonDate,
  groupId: jsonString,
  groupSequence: jsonNumber,
  replyToGroupId: jsonString
}
const HEADER_FIELDS: Record<keyof MessageHeader, (json: unknown, path: string) => unknown> = {
  durable: (j, p) => typeof j === "boolean" ? j : jsonError(p, "expected a boolean"),
  priority: jsonNumber,
  ttl: jsonNumber,
  firstAcquirer: (j, p) => typeof j === "boolean" ? j : jsonError(p, "expected a boolean"),
  deliveryCount: jsonNumber
}
const jsonFields = <A>(json: unknown, path: string, fields: Record<string, (json: unknown, path: string) => unknown>): A => {
  if (!isRecord(json)) return jsonError(path, `expected an object, got ${jsonTypeOf(json)}`)
  return Object.fromEntries(Object.entries(json).flatMap(([k, v]) => {
    const read = Object.hasOwn(fields, k) ? fields[k] : undefined
    if (read === undefined) return jsonError(`${path}.${k}`, `unknown field (known: ${Object.keys(fields).join(", ")})`)
    return v === null ? [] : [[k, read(v, `${path}.${k}`)]]
  })) as A
}
const jsonRecord = (json: unknown, path: string): Record<string, AmqpValue> => {
  if (!isRecord(json)) return jsonError(path, `expected an object, got ${jsonTypeOf(json)}`)
  return Object.fromEntries(Object.entries(json).map(([k, v]) => [k, valueOfJson(v, `${path}.${k}`)]))
}

const deepFreeze = <A>(value: A): A => {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value) && !ArrayBuffer.isView(value)) {
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key])
    Object.freeze(value)
  }
  return value
}

const MESSAGE_FIELDS = new Set([
  "offset", "partition", "body", "encoding", "properties", "applicationProperties", "messageAnnotations", "header",
  "amqpValue", "amqpSequence", "filterValue"
])

const outgoingOfJson = (json: unknown): OutgoingMessage => {
  if (!isRecord(json)) return jsonError("the line", `expected a JSON object, got ${jsonTypeOf(json)}`)
  for (const key of Object.keys(json)) {
    if (!MESSAGE_FIELDS.has(key)) jsonError(key, `unknown field (known: ${[...MESSAGE_FIELDS].join(", ")})`)
  }
  const encoding = json.encoding
  if (encoding !== undefined && encoding !== "base64" && encoding !== "utf8") jsonError("encoding", "expected \"base64\" or \"utf8\"")
  const hasBody = json.amqpValue !== undefined || json.amqpSequence !== undefined
  if (json.body === undefined && !hasBody) jsonError("body", "missing (or give amqpValue or amqpSequence)")
  const body = json.body === undefined ? "" : encoding === "base64" ? jsonBase64(json.body, "body") : jsonString(json.body, "body")
  const message: { -readonly [K in keyof OutgoingMessage]: OutgoingMessage[K] } = { body }
  if (json.properties !== undefined) message.properties = jsonFields(json.properties, "properties", PROPERTY_FIELDS)
  if (json.applicationProperties !== undefined) message.applicationProperties = jsonRecord(json.applicationProperties, "applicationProperties")
  if (json.messageAnnotations !== undefined) message.messageAnnotations = jsonRecord(json.messageAnnotations, "messageAnnotations")
  if (json.header !== undefined) message.header = jsonFields(json.header, "header", HEADER_FIELDS)
  if (json.amqpValue !== undefined) message.amqpValue = valueOfJson(json.amqpValue, "amqpValue")
  if (json.amqpSequence !== undefined) {
    message.amqpSequence = jsonArray(json.amqpSequence, "amqpSequence").map((s, i) =>
      jsonArray(s, `amqpSequence[${i}]`).map((v, j) => valueOfJson(v, `amqpSequence[${i}][${j}]`))
    )
  }
  if (json.filterValue !== undefined) message.filterValue = jsonString(json.filterValue, "filterValue")
  // Encoded now, so that a value AMQP cannot carry is refused with the line, not later; frozen, so
  // that the encoding kept for `send` stays true.
  const frozen = deepFreeze(message)
  encoded.set(frozen, encodeOutgoing(frozen))
  return frozen
}

// ---------------------------------------------------------------------------------------------
// Bodies through a Schema
// ---------------------------------------------------------------------------------------------

/** A ParseError in one line. */
const parseErrorText = (error: ParseResult.ParseError) =>
  ParseResult.TreeFormatter.formatErrorSync(error).replace(/\s*\n\s*/g, " ")

/** Decodes a message's body with a Schema: the message with its `value`, or why it does not decode. */
const bodyDecoder = (schema: Schema.Schema<any, any, never>, format: BodyFormat = "json") => {
  const decode = Schema.decodeUnknownEither(schema)
  return (message: StreamMessage): StreamMessage | string => {
    let input: unknown
    try {
      input = format === "bytes" ? message.body : format === "text" ? strictText.decode(message.body) : JSON.parse(strictText.decode(message.body))
    } catch (error) {
      return `the body is not ${format === "json" ? "JSON" : "UTF-8 text"} (${errorText(error)})`
    }
    const decoded = decode(input)
    return Either.isRight(decoded)
      ? { ...message, value: decoded.right } as DecodedMessage<unknown>
      : `the body does not match the schema: ${parseErrorText(decoded.left)}`
  }
}

/** Encodes a value with a Schema into a body (in `format`); throws an AmqpCodecError saying why not. */
const bodyEncoder = (schema: Schema.Schema<any, any, never>, format: BodyFormat = "json") => {
  const encode = Schema.encodeEither(schema)
  return (value: unknown): Uint8Array | string => {
    const encoded = encode(value)
    if (Either.isLeft(encoded)) return codecError(`the value does not encode with the schema: ${parseErrorText(encoded.left)}`)
    const form = encoded.right
    if (format === "json") {
      const json = JSON.stringify(form)
      return json === undefined ? codecError("the schema's encoded form is not JSON") : json
    }
    if (format === "text") return typeof form === "string" ? form : codecError("bodyFormat \"text\" needs a schema whose encoded form is a string")
    return form instanceof Uint8Array ? form : codecError("bodyFormat \"bytes\" needs a schema whose encoded form is a Uint8Array")
  }
}

// ---------------------------------------------------------------------------------------------
// Real broker: rabbitmq-stream-js-client, supervised
// ---------------------------------------------------------------------------------------------

/** The client's delivered message (its type lives on a deep path; derive it instead). */
type Message = Parameters<Parameters<Client["declareConsumer"]>[1]>[0]

/** Bound on one connection attempt and on one attempt of every other broker call, by default. */
const DEFAULT_TIMEOUT = Duration.seconds(10)
/** Closing a publisher, consumer or connection: short, so that a stop never waits long on a dead broker. */
const RELEASE_TIMEOUT = Duration.seconds(5)

/**
 * The client throws from its socket handlers and leaves rejected promises unhandled (a wrong
 * password, an unknown vhost, a server-sent Close): by default either kills the process. While at
 * least one StreamBroker layer is open, listeners on the process hand such errors - recognised by
 * the client's files in their stack - to the layers: to their connection attempts if any is under
 * way (it fails), else to their open connections (which are replaced). Nothing in an error says
 * which connection it came from, so every open layer reconnects. Any other error is left to the
 * application's own listeners or, when it has none, thrown again as if this module were not
 * listening (the runtime prints it and exits). The listeners go when the last layer closes.
 */
interface ClientFailureTarget {
  readonly connecting: Set<(error: unknown) => void>
  readonly open: (error: unknown) => void
}
const clientFailureTargets = new Set<ClientFailureTarget>()

const SOCKET_NOISE = /ERR_SOCKET_CLOSED|ECANCELED|Socket is closed/

const isClientError = (error: unknown): boolean =>
  error instanceof Error &&
  ((typeof error.stack === "string" && error.stack.includes("rabbitmq-stream-js-client")) || tunedClientErrors.has(error))

const processListeners = {
  uncaughtException: (error: unknown) => onProcessError("uncaughtException", error),
  unhandledRejection: (error: unknown) => onProcessError("unhandledRejection", error)
}
const setProcessListeners = (on: boolean) => {
  for (const [event, listener] of Object.entries(processListeners)) {
    if (on) process.on(event, listener)
    else process.off(event, listener)
  }
}

const onProcessError = (event: keyof typeof processListeners, error: unknown) => {
  const connecting = [...clientFailureTargets].flatMap((target) => [...target.connecting])
  if (isClientError(error)) {
    if (connecting.length > 0) for (const fail of connecting) fail(error)
    else for (const target of clientFailureTargets) target.open(error)
    return
  }
  // On Bun and Deno a failed TLS handshake also rejects a second, internal promise (a closed or
  // cancelled socket, no client frame in its stack): the attempt fails on its own, so drop it.
  if (connecting.length > 0 && SOCKET_NOISE.test(`${(error as { code?: string })?.code} ${errorText(error)}`)) return
  if (process.listenerCount(event) > 1) return // the application handles it
  setProcessListeners(false)
  clientFailureTargets.clear()
  setImmediate(() => {
    throw error
  })
}

const watchClientFailures = (target: ClientFailureTarget) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      if (clientFailureTargets.size === 0) setProcessListeners(true)
      clientFailureTargets.add(target)
    }),
    () =>
      Effect.sync(() => {
        if (clientFailureTargets.delete(target) && clientFailureTargets.size === 0) setProcessListeners(false)
      })
  )

/**
 * A client promise as an interruptible effect. The client's promises may never settle (a request
 * on a dead socket), so waiting for one can always be interrupted or timed out, even inside an
 * acquire or a finalizer. What settles after it was abandoned goes to `orphan` (to close a
 * connection or consumer that nobody will release).
 */
const fromClient = <A, E>(
  evaluate: () => Promise<A>,
  onError: (error: unknown) => E,
  orphan?: (value: A) => void
): Effect.Effect<A, E> =>
  Effect.async<A, E>((resume) => {
    let abandoned = false
    let promise: Promise<A>
    try {
      promise = evaluate()
    } catch (error) {
      return resume(Effect.fail(onError(error)))
    }
    promise.then(
      (value) => (abandoned ? orphan?.(value) : resume(Effect.succeed(value))),
      (error) => (abandoned ? undefined : resume(Effect.fail(onError(error))))
    )
    return Effect.sync(() => {
      abandoned = true
    })
  })

/**
 * A bounded close that never fails; not waited for once its connection is silent (a heartbeat and
 * a second without anything: the broker will not answer it). Bounded in a finalizer too: the wait
 * itself is interruptible (a finalizer is not, and a timeout there would wait for the close).
 */
const release = (close: () => Promise<unknown>, connection?: unknown): Effect.Effect<void> =>
  fromClient(close, () => undefined).pipe(
    Effect.raceFirst(
      connection === undefined
        ? Effect.never
        : Effect.repeat(Effect.sync(() => isSilent(connection, 1)), { until: (silent) => silent, schedule: Schedule.spaced("100 millis") })
    ),
    Effect.interruptible,
    Effect.timeout(RELEASE_TIMEOUT),
    Effect.ignore
  )


// ---- the client's private parts ----
//
// What this module uses of rabbitmq-stream-js-client's private parts, gathered in
// `clientInternals` below. Written for 1.0.0 (pinned in package.json): what reaches inside checks
// the version and the shape it needs, and otherwise leaves the client as it is (the plain path),
// or says so in one line.

/**
 * The connection-level StoreOffset of the locator connection. The public one lives on consumers
 * and treats `0n` as "my local offset" (0n is falsy): this one stores exactly the value given, 0
 * included.
 */
const storeOffsetExactly = (client: Client, params: { stream: string; reference: string; offsetValue: bigint }): Promise<unknown> => {
  const locator = (client as unknown as { locatorConnection?: Partial<LocatorConnection> }).locatorConnection
  return typeof locator?.storeOffset === "function"
    ? locator.storeOffset.call(locator, params)
    : Promise.reject(
      new Error(`rabbitmq-stream-js-client ${CLIENT_VERSION} has no connection-level StoreOffset (written for ${CLIENT_VERSION_WRITTEN_FOR})`)
    )
}

/**
 * How long nothing has arrived on a connection, and its negotiated heartbeat (0: none), in ms:
 * the client records when it last read from the socket. Undefined without that shape.
 */
const connectionLiveness = (connection: unknown): { readonly silentMs: number; readonly heartbeatMs: number } | undefined => {
  const heartbeat = (connection as { heartbeat?: { lastMessageReceived?: unknown; interval?: unknown } } | undefined)?.heartbeat
  const last = heartbeat?.lastMessageReceived
  if (!(last instanceof Date) || typeof heartbeat?.interval !== "number") return undefined
  return { silentMs: Date.now() - last.getTime(), heartbeatMs: heartbeat.interval }
}

/**
 * Drops the connections the client closed from its pool. After a refused declaration (a disk
 * alarm refuses publishers) the client closes the connection it declared on but keeps it in the
 * pool, where the next declaration for that stream would find it and write on a closed socket.
 */
const dropClosedConnections = (client: unknown): void => {
  const pool = (client as { pool?: { connectionsMap?: unknown } } | undefined)?.pool
  const map = pool?.connectionsMap
  if (CLIENT_VERSION !== CLIENT_VERSION_WRITTEN_FOR || !(map instanceof Map)) return
  const open = (c: unknown) => (c as { socket?: { readyState?: unknown } } | undefined)?.socket?.readyState === "open"
  for (const [key, connections] of map) if (Array.isArray(connections)) map.set(key, connections.filter(open))
}

/**
 * Ends every connection of a client at once, its locator's and its pool's, without a Close: the
 * broker then drops their publishers and subscriptions. For a replaced client, after its bounded
 * close: a close that failed half-way (its locator gone) left connections open, and a single
 * active subscription left on one stays in its group - made active, it takes the partition's
 * messages to nobody.
 */
const destroyAllConnections = (client: unknown): void => {
  const owner = client as { locatorConnection?: unknown; pool?: { connectionsMap?: unknown }; consumers?: unknown; publishers?: unknown } | undefined
  const connections = new Set<unknown>([owner?.locatorConnection])
  const map = owner?.pool?.connectionsMap
  if (map instanceof Map) for (const list of map.values()) if (Array.isArray(list)) list.forEach((c) => connections.add(c))
  for (const entities of [owner?.consumers, owner?.publishers]) {
    if (entities instanceof Map) for (const entity of entities.values()) connections.add((entity as { connection?: unknown })?.connection)
  }
  connections.forEach(destroyConnection)
}

/** Ends a connection's socket at once (nothing is sent). */
const destroyConnection = (connection: unknown): void => {
  const socket = (connection as { socket?: { destroy?: unknown } } | undefined)?.socket
  if (typeof socket?.destroy === "function") (socket as { destroy: () => void }).destroy()
}

/** The connection a publisher, a consumer or the client (its locator) uses. */
const connectionOf = (owner: unknown, field: "connection" | "locatorConnection"): unknown =>
  typeof owner === "object" && owner !== null ? (owner as Record<string, unknown>)[field] : undefined

/**
 * The `active` flag of the broker's consumer updates for one consumer, as the client decodes
 * them (it calls the update listener without it). One listener per connection, dispatching by
 * subscription id; the client's own handler runs first, and defers to the listener, which reads
 * the flag a macrotask later. Without the expected shape, nothing is watched.
 */
const watchConsumerUpdates = (consumer: unknown, onUpdate: (active: boolean) => void): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const connection = clientInternals.connectionOf(consumer, "connection") as { on?: unknown } | undefined
      const id = (consumer as { consumerId?: unknown } | undefined)?.consumerId
      if (CLIENT_VERSION !== CLIENT_VERSION_WRITTEN_FOR || typeof connection?.on !== "function" || typeof id !== "number") {
        return undefined
      }
      let routes = consumerUpdateRoutes.get(connection)
      if (routes === undefined) {
        const table = new Map<number, (active: boolean) => void>()
        routes = table
        consumerUpdateRoutes.set(connection, table)
        ;(connection.on as (event: string, listener: (query: { subscriptionId: number; active: number }) => void) => void)
          .call(connection, "consumer_update_query", (query) => table.get(query.subscriptionId)?.(query.active === 1))
      }
      routes.set(id, onUpdate)
      return { routes, id }
    }),
    (watched) => Effect.sync(() => void watched?.routes.delete(watched.id))
  )

/**
 * Takes a consumer's delivered chunks over from the client: each decoded chunk goes to `onChunk`
 * whole, synchronously where the connection's bytes are read, instead of through the client's
 * delivery handler (which hands its messages over one per microtask, two promises each, and asks
 * its credit policy). The taker then grants credit itself (`grantCredit`). Needs `tune` on the
 * consumer's connection; false when the shape is not the expected one (the client's path stays).
 */
const routeDeliveries = (consumer: unknown, onChunk: (messages: Array<StreamMessage>) => void): Effect.Effect<boolean, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const connection = clientInternals.connectionOf(consumer, "connection")
      const id = (consumer as { consumerId?: unknown } | undefined)?.consumerId
      if (CLIENT_VERSION !== CLIENT_VERSION_WRITTEN_FOR || !isTunable(connection) || !tuned.has(connection) || typeof id !== "number") {
        return undefined
      }
      const routes = deliveryRoutes.get(connection) ?? new Map<number, (messages: Array<StreamMessage>) => void>()
      deliveryRoutes.set(connection, routes.set(id, onChunk))
      return { routes, id }
    }),
    (routed) => Effect.sync(() => void routed?.routes.delete(routed.id))
  ).pipe(Effect.map((routed) => routed !== undefined))

/**
 * Tunes a connection this module uses (the locator, and those of its publishers and consumers):
 * - no debug formatting on the hot paths. The client builds its debug lines before it calls the
 *   logger, even a silent one: `util.inspect` of every TCP read, of every frame written (after
 *   copying it into an array of numbers), of every delivered chunk and confirm - most of its CPU
 *   (README, Benchmark). `send` is replaced by the same code without its two debug lines;
 *   `received` runs the client's decoder with `util.inspect`'s default options set to cheap
 *   ones for that synchronous call only, and restored after it. Inside run the client's
 *   decoding and the synchronous start of its listeners (this module's: the confirm routing,
 *   the delivery handler's first steps; a single-active activation is moved to a later
 *   macrotask); message handlers run on later microtasks. `util.inspect` is not changed for the
 *   rest of the process.
 * - TCP_NODELAY for consumers and requests: with more than one chunk of credit out, Nagle's
 *   algorithm holds back the small credit frames (13k msg/s measured). Not for publishers: there
 *   Nagle's coalescing of frames makes the broker write larger chunks, which every consumer of
 *   the stream reads faster (a stream `send` wrote read at 0.30 of a raw loop's with it, 0.43
 *   without; measured).
 */
const tuneConnection = (connection: unknown, options: { readonly noDelay: boolean }): void => {
  if (CLIENT_VERSION !== CLIENT_VERSION_WRITTEN_FOR || !isTunable(connection) || tuned.has(connection)) return
  tuned.add(connection)
  if (options.noDelay) connection.socket.setNoDelay?.(true)
  connection.send = function(this: TunableConnection, cmd) {
    return new Promise<void>((resolve, reject) => {
      const body = cmd.toBuffer(this.getBufferSizeParams())
      // As the client does: a frame for a socket that is not open (a consumer closing) is dropped.
      if (this.socket.readyState === "open") {
        this.socket.write(body, (err) => (err ? reject(fromTunedClient(err)) : resolve()))
      }
    })
  }
  connection.received = frameSplitter(connection)
}

/**
 * What a tuned connection does with the bytes it reads: splits them into frames. A Deliver is
 * decoded by this module (`decodeDeliver`: every AMQP 1.0 type, the offsets of sub-entry batches,
 * and what cannot be read as an UndecodableMessage at its offset, where the client's decoder
 * throws: a poison message looked like a lost connection, and resubscribing met it again) and
 * handed to the client's delivery listeners as the client would. Every other frame goes whole to
 * the client's decoder. Bytes it held back are taken over.
 */
const frameSplitter = (connection: TunableConnection) => {
  const frames = { pending: connection.decoder.lastData ?? Buffer.alloc(0) }
  connection.decoder.lastData = Buffer.alloc(0)
  return function(this: TunableConnection, data: Buffer): void {
    const buffer = frames.pending.length === 0 ? data : Buffer.concat([frames.pending, data])
    let at = 0
    // A frame the client fails on does not hold back the ones after it; its error is thrown at
    // the end (the connection is then replaced, see `onProcessError`).
    let failure: { readonly error: unknown } | undefined
    while (buffer.length - at >= 4) {
      const size = buffer.readUInt32BE(at)
      if (buffer.length - at - 4 < size) break
      const start = at
      at += 4 + size
      try {
        if (buffer.readUInt16BE(start + 4) === DELIVER_KEY) {
          const frame = buffer.subarray(start + 4, at)
          const delivery = decodeDeliver(frame)
          const route = deliveryRoutes.get(this)?.get(delivery.subscriptionId)
          if (route !== undefined) route(delivery.messages)
          else this.decoder.emitter.emit(frame.readUInt16BE(2) === 2 ? "deliverV2" : "deliverV1", delivery)
        } else {
          const whole = buffer.subarray(start, at)
          withCheapInspect(() => this.decoder.add(whole, (type) => this.getCompression(type)))
        }
      } catch (error) {
        failure ??= { error }
      }
    }
    frames.pending = buffer.subarray(at)
    if (failure !== undefined) throw failure.error instanceof Error ? fromTunedClient(failure.error) : failure.error
  }
}

/**
 * Grants a consumer credits: subscriptions are made with none (`orderedPrefetch(depth, { initial: 0 })`),
 * so that no chunk arrives before `tune` has taken over its connection's decoding.
 */
const grantCredit = (consumer: unknown, credit: number): Promise<void> => {
  const connection = clientInternals.connectionOf(consumer, "connection") as Partial<TunableConnection> | undefined
  const id = (consumer as { consumerId?: unknown } | undefined)?.consumerId
  if (typeof connection?.send !== "function" || typeof id !== "number") {
    return Promise.reject(new Error(`rabbitmq-stream-js-client ${CLIENT_VERSION}: cannot grant credit (written for ${CLIENT_VERSION_WRITTEN_FOR})`))
  }
  const frame = Buffer.alloc(11)
  frame.writeUInt32BE(7, 0)
  frame.writeUInt16BE(CREDIT_KEY, 4)
  frame.writeUInt16BE(1, 6)
  frame.writeUInt8(id, 8)
  frame.writeUInt16BE(credit, 9)
  return connection.send.call(connection, { key: CREDIT_KEY, toBuffer: () => frame })
}

/** Writes frames on a publisher's connection (the client's `send` checks that the socket is open). */
const writeFrames = (publisher: unknown, frames: ReadonlyArray<Uint8Array>): Promise<unknown> => {
  const connection = clientInternals.connectionOf(publisher, "connection") as Partial<TunableConnection> | undefined
  if (typeof connection?.send !== "function") {
    return Promise.reject(new Error(`rabbitmq-stream-js-client ${CLIENT_VERSION}: cannot write frames (written for ${CLIENT_VERSION_WRITTEN_FOR})`))
  }
  const send = connection.send
  return Promise.all(frames.map((frame) => send.call(connection, { key: PUBLISH_KEY, toBuffer: () => frame })))
}

/** The largest frame the publisher's connection may send (negotiated at connect), and whether it filters. */
const publisherLimits = (publisher: unknown): { readonly frameMax: number; readonly filtering: boolean } => {
  const connection = clientInternals.connectionOf(publisher, "connection") as
    | { readonly maxFrameSize?: unknown; readonly isFilteringEnabled?: unknown }
    | undefined
  const frameMax = Number(connection?.maxFrameSize)
  return {
    frameMax: Number.isSafeInteger(frameMax) && frameMax > 0 ? frameMax : 1_048_576,
    filtering: connection?.isFilteringEnabled === true
  }
}

/** The client's private parts this module uses, in one place: each call site says it reaches inside. */
const clientInternals = {
  storeOffset: storeOffsetExactly,
  liveness: connectionLiveness,
  dropClosedConnections,
  destroyAll: destroyAllConnections,
  destroy: destroyConnection,
  connectionOf,
  watchConsumerUpdates,
  routeDeliveries,
  tune: tuneConnection,
  grantCredit,
  writeFrames,
  limits: publisherLimits
}

const FILTERING_UNSUPPORTED = "the broker does not support stream filtering (RabbitMQ 3.13 or later has it): publish without filter values, or upgrade it"

const PUBLISH_KEY = 0x0002
const DELIVER_KEY = 0x0008
const CREDIT_KEY = 0x0009

interface LocatorConnection {
  storeOffset(params: { stream: string; reference: string; offsetValue: bigint }): Promise<unknown>
}

/** The members of the client's Connection that `tune` uses (1.0.0). */
interface TunableConnection {
  socket: {
    readonly readyState: string
    setNoDelay?: (noDelay: boolean) => unknown
    write(data: Uint8Array, callback: (err?: Error | null) => void): unknown
  }
  decoder: {
    add(data: Uint8Array, getCompression: (type: unknown) => unknown): void
    lastData?: Buffer
    readonly emitter: { emit(event: string, value: unknown): boolean }
  }
  getCompression(type: unknown): unknown
  getBufferSizeParams(): unknown
  send(cmd: { readonly key: number; toBuffer(params: unknown): Uint8Array }): Promise<void>
  received(data: Buffer): void
}
const tuned = new WeakSet<object>()
const consumerUpdateRoutes = new WeakMap<object, Map<number, (active: boolean) => void>>()
/** Per tuned connection, by subscription id: where its delivered chunks go (`routeDeliveries`). */
const deliveryRoutes = new WeakMap<object, Map<number, (messages: Array<StreamMessage>) => void>>()
/** Errors raised by replaced client code: the client's, although its files are not in their stack. */
const tunedClientErrors = new WeakSet<object>()
const fromTunedClient = (error: Error) => {
  tunedClientErrors.add(error)
  return error
}
const isTunable = (connection: unknown): connection is TunableConnection => {
  const c = connection as Partial<Record<keyof TunableConnection, unknown>> | undefined
  return typeof c === "object" && c !== null && typeof c.send === "function" && typeof c.received === "function" &&
    typeof c.getBufferSizeParams === "function" && typeof c.getCompression === "function" &&
    typeof (c.decoder as { add?: unknown } | undefined)?.add === "function" &&
    typeof (c.decoder as { emitter?: { emit?: unknown } } | undefined)?.emitter?.emit === "function" &&
    typeof (c.socket as { write?: unknown } | undefined)?.write === "function"
}

/** `util.inspect`'s default options during `f` (synchronous) only: cheap to format, restored after. */
const withCheapInspect = <A>(f: () => A): A => {
  const options = inspect.defaultOptions
  const saved = { depth: options.depth, maxArrayLength: options.maxArrayLength, maxStringLength: options.maxStringLength }
  Object.assign(options, CHEAP_INSPECT)
  try {
    return f()
  } finally {
    Object.assign(options, saved)
  }
}
const CHEAP_INSPECT = { depth: 0, maxArrayLength: 0, maxStringLength: 0 }

const CLIENT_VERSION_WRITTEN_FOR = "1.0.0"
/** The installed client's version, as its package.json says. */
const CLIENT_VERSION: string = (() => {
  try {
    // `url` through a plain type: Deno's checker (JSR) sees no `url` on `ImportMeta` with Node's types.
    const { url } = import.meta as { readonly url: string }
    return String(createRequire(url)("rabbitmq-stream-js-client/package.json").version)
  } catch {
    return "(unknown version)"
  }
})()

/**
 * Credits for an ordered prefetch: `depth` chunks are granted ahead, so the broker sends the next
 * chunk while one is handled, yet a chunk is handled only after the one before it (the client
 * hands each delivered chunk to its own async task, which would interleave them), and a credit
 * goes back only when a chunk is handled: at most `depth` chunks wait (backpressure). Relies on
 * the client calling `onChunkReceived` in the order chunks arrive (1.0.0 does, synchronously).
 */
const orderedPrefetch = (
  depth: number,
  consumer: {
    readonly onChunkEnd: () => void
    readonly isOpen: () => boolean
    /** Credits granted with the subscription (default `depth`); 0: granted later (`clientInternals.grantCredit`). */
    readonly initial?: number | undefined
  } = { onChunkEnd: () => {}, isOpen: () => true }
): CreditPolicy => {
  if (CLIENT_VERSION !== CLIENT_VERSION_WRITTEN_FOR) return undefined as unknown as CreditPolicy // the client's default
  let previous: Promise<void> = Promise.resolve()
  const handled: Array<() => void> = []
  return {
    onSubscription: () => consumer.initial ?? depth,
    onChunkReceived: () => {
      const before = previous
      previous = new Promise<void>((resolve) => handled.push(resolve))
      return before
    },
    onChunkCompleted: (requestCredits: (howMany: number) => Promise<void>) => {
      consumer.onChunkEnd()
      handled.shift()?.()
      // No credit for a consumer being closed: on a closing socket the request fails (EPIPE), and
      // the client would leave that rejection unhandled. A failing socket is reported by the
      // connection's own listeners, so a failed credit request needs no second report.
      return consumer.isOpen() ? requestCredits(1).catch(() => undefined) : Promise.resolve()
    },
    requestCredits: (requestCredits: (howMany: number) => Promise<void>, amount: number) => requestCredits(amount)
  } as unknown as CreditPolicy
}
type CreditPolicy = NonNullable<Parameters<Client["declareConsumer"]>[0]["creditPolicy"]>
/** Chunks granted ahead by a consumer. */
const PREFETCH_CHUNKS = 2

/**
 * What this module does to the client it creates, for a benchmark to do the same to a plain client.
 */
const clientTuning = {
  tuneClient: (client: Client): void =>
    clientInternals.tune(clientInternals.connectionOf(client, "locatorConnection"), { noDelay: true }),
  tunePublisher: (publisher: unknown): void =>
    clientInternals.tune(clientInternals.connectionOf(publisher, "connection"), { noDelay: false }),
  tuneConsumer: (consumer: unknown): void =>
    clientInternals.tune(clientInternals.connectionOf(consumer, "connection"), { noDelay: true }),
  creditPolicy: (): CreditPolicy => orderedPrefetch(PREFETCH_CHUNKS)
}

/** What the real broker's parts share: the supervised client, requests on it, confirm routes. */
interface ClientConnection {
  readonly supervisor: ConnectionSupervisor<Client>
  readonly policy: Schedule.Schedule<unknown, StreamError>
  /**
   * One broker request: on the client in use (reconnecting first if it was lost), bounded by the
   * request timeout, tried again under the retry policy while the failure is transient. A
   * request that times out or hits a dead socket marks the client lost.
   */
  readonly call: <A>(
    operation: string,
    f: (client: Client) => Promise<A>,
    orphan?: (value: A) => void
  ) => Effect.Effect<A, BrokerError>
  /**
   * One request on a resource of `client` (a publisher's): bounded by the request timeout and not
   * retried, since no other client has that resource (retried on a new client, it failed there
   * again and again, and each failure took the new client for lost); a timeout or a dead socket
   * marks that client lost, and the caller starts over on the client in use.
   */
  readonly callOn: <A>(client: Client, operation: string, f: () => Promise<A>) => Effect.Effect<A, BrokerError>
  /** Ties a publisher or consumer to its client: when the client is replaced, `onLost` is told why. */
  readonly attach: (client: Client, onLost: (reason: string) => void) => Effect.Effect<void, never, Scope.Scope>
  /** Watches a connection of the client (a publisher's, a consumer's) for silence, for the scope's lifetime. */
  readonly watch: (client: Client, connection: unknown) => Effect.Effect<void, never, Scope.Scope>
  /** Confirms arrive on the connection, not the publisher: routed by publisher id and connection. */
  readonly confirmRoutes: Map<string, Queue.Queue<Confirmation>>
  readonly streamExists: (stream: string) => Effect.Effect<boolean, BrokerError>
  readonly requireStream: (stream: string) => Effect.Effect<void, BrokerError | StreamNotFound>
}

const makeClientBroker = (config: ConnectionConfig): Effect.Effect<StreamBrokerShape, ConnectionError, Scope.Scope> =>
  Effect.map(connectClient(config), (connection): StreamBrokerShape => ({
    declareStream: (stream, retention) =>
      connection.call(`declare stream "${stream}"`, (c) => c.createStream({ stream, arguments: streamArguments(retention) }))
        .pipe(
          Effect.asVoid,
          Effect.catchIf((e) => e.code === 17, () => Effect.fail(new StreamPreconditionFailed({ stream })))
        ),
    streamExists: connection.streamExists,
    deleteStream: (stream) =>
      connection.call(`delete stream "${stream}"`, (c) => c.deleteStream({ stream })).pipe(
        Effect.asVoid,
        Effect.catchIf((e) => e.code === 2, () => Effect.fail(new StreamNotFound({ stream })))
      ),
    declareSuperStream: (superStream, bindingKeys, retention) =>
      declareSuperStreamWith(superStream, bindingKeys, {
        partitions: clientPartitions(connection, superStream),
        create: connection.call(
          `declare super stream "${superStream}"`,
          (c) => c.createSuperStream({ streamName: superStream, arguments: streamArguments(retention) }, [...bindingKeys])
        )
      }),
    partitions: (superStream) => clientPartitions(connection, superStream),
    route: (superStream, key) =>
      connection.call(
        `route "${key}" on super stream "${superStream}"`,
        (c) => c.routeQuery({ routingKey: key, superStream })
      ).pipe(Effect.catchIf((e) => e.code === 2, () => Effect.fail(new SuperStreamNotFound({ superStream })))),
    deleteSuperStream: (superStream) =>
      connection.call(`delete super stream "${superStream}"`, (c) => c.deleteSuperStream({ streamName: superStream })).pipe(
        Effect.asVoid,
        Effect.catchIf((e) => e.code === 2, () => Effect.fail(new SuperStreamNotFound({ superStream })))
      ),
    publisher: (stream, options) => clientPublisher(connection, stream, options),
    subscribe: (options) => clientSubscribe(connection, options),
    bounds: (stream) => clientBounds(connection, stream),
    // Once, on the client in use, never retried nor said: the lag's refresh asks again in a while
    // (retried, it waited out a stream without a leader beside the workflow, and said so too).
    lastChunk: (stream) =>
      Effect.suspend(() => {
        const client = connection.supervisor.current()
        const operation = `stats of "${stream}"`
        return client === undefined
          ? Effect.fail(new BrokerError({ operation, reason: "not connected" }))
          : Effect.map(connection.callOn(client, operation, () => client.streamStatsRequest(stream)), (stats) =>
            stats.lastChunkId < 0n ? Option.none<bigint>() : Option.some(stats.lastChunkId))
      }),
    storeOffset: (reference, stream, offset) =>
      connection.call(
        `store offset ${offset} for "${reference}" on "${stream}"`,
        (c) => clientInternals.storeOffset(c, { stream, reference, offsetValue: offset })
      ).pipe(Effect.asVoid),
    queryOffset: (reference, stream) =>
      connection.call(`query the offset of "${reference}" on "${stream}"`, (c) => c.queryOffset({ reference, stream })).pipe(
        Effect.map(Option.some),
        Effect.catchIf((e) => e.code === 19, () => Effect.succeed(Option.none()))
      ),
    ...supervisedFields(connection.supervisor, connection.policy)
  }))

const clientPartitions = (connection: ClientConnection, superStream: string) =>
  connection.call(`query the partitions of super stream "${superStream}"`, (c) => c.queryPartitions({ superStream })).pipe(
    Effect.catchIf((e) => e.code === 2, () => Effect.fail(new SuperStreamNotFound({ superStream })))
  )

/** The supervised client of one layer, connected once before the layer is up. */
const connectClient = (config: ConnectionConfig): Effect.Effect<ClientConnection, ConnectionError, Scope.Scope> =>
  Effect.gen(function*() {
    const requestTimeout = Duration.decode(config.requestTimeout ?? DEFAULT_TIMEOUT)
    const policy = config.retry ?? retryFor(DEFAULT_RETRY_FOR)
    yield* checkConnectionConfig(config)
    const confirmRoutes = new Map<string, Queue.Queue<Confirmation>>()
    // What each client carries (publishers, consumers): when the client is replaced, they fail with
    // ConnectionLost (closing a client does not call their listeners), so their workflows move on.
    const attached = new Map<Client, Set<(reason: string) => void>>()
    const connecting = new Set<(error: unknown) => void>()
    const hooks: ConnectHooks = {
      connecting,
      confirmRoutes,
      lost: (client, reason) => supervisor.lost(client, reason),
      first: () => !supervisor.everConnected()
    }
    const supervisor: ConnectionSupervisor<Client> = yield* superviseConnection({
      where: describeConnection(config),
      policy,
      connect: (attempt) => connectOnce(config, attempt, hooks),
      close: (client, reason) =>
        Effect.suspend(() => {
          const carried = attached.get(client) ?? new Set()
          attached.delete(client)
          for (const onLost of carried) onLost(reason ?? "the connection was closed")
          return Effect.ensuring(
            release(() => client.close(), clientInternals.connectionOf(client, "locatorConnection")),
            Effect.sync(() => clientInternals.destroyAll(client))
          )
        })
    })
    yield* watchClientFailures({
      connecting,
      open: (error) => supervisor.loseCurrent(`the client failed: ${errorText(error)}`)
    })
    const watched = new Map<Client, Map<unknown, number>>()
    yield* Effect.forkScoped(watchdog(supervisor, watched))
    yield* supervisor.client

    const call = supervisedCall(supervisor, policy, requestTimeout)

    const streamExists = (stream: string) =>
      call(`query metadata of "${stream}"`, async (c) => {
        const [metadata] = await c.queryMetadata({ streams: [stream] })
        // 6: the stream exists but has no leader right now (a cluster electing one): try again.
        if (metadata?.responseCode === 6) throw 6
        return metadata?.streamName === stream && metadata.responseCode === 1
      })

    return {
      supervisor,
      policy,
      call,
      callOn: requestOn(supervisor, requestTimeout),
      watch: (client, watchedConnection) => watchWhileScoped(watched, client, watchedConnection),
      attach: (client, onLost) =>
        Effect.acquireRelease(
          Effect.sync(() => {
            if (!supervisor.isCurrent(client)) return onLost("its connection was replaced")
            attached.set(client, (attached.get(client) ?? new Set()).add(onLost))
          }),
          () => Effect.sync(() => void attached.get(client)?.delete(onLost))
        ),
      confirmRoutes,
      streamExists,
      requireStream: (stream) =>
        Effect.flatMap(streamExists(stream), (exists) => exists ? Effect.void : Effect.fail(new StreamNotFound({ stream })))
    }
  })

/** What a connection config cannot work with, said before any attempt (never retried). */
const checkConnectionConfig = (config: ConnectionConfig): Effect.Effect<void, ConnectionError> =>
  config.endpoints.length === 0
    ? Effect.fail(new ConnectionError({ message: "no endpoint to connect to", retryable: false }))
    : config.sasl === "external" && (config.tls?.cert === undefined || config.tls.key === undefined)
    ? Effect.fail(
      new ConnectionError({
        message: "SASL EXTERNAL takes the TLS client certificate as the identity: give tls.cert and tls.key (--cert, --key)",
        retryable: false
      })
    )
    : Effect.void

/**
 * `ClientConnection.call`: one request on the client in use, bounded by `requestTimeout`; a
 * request that times out or finds the connection gone marks the client lost; a transient failure
 * is tried again under the policy, and what it waits for (an alarm, a leader) is said once.
 */
const supervisedCall = (
  supervisor: ConnectionSupervisor<Client>,
  policy: Schedule.Schedule<unknown, StreamError>,
  requestTimeout: Duration.Duration
): ClientConnection["call"] =>
<A>(operation: string, f: (client: Client) => Promise<A>, orphan?: (value: A) => void) => {
  const said = new Set<string>()
  const on = requestOn(supervisor, requestTimeout)
  return Effect.flatMap(
    Effect.mapError(supervisor.client, (e) => new BrokerError({ operation, reason: e.message, cause: e })),
    (client) =>
      on(client, operation, () => f(client), orphan).pipe(
        Effect.tapError((error) => {
          const waiting = waitingFor(error)
          return waiting === undefined || said.has(waiting)
            ? Effect.void
            : Effect.zipRight(Effect.sync(() => void said.add(waiting)), Effect.logWarning(`${error.message}; ${waiting}`))
        })
      )
  ).pipe(Effect.retry({ schedule: policy, while: isTransient }), Effect.interruptible)
}

/**
 * `ClientConnection.callOn`: one request on `client`, bounded by `requestTimeout`, not retried; a
 * timeout or a dead socket marks that client lost (not the one in use, if it was replaced since).
 */
const requestOn = (supervisor: ConnectionSupervisor<Client>, requestTimeout: Duration.Duration) =>
<A>(client: Client, operation: string, f: () => Promise<A>, orphan?: (value: A) => void): Effect.Effect<A, BrokerError> =>
  fromClient(f, brokerError(operation), orphan).pipe(
    Effect.timeoutFail({
      duration: requestTimeout,
      onTimeout: () =>
        new BrokerError({ operation, reason: `no answer within ${Duration.format(requestTimeout)}`, transient: "connectionGone" })
    }),
    Effect.tapError((error) => Effect.sync(() => error.transient === "connectionGone" && supervisor.lost(client, error.reason)))
  )

/** Counts a connection of `client` among those the watchdog looks at, for the scope's lifetime. */
const watchWhileScoped = (
  watched: Map<Client, Map<unknown, number>>,
  client: Client,
  connection: unknown
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const connections = watched.get(client) ?? new Map<unknown, number>()
      watched.set(client, connections.set(connection, (connections.get(connection) ?? 0) + 1))
    }),
    () =>
      Effect.sync(() => {
        const connections = watched.get(client)
        const n = (connections?.get(connection) ?? 1) - 1
        if (n > 0) connections?.set(connection, n)
        else connections?.delete(connection)
        if (connections?.size === 0) watched.delete(client)
      })
  )

/** What one connection attempt needs from the layer around it. */
interface ConnectHooks {
  /** The failure handlers of attempts under way (the client's process-level errors go there). */
  readonly connecting: Set<(error: unknown) => void>
  readonly confirmRoutes: Map<string, Queue.Queue<Confirmation>>
  readonly lost: (client: Client, reason: string) => void
  /** True before the first connection was made. */
  readonly first: () => boolean
}

const routeKey = (publisherId: number, connectionId: string) => `${publisherId}@${connectionId}`

/**
 * Takes a silent connection as lost: every second, the locator of the client in use and the
 * connections of its publishers and consumers are looked at; one on which nothing arrived for two
 * heartbeats and a second makes the supervisor replace the client (publishers and consumers then
 * fail with ConnectionLost, and the workflows recover). A round that comes late (this process was
 * stalled, and has not read its sockets yet) is skipped.
 */
const watchdog = (supervisor: ConnectionSupervisor<Client>, watched: ReadonlyMap<Client, ReadonlyMap<unknown, number>>) =>
  Effect.gen(function*() {
    let last = Date.now()
    for (;;) {
      yield* Effect.sleep(WATCHDOG_ROUND)
      const now = Date.now()
      const late = now - last > 2 * Duration.toMillis(WATCHDOG_ROUND)
      last = now
      const client = supervisor.current()
      if (late || client === undefined) continue
      const connections = [clientInternals.connectionOf(client, "locatorConnection"), ...(watched.get(client)?.keys() ?? [])]
      const silent = connections.find((c) => isSilent(c))
      if (silent === undefined) continue
      const { heartbeatMs, silentMs } = clientInternals.liveness(silent)!
      supervisor.lost(
        client,
        `the broker stopped answering: nothing arrived for ${Math.round(silentMs / 1000)} s (heartbeats every ${heartbeatMs / 1000} s)`
      )
    }
  })

const WATCHDOG_ROUND = Duration.seconds(1)

/** The heartbeat asked for at connect, in whole seconds (0 would turn heartbeats off). */
const heartbeatSeconds = (config: ConnectionConfig): number =>
  Math.max(1, Math.round(Duration.toSeconds(Duration.decode(config.heartbeat ?? DEFAULT_HEARTBEAT))))

const DEFAULT_HEARTBEAT = Duration.seconds(5)

/**
 * A connection whose broker stopped answering: nothing arrived for two heartbeats and a second.
 * (The broker sends a heartbeat on a connection on which it sent nothing for a while.)
 */
const isSilent = (connection: unknown, heartbeats = 2): boolean => {
  const liveness = clientInternals.liveness(connection)
  return liveness !== undefined && liveness.heartbeatMs > 0 && liveness.silentMs > heartbeats * liveness.heartbeatMs + 1000
}

/** One attempt on one endpoint: bounded, with the client's own failures turned into errors. */
const connectOnce = (config: ConnectionConfig, attempt: number, hooks: ConnectHooks) => {
  const endpoint = config.endpoints[(attempt - 1) % config.endpoints.length]!
  const where = describeConnection(config, [endpoint])
  const connectTimeout = Duration.decode(config.connectTimeout ?? DEFAULT_TIMEOUT)
  const created: { client?: Client } = {}
  return Effect.gen(function*() {
    if (config.tls?.insecureSkipVerify) {
      yield* Effect.logWarning(`TLS certificate verification is OFF for ${where}: anyone on the way can pose as the broker`)
    }
    const connectFailed = yield* Deferred.make<never, ConnectionError>()
    const fail = (error: unknown) => Deferred.unsafeDone(connectFailed, Exit.fail(connectError(where, error, hooks.first(), config.sasl)))
    yield* Effect.acquireRelease(Effect.sync(() => hooks.connecting.add(fail)), () => Effect.sync(() => hooks.connecting.delete(fail)))
    const route = (publisherId: number, connectionId: string) => hooks.confirmRoutes.get(routeKey(publisherId, connectionId))
    return yield* Effect.raceFirst(
      Deferred.await(connectFailed),
      fromClient(
        () =>
          connect({
            hostname: endpoint.host,
            port: endpoint.port,
            username: config.username,
            password: Redacted.value(config.password),
            vhost: config.vhost,
            mechanism: config.sasl === "external" ? "EXTERNAL" : "PLAIN",
            ...(config.loadBalancer ? { addressResolver: { enabled: true, endpoint: { host: endpoint.host, port: endpoint.port } } } : {}),
            ...(config.tls ? { ssl: clientTls(config.tls) } : {}),
            connectionName: config.connectionName ?? "effect-stream-offsets",
            heartbeat: heartbeatSeconds(config),
            listeners: {
              publish_confirm: ({ publisherId, publishingIds }, connectionId) => {
                const queue = route(publisherId, connectionId)
                if (queue) Queue.unsafeOffer(queue, Confirmation.Confirmed({ publishingIds }))
              },
              publish_error: ({ publisherId, publishingError: { code, publishingId } }, connectionId) => {
                const queue = route(publisherId, connectionId)
                if (queue) Queue.unsafeOffer(queue, Confirmation.Rejected({ publishingId, code }))
              },
              connection_closed: () => {
                if (created.client) hooks.lost(created.client, "the connection was closed")
                // Closed before the handshake finished: the client would wait forever. A moment
                // later, so that the error that closed it (a certificate, say), which Deno reports
                // after the close, is the one said.
                else setTimeout(() => fail(new HandshakeClosed()), 200)
              }
            }
          }),
        (cause) => connectError(where, cause, hooks.first(), config.sasl),
        // Connected after we gave up on it: nobody will use it.
        (late) => void late.close().catch(() => undefined)
      )
    )
  }).pipe(
    Effect.scoped,
    Effect.timeoutFail({
      duration: connectTimeout,
      onTimeout: () =>
        new ConnectionError({
          // The first time, a wrong password or vhost is likely (the client never answers then);
          // after that, a broker that does not answer (frozen, overloaded, partitioned away).
          message: `no answer from ${where} within ${Duration.format(connectTimeout)}${
            hooks.first() ? ": check the host, port, username, password and vhost" : ""
          }`,
          retryable: true
        })
    }),
    Effect.map((client) => {
      created.client = client
      clientInternals.tune(clientInternals.connectionOf(client, "locatorConnection"), { noDelay: true })
      return { client, endpoint: where }
    })
  )
}

/**
 * A publisher or consumer of the client as a scoped resource: declared with a request, released
 * (bounded) unless its client is gone, and failed through `onLost` when its connection closes or
 * its client is replaced. Gives the client it was declared on.
 */
const clientResource = <A>(
  connection: ClientConnection,
  options: {
    readonly operation: string
    readonly during: string
    readonly declare: (client: Client, connectionClosedListener: (hadError: boolean) => void) => Promise<A>
    readonly close: (client: Client, resource: A) => Promise<unknown>
    readonly onLost: (lost: ConnectionLost) => void
  }
): Effect.Effect<readonly [Client, A], BrokerError, Scope.Scope> =>
  Effect.gen(function*() {
    const on: { client?: Client; declared: boolean } = { declared: false }
    // The connection of a declared resource closing means the client is lost. One the client
    // closes itself after a refused declaration (a resource alarm, say) does not.
    const closed = (hadError: boolean) => {
      if (!on.declared) return
      const reason = hadError ? "the connection failed" : "the connection was closed"
      if (on.client) connection.supervisor.lost(on.client, reason)
      options.onLost(new ConnectionLost({ during: options.during, reason }))
    }
    const [client, resource] = yield* Effect.acquireRelease(
      connection.call(
        options.operation,
        (c) => {
          on.client = c
          return options.declare(c, closed).then(
            (resource) => {
              on.declared = true
              return [c, resource] as const
            },
            (error: unknown) => {
              clientInternals.dropClosedConnections(c)
              throw error
            }
          )
        },
        ([c, resource]) =>
          connection.supervisor.isCurrent(c)
            ? void options.close(c, resource).catch(() => undefined)
            : clientInternals.destroy(clientInternals.connectionOf(resource, "connection"))
      ),
      // Declared on a client since replaced: its connection is ended (the client's close may have
      // come first, or failed half-way).
      ([c, resource]) =>
        connection.supervisor.isCurrent(c)
          ? release(() => options.close(c, resource), clientInternals.connectionOf(resource, "connection"))
          : Effect.sync(() => clientInternals.destroy(clientInternals.connectionOf(resource, "connection")))
    )
    yield* connection.attach(client, (reason) => options.onLost(new ConnectionLost({ during: options.during, reason })))
    return [client, resource] as const
  })

const clientPublisher = (connection: ClientConnection, stream: string, options: PublisherOptions = {}) =>
  Effect.gen(function*() {
    yield* connection.requireStream(stream)
    const confirmations = yield* Queue.unbounded<Confirmation>()
    const lost = yield* Deferred.make<never, ConnectionLost>()
    const during = `publishing to "${stream}"`
    const name = options.name
    const [client, raw] = yield* clientResource(connection, {
      operation: `declare a publisher on "${stream}"`,
      during,
      declare: (c, connectionClosedListener) =>
        c.declarePublisher({ stream, connectionClosedListener, ...(name === undefined ? {} : { publisherRef: name }) }),
      close: (c, p) => c.deletePublisher(p.extendedId),
      onLost: (e) => Deferred.unsafeDone(lost, Exit.fail(e))
    })
    clientInternals.tune(clientInternals.connectionOf(raw, "connection"), { noDelay: false })
    yield* connection.watch(client, clientInternals.connectionOf(raw, "connection"))
    const route = routeKey(raw.publisherId, raw.getConnectionInfo().id)
    yield* Effect.acquireRelease(
      Effect.sync(() => connection.confirmRoutes.set(route, confirmations)),
      () => Effect.sync(() => connection.confirmRoutes.delete(route))
    )
    const lastPublishingId = name === undefined
      ? 0n
      : yield* connection.callOn(client, `query the last publishing id of "${name}" on "${stream}"`, () => raw.getLastPublishingId())
    // The frames are ours (`publishFrames`): as large as the connection allows (the broker then
    // writes large chunks, which consumers read much faster than small ones), version 2 with filter
    // values, sub-entry batches; the client's own encoder writes 0, "" and false as null.
    const limits = clientInternals.limits(raw)
    const compression = options.compression ?? "none"
    const publish = (entries: ReadonlyArray<PublishEntry>): Effect.Effect<void, BrokerError | ConnectionLost | InvalidArgument> =>
      Effect.suspend((): Effect.Effect<void, BrokerError | ConnectionLost | InvalidArgument> => {
        if (!limits.filtering && entries.some((e) => e.messages.some((m) => m.filterValue !== undefined))) {
          return Effect.fail(new InvalidArgument({ message: FILTERING_UNSUPPORTED }))
        }
        const frames = Either.try({
          try: () => publishFrames(raw.publisherId, entries, { frameMax: limits.frameMax, compression }),
          catch: (error) => new InvalidArgument({ message: `cannot publish to "${stream}": ${errorText(error)}` })
        })
        return Either.isLeft(frames) ? Effect.fail(frames.left) : fromClient<unknown, BrokerError | ConnectionLost>(
          () => clientInternals.writeFrames(raw, frames.right),
          // A write on a dropped connection fails (EPIPE, reset) or never settles (then `lost`).
          (error) => {
            if (!isConnectionFailure(error)) return brokerError(`publish to "${stream}"`)(error)
            connection.supervisor.lost(client, errorText(error))
            return new ConnectionLost({ during, reason: errorText(error) })
          }
        ).pipe(Effect.asVoid)
      })
    return { stream, lastPublishingId, publish, confirmations, lost: Deferred.await(lost) } satisfies Publisher
  })

/**
 * A single active consumer's answer to the broker's consumer update, on a later macrotask (the
 * client calls it while it decodes): an activation resumes the buffer and answers where to start;
 * a step-down drops what is buffered and answers once the offset is stored (the broker ignores the
 * offset then). If where to start cannot be found (the offset store failing), the consumer fails
 * rather than letting the client fall back to `start` (a replay from the first message).
 */
const consumerUpdateAnswer = (
  sac: NonNullable<SubscribeOptions["singleActive"]>,
  turn: { active: boolean; readonly told: Array<boolean> },
  buffer: DeliveryBuffer,
  runPromise: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>,
  stream: string
) =>
() =>
  new Promise((resolve) => setImmediate(resolve))
    .then(() => {
      turn.active = turn.told.shift() ?? !turn.active
      if (turn.active) {
        buffer.resume()
        return runPromise(Effect.map(sac.onActivate, toClientOffset))
      }
      buffer.dropUntilResumed()
      return runPromise(Effect.as(sac.onStepDown, toClientOffset(StartPosition.Next())))
    })
    .catch((error: unknown) => {
      buffer.fail(brokerError(`activate on "${stream}"`)(error))
      return toClientOffset(StartPosition.Next())
    })

const clientSubscribe = (connection: ClientConnection, options: SubscribeOptions) =>
  Effect.gen(function*() {
    yield* connection.requireStream(options.stream)
    const buffer = new DeliveryBuffer(options.bufferSize ?? 1024)
    yield* Effect.addFinalizer(() => Effect.sync(() => buffer.end()))
    // The ordered prefetch subscribes without credit and grants it once this module decodes the
    // connection's deliveries (see `tune`); the client's default policy grants its own.
    const prefetched = CLIENT_VERSION === CLIENT_VERSION_WRITTEN_FOR
    const runPromise = Runtime.runPromise(yield* Effect.runtime<never>())
    const sac = options.singleActive
    // The client calls the update listener on activation and on step-down alike without saying
    // which: the broker's flag is read where the client decodes it (clientInternals); should that
    // not be possible, the broker alternates them, starting with an activation.
    const turn = { active: false, told: [] as Array<boolean> }
    const [subscribedOn, consumer] = yield* clientResource(connection, {
      operation: `subscribe to "${options.stream}"`,
      during: `consuming "${options.stream}"`,
      declare: (c, connectionClosedListener) =>
        c.declareConsumer(
          {
            stream: options.stream,
            offset: toClientOffset(options.start),
            creditPolicy: orderedPrefetch(PREFETCH_CHUNKS, {
              onChunkEnd: () => buffer.chunkEnd(),
              isOpen: () => buffer.isOpen,
              initial: prefetched ? 0 : undefined
            }),
            ...(options.filter === undefined
              ? {}
              : { filter: { values: [...options.filter.values], matchUnfiltered: options.filter.matchUnfiltered, postFilterFunc: () => true } }),
            ...(sac
              ? {
                consumerRef: sac.name,
                singleActive: true,
                consumerUpdateListener: consumerUpdateAnswer(sac, turn, buffer, runPromise, options.stream)
              }
              : {}),
            connectionClosedListener
          },
          // The client awaits this handler before it grants more credit: while the buffer is full
          // the returned promise waits, and so does the broker. It never throws into the client.
          (message: Message) => buffer.push(isClientMessage(message) ? fromClientMessage(message) : message),
          // Only `superStream` of this argument is read (its type is a class the client does not export).
          sac?.superStream === undefined ? undefined : ({ superStream: sac.superStream } as never)
        ),
      close: (c, consumer) => c.closeConsumer(consumer.extendedId),
      onLost: (e) => buffer.fail(e)
    })
    clientInternals.tune(clientInternals.connectionOf(consumer, "connection"), { noDelay: true })
    yield* connection.watch(subscribedOn, clientInternals.connectionOf(consumer, "connection"))
    // Chunks come whole, in order: each one is buffered once the one before it was taken by the
    // stream (backpressure), then a credit asks for the next (the ordered prefetch, without the
    // client's per-message hand-over).
    const ordered = { previous: Promise.resolve() }
    const grant = () => {
      buffer.chunkEnd()
      // A write on a dead socket fails or never settles: the connection's own listeners report it.
      if (buffer.isOpen) clientInternals.grantCredit(consumer, 1).catch(() => undefined)
    }
    const routed = prefetched && (yield* clientInternals.routeDeliveries(consumer, (messages) => {
      ordered.previous = ordered.previous.then(() => buffer.pushChunk(messages)).then(grant)
    }))
    if (prefetched) clientInternals.grantCredit(consumer, PREFETCH_CHUNKS).catch(() => undefined)
    if (prefetched && !routed) yield* Effect.logDebug("deliveries go through the client's handler")
    if (sac) {
      yield* clientInternals.watchConsumerUpdates(consumer, (active) => void turn.told.push(active))
    }
    // Runs before the consumer is closed: no more credit is asked for while it closes.
    yield* Effect.addFinalizer(() => Effect.sync(() => buffer.end()))
    return Stream.repeatEffectChunkOption(buffer.pull)
  })

/**
 * The broker's stats give chunk ids, not the last message: a tracking entry is a chunk of its own.
 * Offset.last() starts at the last chunk that holds messages: read it to find the last one.
 */
const clientBounds = (connection: ClientConnection, stream: string) =>
  Effect.gen(function*() {
    yield* connection.requireStream(stream)
    const stats = yield* connection.call(`stats of "${stream}"`, (c) => c.streamStatsRequest(stream))
    if (stats.firstChunkId < 0n) return { firstOffset: Option.none(), lastOffset: Option.none() } satisfies StreamBounds
    return { firstOffset: Option.some(stats.firstChunkId), lastOffset: yield* lastMessageOffset(connection, stream) } satisfies StreamBounds
  })

/**
 * The offset of the stream's last message, read from its last chunk. Why waiting is safe: the
 * broker sends that chunk at once after subscribing (1 s is ample on a live broker; none in that
 * time means no message chunk), and a chunk's messages arrive together (the client hands them over
 * one per microtask), so 200 ms without more means the chunk is complete. A chunk that is still
 * being written is not a concern: "the end" is wherever the stream was when asked.
 */
const lastMessageOffset = (connection: ClientConnection, stream: string) =>
  Effect.scoped(Effect.gen(function*() {
    const messages = yield* clientSubscribe(connection, { stream, start: StartPosition.Last(), bufferSize: 100_000 })
    // Only silence means "no message chunk": a failure (a lost connection) is one, not an empty
    // stream (which made `untilEnd` end at once, having consumed nothing).
    const first = yield* Stream.runHead(Stream.chunks(messages)).pipe(Effect.timeoutOption("1 second"))
    if (Option.isNone(first) || Option.isNone(first.value)) return Option.none<bigint>()
    const rest = yield* Stream.runCollect(Stream.timeout(messages, "200 millis"))
    const all = Chunk.appendAll(first.value.value, rest)
    return Chunk.isEmpty(all)
      ? Option.none<bigint>()
      : Option.some(Chunk.reduce(all, -1n, (max, m) => m.offset > max ? m.offset : max))
  })).pipe(
    Effect.catchTag("ConnectionLost", (e) =>
      Effect.fail(new BrokerError({ operation: `read the last chunk of "${stream}"`, reason: e.message, transient: "connectionGone" })))
  )
type DeliveryError = BrokerError | ConnectionLost

/**
 * Between the client's delivery callback and a Stream: a bounded buffer. The callback pushes; once
 * the buffer is full it gets a promise that resolves when the stream has taken what is there, and
 * the client waits for it before it asks for more (backpressure) - no effect runs per message.
 * What is buffered and how the stream takes it is a `DeliveryMailbox`; this is the callback's side.
 */
class DeliveryBuffer {
  private readonly mailbox = new DeliveryMailbox()

  /** True once the client says where its chunks end (`chunkEnd`): the stream then wakes at once, per chunk. */
  private chunked = false

  /** Out of turn (a single active consumer stepped down): what comes is dropped. */
  private dropping = false

  constructor(private readonly capacity: number) {}

  /** The next chunk: everything buffered, waiting for at least one message. */
  readonly pull = this.mailbox.pull

  push(message: StreamMessage): Promise<void> | void {
    if (!this.mailbox.isOpen || this.dropping) return
    this.mailbox.items.push(message)
    if (!this.chunked) this.mailbox.wake()
    if (this.mailbox.items.length < this.capacity) return
    if (this.chunked) this.mailbox.wake(true)
    return this.mailbox.taken()
  }

  /**
   * A whole chunk (`routeDeliveries`): buffered at once, the stream woken. The promise, when the
   * buffer holds `capacity` or more, resolves once the stream took them.
   */
  pushChunk(messages: Array<StreamMessage>): Promise<void> | void {
    if (!this.mailbox.isOpen || this.dropping || messages.length === 0) return
    const mailbox = this.mailbox
    if (mailbox.items.length === 0) mailbox.items = messages
    else for (const message of messages) mailbox.items.push(message)
    mailbox.wake(true)
    return mailbox.items.length < this.capacity ? undefined : mailbox.taken()
  }

  /** The client finished handing over a chunk: the stream takes it now. */
  chunkEnd() {
    this.chunked = true
    this.mailbox.wake(true)
  }

  /** Ends the stream after what is buffered; with an error, fails it. */
  end(error: Option.Option<DeliveryError> = Option.none()) {
    this.mailbox.end(error)
  }

  fail(error: DeliveryError) {
    this.end(Option.some(error))
  }

  get isOpen(): boolean {
    return this.mailbox.isOpen
  }

  /** Stepped down: drop what is buffered and what the client still hands over, until `resume`. */
  dropUntilResumed() {
    this.dropping = true
    this.mailbox.take()
  }

  resume() {
    this.dropping = false
  }
}

/**
 * What a DeliveryBuffer holds, and the stream's side of it: `pull` takes everything buffered as one
 * chunk, or waits (one waiter: the stream) until `wake`; taking it resolves the promise that a
 * full buffer's pusher waits on (`taken`). Once ended, `pull` gives what is left, then the end.
 */
class DeliveryMailbox {
  items: Array<StreamMessage> = []
  private closed: Option.Option<DeliveryError> | undefined
  private waiting: ((pulled: Effect.Effect<Chunk.Chunk<StreamMessage>, Option.Option<DeliveryError>>) => void) | undefined
  private space: { readonly promise: Promise<void>; readonly resolve: () => void } | undefined

  get isOpen(): boolean {
    return this.closed === undefined
  }

  readonly pull: Effect.Effect<Chunk.Chunk<StreamMessage>, Option.Option<DeliveryError>> = Effect.async((resume) => {
    const now = this.next()
    if (now) return resume(now)
    this.waiting = resume
    return Effect.sync(() => {
      this.waiting = undefined
    })
  })

  /** Everything buffered, now (empty when nothing is); releases the pusher. */
  take(): Array<StreamMessage> {
    const items = this.items
    this.items = []
    this.releaseSpace()
    return items
  }

  /** Resolves once the stream took what is buffered (or the buffer ended). */
  taken(): Promise<void> {
    if (!this.space) {
      let resolve!: () => void
      const promise = new Promise<void>((r) => (resolve = r))
      this.space = { promise, resolve }
    }
    return this.space.promise
  }

  end(error: Option.Option<DeliveryError>) {
    if (this.closed) return
    this.closed = error
    this.wake()
    this.releaseSpace()
  }

  /**
   * Resumes a waiting `pull`: now, or (without chunk ends) on the next macrotask - the client hands
   * over a delivered chunk one message per microtask, so by then the whole chunk is buffered and
   * the stream gets it whole.
   */
  wake(now = false) {
    const waiting = this.waiting
    if (!waiting) return
    this.waiting = undefined
    const resume = () => waiting(Effect.suspend(() => this.next() ?? this.pull))
    if (now) resume()
    else setImmediate(resume)
  }

  private next(): Effect.Effect<Chunk.Chunk<StreamMessage>, Option.Option<DeliveryError>> | undefined {
    if (this.items.length > 0) return Effect.succeed(Chunk.unsafeFromArray(this.take()))
    return this.closed ? Effect.fail(this.closed) : undefined
  }

  private releaseSpace() {
    const space = this.space
    this.space = undefined
    space?.resolve()
  }
}

/** A socket-level failure: the connection is gone. */
const isConnectionFailure = (error: unknown): boolean =>
  /EPIPE|ECONNRESET|ECONNREFUSED|ERR_STREAM_DESTROYED|ERR_STREAM_WRITE_AFTER_END|ERR_SOCKET_CLOSED/.test(errorCode(error)) ||
  /EPIPE|ECONNRESET|ECONNREFUSED|ERR_STREAM_DESTROYED|ERR_STREAM_WRITE_AFTER_END|socket has been ended|stream was destroyed|closed/i.test(
    errorText(error)
  )

/** The runtime's code of a system error (Node's `code`: EPIPE, ERR_STREAM_DESTROYED, ...), or "". */
const errorCode = (error: unknown): string =>
  typeof error === "object" && error !== null && "code" in error ? String(error.code) : ""

/** A span per publish batch or processed chunk, never per message: its name, kind and attributes. */
interface MessagingSpan {
  readonly name: string
  readonly kind: "producer" | "consumer"
  readonly attributes: Readonly<Record<string, string>>
}

/**
 * OpenTelemetry's messaging semantic conventions: "send orders" (a producer span), "process
 * orders" (a consumer span); a partition is the destination's partition.
 */
const messagingSpan = (operation: "send" | "process", of: Parameters<typeof metricTags>[0]): MessagingSpan => {
  const destination = of.superStream ?? of.stream
  return {
    name: `${operation} ${destination}`,
    kind: operation === "send" ? "producer" : "consumer",
    attributes: {
      "messaging.system": "rabbitmq",
      "messaging.destination.name": destination,
      "messaging.operation.name": operation,
      "messaging.operation.type": operation,
      ...(of.superStream === undefined ? {} : { "messaging.destination.partition.id": of.stream }),
      ...(of.consumer === undefined ? {} : { "messaging.consumer.group.name": of.consumer }),
      ...(of.producer === undefined ? {} : { "messaging.client.id": of.producer })
    }
  }
}

const withMessagingSpan = <A, E, R>(effect: Effect.Effect<A, E, R>, span: MessagingSpan, messages: number): Effect.Effect<A, E, R> =>
  Effect.withSpan(effect, span.name, {
    kind: span.kind,
    attributes: { ...span.attributes, "messaging.batch.message_count": messages },
    // One span per chunk: the call site would be the same line each time, and capturing it costs
    // a stack trace per chunk.
    captureStackTrace: false
  })

/** The tags of a producer's or consumer's metrics. */
type MetricTags = Readonly<Record<string, string>>

/** A partition's metrics carry its super stream as `stream` and itself as `partition`. */
const metricTags = (of: {
  readonly stream: string
  readonly superStream?: string | undefined
  readonly consumer?: string | undefined
  readonly producer?: string | undefined
}): MetricTags => ({
  ...(of.superStream === undefined ? { stream: of.stream } : { stream: of.superStream, partition: of.stream }),
  ...(of.consumer === undefined ? {} : { consumer: of.consumer }),
  ...(of.producer === undefined ? {} : { producer: of.producer })
})

/** A metric with its tags fixed once (per consumer), rather than read from the fiber per update. */
const taggedMetric = <T, I, O>(metric: Metric.Metric<T, I, O>, tags: MetricTags): Metric.Metric<T, I, O> =>
  Metric.taggedWithLabels(metric, Object.entries(tags).map(([key, value]) => MetricLabel.make(key, value)))

const errorText = (error: unknown): string => error instanceof Error ? error.message : String(error)

/**
 * The client's TLS options: passed to `tls.connect` as they are, so the runtime verifies the chain
 * and the host name. Never `true`: the client turns that into "verify nothing".
 */
const clientTls = (tls: TlsOptions) => {
  const pem = (value: string | Uint8Array | undefined) =>
    value === undefined ? undefined : typeof value === "string" ? value : decoder.decode(value)
  const options = {
    ca: pem(tls.ca),
    cert: pem(tls.cert),
    key: pem(tls.key === undefined ? undefined : Redacted.value(tls.key)),
    servername: tls.servername,
    rejectUnauthorized: tls.insecureSkipVerify !== true
  }
  return Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as {
    readonly rejectUnauthorized: boolean
  }
}

/** TLS failures, by the code the runtime gives (OpenSSL, BoringSSL and rustls word them differently). */
const tlsProblem = (cause: unknown): string | undefined => {
  const code = errorCode(cause)
  const text = `${code} ${errorText(cause)}`
  if (/SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_UNTRUSTED|UnknownIssuer|unknown ?ca(?!.*alert)/i.test(text)) {
    return `the broker's certificate is not trusted (${code || errorText(cause)}): give the CA that signed it (--ca, tls.ca)`
  }
  if (/CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|expired/i.test(text)) {
    return `the broker's certificate is expired or not yet valid (${code || errorText(cause)})`
  }
  if (/ALTNAME|hostname|NotValidForName|does not match/i.test(text)) {
    return `the broker's certificate is not for this host name (${code || errorText(cause)}): connect by the name in the certificate, or set tls.servername`
  }
  if (/CERTIFICATE_REQUIRED|certificate required|HANDSHAKE_FAILURE/i.test(text)) {
    return `the broker requires a client certificate (${code || errorText(cause)}): give one with --cert and --key (tls.cert, tls.key)`
  }
  if (/ALERT_UNKNOWN_CA|ALERT_BAD_CERTIFICATE|alert.*(unknown ca|bad certificate)/i.test(text)) {
    return `the broker did not accept the client certificate (${code || errorText(cause)})`
  }
  if (/WRONG_VERSION_NUMBER|wrong version number|packet length too long|CorruptMessage|InvalidContentType/i.test(text)) {
    return `this port does not speak TLS (${code || errorText(cause)}): use rabbitmq-stream:// for it, or the broker's TLS port`
  }
  return undefined
}

const SOCKET_CLOSED_IN_HANDSHAKE = /before secure TLS connection|Socket is closed|ERR_SOCKET_CLOSED|ECONNRESET/

/** The broker closed the connection before the stream protocol's handshake was done. */
class HandshakeClosed extends Error {
  constructor() {
    super("the broker closed the connection during the handshake")
  }
}

/**
 * What a failed connection attempt means. `first`: no connection was ever made, so a closed
 * handshake is most likely the wrong kind of port (TLS vs plain): said so, and not retried; once
 * connected, the same is a broker restarting: retried.
 */
const connectError = (where: string, cause: unknown, first: boolean, sasl?: "plain" | "external"): ConnectionError => {
  const tls = tlsProblem(cause)
  if (tls !== undefined) return new ConnectionError({ message: `cannot connect to ${where}: ${tls}`, cause, retryable: false })
  const isTls = where.startsWith("rabbitmq-stream+tls:")
  if (cause instanceof HandshakeClosed || (isTls && SOCKET_CLOSED_IN_HANDSHAKE.test(errorText(cause)))) {
    const hint = isTls
      ? "is this the broker's TLS port? (plain ports take rabbitmq-stream://)"
      : "is this a TLS port? (use rabbitmq-stream+tls:// for it)"
    return new ConnectionError({ message: `cannot connect to ${where}: ${cause instanceof HandshakeClosed ? cause.message : `the connection closed during the TLS handshake (${errorText(cause)})`}: ${hint}`, cause, retryable: !first })
  }
  const code = responseCode(cause)
  // An unknown vhost makes the client misread the broker's answer to Open (a RangeError).
  const openFailed = cause instanceof Error && /open_response/.test(cause.stack ?? "")
  // The client's words when the broker does not offer the mechanism asked for.
  const mechanismMissing = /Unable to find (\S+) mechanism in (.*)/.exec(errorText(cause))
  if (mechanismMissing) {
    const offered = mechanismMissing[2]!.split(",").filter((m) => m !== "").join(", ") || "none"
    return new ConnectionError({
      message: `cannot connect to ${where}: the broker does not offer SASL ${mechanismMissing[1]} (it offers ${offered})${
        sasl === "external" ? "; it needs the rabbitmq_auth_mechanism_ssl plugin and EXTERNAL in auth_mechanisms" : ""
      }`,
      cause,
      retryable: false
    })
  }
  const detail = (code === 8 || code === 11) && sasl === "external"
    ? "the broker did not accept the client certificate as a user (with ssl_cert_login_from = common_name, a user named as the certificate's CN must exist)"
    : code === 8 || code === 11
    ? "authentication failed: check the username and password"
    : code === 12 || openFailed
    ? "the virtual host does not exist or the user may not use it"
    : errorText(cause)
  // Refused, reset, unreachable: the broker may be (re)starting. Credentials and vhost: no retry.
  const retryable = code === undefined && !openFailed &&
    (isConnectionFailure(cause) || /ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|socket/i.test(errorText(cause)))
  return new ConnectionError({ message: `cannot connect to ${where}: ${detail}`, cause, retryable })
}

const streamArguments = (retention: Retention) => ({
  ...(retention.initialClusterSize !== undefined ? { "initial-cluster-size": retention.initialClusterSize } : {}),
  ...(retention.maxLengthBytes !== undefined ? { "max-length-bytes": retention.maxLengthBytes } : {}),
  ...(retention.maxAge !== undefined ? { "max-age": retention.maxAge } : {}),
  ...(retention.maxSegmentSizeBytes !== undefined
    ? { "stream-max-segment-size-bytes": retention.maxSegmentSizeBytes }
    : {}),
  ...(retention.filterSizeBytes !== undefined ? { "stream-filter-size-bytes": retention.filterSizeBytes } : {})
})

/** The client decoded this delivery itself (its own decoding: another client version, see `tune`). */
const isClientMessage = (message: Message | StreamMessage): message is Message => "content" in message

const fromClientMessage = (message: Message): StreamMessage => ({
  offset: message.offset ?? -1n,
  body: message.content,
  applicationProperties: message.applicationProperties as Record<string, AmqpValue> | undefined,
  messageAnnotations: message.messageAnnotations as Record<string, AmqpValue> | undefined
})

const toClientOffset = StartPosition.$match({
  First: () => Offset.first(),
  Last: () => Offset.last(),
  Next: () => Offset.next(),
  Offset: ({ offset }) => Offset.offset(offset),
  Timestamp: ({ date }) => Offset.timestamp(date)
})

// ---------------------------------------------------------------------------------------------
// Memory broker: a log in chunks, tracking entries, super streams, single active groups, outages
// ---------------------------------------------------------------------------------------------

interface MemoryStream {
  readonly retention: Retention
  readonly log: Array<MemoryEntry>
  /** Index in `log` of the first entry of every chunk. */
  readonly chunkStarts: Array<number>
  openChunkSize: number
  readonly tracking: Map<string, bigint>
  /** The last publishing id of each named publisher (deduplication). */
  readonly publishers: Map<string, bigint>
  /** Entries a named publisher sent that the stream already had (dropped, and confirmed). */
  duplicates: number
  /** Completed and replaced whenever the log grows. */
  grown: Deferred.Deferred<void>
}

/** What the memory broker's parts share. */
interface MemoryState {
  readonly options: MemoryBrokerOptions
  readonly chunkSize: number
  readonly streams: Map<string, MemoryStream>
  /** The connection, supervised like the real one; a "client" is a token per connection. */
  readonly supervisor: ConnectionSupervisor<object>
  readonly availability: { failure: "unreachable" | "credentials" | undefined }
  /** Streams without a leader right now (`loseLeader`). */
  readonly leaderless: Set<string>
  /** Every open publisher and subscription (and what it was doing), for `loseConnection`. */
  /** The open publishers and subscriptions: what each was doing, on which stream. */
  readonly open: Map<Deferred.Deferred<never, ConnectionLost>, { readonly during: string; readonly stream: string }>
  /** Single active consumer groups, by stream and name. */
  readonly groups: Map<string, MemoryGroup>
  /** Super streams: their partitions, with the binding key of each, in partition order. */
  readonly superStreams: Map<string, ReadonlyArray<{ readonly stream: string; readonly key: string }>>
}

/**
 * A single active consumer group, as the broker keeps one: members in joining order; on a plain
 * stream the first is active, on a super stream's partition i the member i modulo their number.
 * A change of active member steps the old one down (and waits for it) before it activates the new
 * one. Changes are made one at a time.
 */
interface MemoryGroup {
  readonly partition: number
  readonly members: Array<MemoryMember>
  readonly lock: Effect.Semaphore
}
interface MemoryMember {
  readonly sac: NonNullable<SubscribeOptions["singleActive"]>
  active: boolean
  /** Where the current turn starts, and which turn it is (a subscription repositions on a new one). */
  start: StartPosition
  turn: number
  /** Completed and replaced at every activation and step-down: a waiting subscription looks again. */
  changed: Deferred.Deferred<void>
  /** Fails its subscription as a lost connection does. */
  readonly lost: Deferred.Deferred<never, ConnectionLost>
}

const makeMemoryBroker = (options: MemoryBrokerOptions) =>
  Effect.gen(function*() {
    const policy = options.retry ?? retryFor(DEFAULT_RETRY_FOR)
    const availability: MemoryState["availability"] = { failure: undefined }
    const supervisor = yield* superviseConnection<object>({
      where: "the memory broker",
      policy,
      connect: () => memoryConnect(availability),
      close: () => Effect.void
    })
    yield* Effect.orDie(supervisor.client) // up at the start
    const state: MemoryState = {
      options,
      chunkSize: Math.max(1, options.chunkSize ?? 16),
      streams: new Map(),
      supervisor,
      availability,
      leaderless: new Set(),
      open: new Map(),
      groups: new Map(),
      superStreams: new Map()
    }
    return { broker: memoryBrokerShape(state, policy), inspect: memoryInspection(state) }
  })

/** The memory broker as a StreamBroker: each operation on the state, as the real broker answers. */
const memoryBrokerShape = (state: MemoryState, policy: Schedule.Schedule<unknown, StreamError>): StreamBrokerShape => {
  return {
    declareStream: (stream, retention) => memoryDeclare(state, stream, retention),
    streamExists: (stream) => Effect.zipRight(connected(state, `query metadata of "${stream}"`), Effect.sync(() => state.streams.has(stream))),
    deleteStream: (stream) =>
      Effect.flatMap(getStream(state, stream), () =>
        Effect.zipRight(
          Effect.sync(() => void state.streams.delete(stream)),
          endOnStream(state, stream, `stream "${stream}" was deleted`)
        )),
    declareSuperStream: (superStream, bindingKeys, retention) =>
      declareSuperStreamWith(superStream, bindingKeys, {
        partitions: memoryPartitions(state, superStream),
        create: memoryCreateSuperStream(state, superStream, bindingKeys, retention)
      }),
    partitions: (superStream) => memoryPartitions(state, superStream),
    route: (superStream, key) =>
      Effect.map(superStreamOf(state, superStream), (partitions) => partitions.filter((p) => p.key === key).map((p) => p.stream)),
    deleteSuperStream: (superStream) =>
      Effect.map(superStreamOf(state, superStream), (partitions) => {
        for (const { stream } of partitions) state.streams.delete(stream)
        state.superStreams.delete(superStream)
      }),
    publisher: (stream, publisherOptions) => memoryPublisher(state, stream, publisherOptions?.name),
    subscribe: (subscribeOptions) => memorySubscribe(state, subscribeOptions),
    bounds: (stream) =>
      Effect.map(getStream(state, stream), (s): StreamBounds => ({
        firstOffset: s.log.length === 0 ? Option.none() : Option.some(0n),
        lastOffset: Option.fromNullable(s.log.findLast((e) => e._tag === "Message")?.offset)
      })),
    lastChunk: (stream) => Effect.map(getStream(state, stream), (s) => Option.fromNullable(s.log.at(-1)?.offset)),
    storeOffset: (reference, stream, offset) =>
      Effect.flatMap(trackedStream(state, `store offset ${offset} for "${reference}" on "${stream}"`, stream), (s) => {
        s.tracking.set(reference, offset)
        return append(state, s, (o, timestamp) => ({ _tag: "Tracking", offset: o, reference, value: offset, timestamp }), true)
      }).pipe(Effect.asVoid),
    queryOffset: (reference, stream) =>
      Effect.map(
        trackedStream(state, `query the offset of "${reference}" on "${stream}"`, stream),
        (s) => Option.fromNullable(s.tracking.get(reference))
      ),
    ...supervisedFields(state.supervisor, policy)
  }
}

/** What tests see and do of the memory broker: its logs, appends, outages, lost leaders and members. */
const memoryInspection = (state: MemoryState): MemoryBrokerShape => {
  const messages = (stream: string) =>
    (state.streams.get(stream)?.log ?? []).flatMap((e) => e._tag === "Message" ? [decodeMessage(e.data, e.offset)] : [])
  return {
    entries: (stream) => Effect.sync(() => [...(state.streams.get(stream)?.log ?? [])]),
    messages: (stream) => Effect.sync(() => messages(stream)),
    append: (stream, data, filterValue) =>
      Effect.flatMap(
        Effect.suspend(() => {
          const s = state.streams.get(stream)
          return s ? Effect.succeed(s) : Effect.fail(new StreamNotFound({ stream }))
        }),
        (s) =>
          Effect.forEach(data, (bytes, i) =>
            append(state, s, (offset, timestamp) => ({ _tag: "Message", offset, data: bytes, filterValue, timestamp }), i === 0), {
            discard: true
          })
      ),
    retention: (stream) => Effect.sync(() => Option.fromNullable(state.streams.get(stream)?.retention)),
    duplicates: (stream) => Effect.sync(() => state.streams.get(stream)?.duplicates ?? 0),
    loseConnection: loseConnection(state, "dropped by the test"),
    down: (failure = "unreachable") =>
      Effect.zipRight(Effect.sync(() => void (state.availability.failure = failure)), loseConnection(state, "the broker went down")),
    up: Effect.sync(() => void (state.availability.failure = undefined)),
    loseLeader: (stream) =>
      Effect.zipRight(Effect.sync(() => void state.leaderless.add(stream)), loseConnection(state, `the leader of "${stream}" went away`)),
    electLeader: (stream) => Effect.sync(() => void state.leaderless.delete(stream)),
    loseMember: (stream, name, index) =>
      Effect.suspend(() => {
        const member = state.groups.get(JSON.stringify([stream, name]))?.members[index]
        return member === undefined
          ? Effect.dieMessage(`no member ${index} in the single active group "${name}" of "${stream}"`)
          : Deferred.fail(member.lost, new ConnectionLost({ during: `consuming "${stream}"`, reason: "its connection dropped" }))
      })
  }
}

/** A connection attempt: fails as the real one would while the broker is "down". */
const memoryConnect = (availability: MemoryState["availability"]) =>
  Effect.suspend(() =>
    availability.failure === undefined
      ? Effect.succeed({ client: {}, endpoint: "the memory broker" })
      : Effect.fail(
        new ConnectionError({
          message: availability.failure === "unreachable"
            ? "cannot connect to the memory broker: connect ECONNREFUSED"
            : "cannot connect to the memory broker: authentication failed: check the username and password",
          retryable: availability.failure === "unreachable"
        })
      )
  )

/** Publishers and consumers need the stream's leader: without one the broker answers code 6. */
const leaderOf = (state: MemoryState, operation: string, stream: string) =>
  state.leaderless.has(stream)
    ? Effect.fail(new BrokerError({ operation, reason: "stream not available (code 6)", code: 6, transient: "noLeader" }))
    : Effect.void

/** Every operation needs the connection: while the broker is down it waits, as the real one does. */
const connected = (state: MemoryState, operation: string) =>
  Effect.mapError(state.supervisor.client, (e) => new BrokerError({ operation, reason: e.message, cause: e }))

const getStream = (state: MemoryState, stream: string) =>
  Effect.zipRight(
    connected(state, `use stream "${stream}"`),
    Effect.suspend(() => {
      const s = state.streams.get(stream)
      return s ? Effect.succeed(s) : Effect.fail(new StreamNotFound({ stream }))
    })
  )

/** The stream for an offset store or query: a missing one is the broker's code 2, as on the wire. */
const trackedStream = (state: MemoryState, operation: string, stream: string) =>
  Effect.zipRight(
    connected(state, operation),
    Effect.suspend(() => {
      const s = state.streams.get(stream)
      return s ? Effect.succeed(s) : Effect.fail(new BrokerError({ operation, code: 2, reason: codeName(2) }))
    })
  )

const memoryDeclare = (state: MemoryState, stream: string, retention: Retention) =>
  Effect.gen(function*() {
    yield* connected(state, `declare stream "${stream}"`)
    const existing = state.streams.get(stream)
    if (existing) {
      return yield* sameArguments(existing.retention, retention) ? Effect.void : Effect.fail(new StreamPreconditionFailed({ stream }))
    }
    state.streams.set(stream, {
      retention,
      log: [],
      chunkStarts: [],
      openChunkSize: 0,
      tracking: new Map(),
      publishers: new Map(),
      duplicates: 0,
      grown: yield* Deferred.make<void>()
    })
  })

const superStreamOf = (state: MemoryState, superStream: string) =>
  Effect.zipRight(
    connected(state, `query the partitions of super stream "${superStream}"`),
    Effect.suspend(() => {
      const partitions = state.superStreams.get(superStream)
      return partitions ? Effect.succeed(partitions) : Effect.fail(new SuperStreamNotFound({ superStream }))
    })
  )

const memoryPartitions = (state: MemoryState, superStream: string) =>
  Effect.map(superStreamOf(state, superStream), (partitions) => partitions.map((p) => p.stream))

/** As the broker: nothing is created when the super stream or a stream of a partition's name exists. */
const memoryCreateSuperStream = (state: MemoryState, superStream: string, keys: ReadonlyArray<string>, retention: Retention) =>
  Effect.gen(function*() {
    yield* connected(state, `declare super stream "${superStream}"`)
    const partitions = keys.map((key) => ({ stream: partitionStream(superStream, key), key }))
    if (state.superStreams.has(superStream) || partitions.some((p) => state.streams.has(p.stream))) return
    for (const { stream } of partitions) yield* memoryDeclare(state, stream, retention)
    state.superStreams.set(superStream, partitions)
  })

const sameArguments = (a: Retention, b: Retention) =>
  a.maxLengthBytes === b.maxLengthBytes && a.maxAge === b.maxAge && a.maxSegmentSizeBytes === b.maxSegmentSizeBytes &&
  a.filterSizeBytes === b.filterSizeBytes

/** Appends an entry (a tracking entry is a chunk of its own) and wakes the subscriptions. */
const append = (
  state: MemoryState,
  s: MemoryStream,
  entry: (offset: bigint, timestamp: number) => MemoryEntry,
  ownChunk: boolean
) =>
  Effect.gen(function*() {
    const timestamp = yield* Clock.currentTimeMillis
    if (ownChunk || s.openChunkSize >= state.chunkSize || s.log.length === 0) {
      s.chunkStarts.push(s.log.length)
      s.openChunkSize = 0
    }
    const appended = entry(BigInt(s.log.length), timestamp)
    s.log.push(appended)
    // After a chunk of its own, the next message starts a new chunk.
    s.openChunkSize = ownChunk ? state.chunkSize : s.openChunkSize + 1
    const grown = s.grown
    s.grown = yield* Deferred.make<void>()
    yield* Deferred.succeed(grown, undefined)
    return appended.offset
  })

/** A publisher or subscription on the connection: failed with ConnectionLost when it is lost. */
const openOnConnection = (state: MemoryState, during: string, stream: string) =>
  Effect.acquireRelease(
    Effect.tap(Deferred.make<never, ConnectionLost>(), (d) => void state.open.set(d, { during, stream })),
    (d) => Effect.sync(() => void state.open.delete(d))
  )

const loseConnection = (state: MemoryState, reason: string) =>
  Effect.zipRight(
    Effect.sync(() => state.supervisor.loseCurrent(reason)),
    Effect.forEach(state.open, ([d, { during }]) => Deferred.fail(d, new ConnectionLost({ during, reason })), { discard: true })
  )

/**
 * A deleted stream ends its publishers and subscriptions as the broker's metadata update does with
 * the client's: as lost, so that they declare again and find the stream gone (StreamNotFound).
 */
const endOnStream = (state: MemoryState, stream: string, reason: string) =>
  Effect.forEach(
    state.open,
    ([d, open]) => open.stream === stream ? Deferred.fail(d, new ConnectionLost({ during: open.during, reason })) : Effect.void,
    { discard: true }
  )

const memoryPublisher = (state: MemoryState, stream: string, name: string | undefined) =>
  Effect.gen(function*() {
    const { confirmDelay, dropConfirm, rejectPublish } = state.options
    const s = yield* getStream(state, stream)
    yield* leaderOf(state, `declare a publisher on "${stream}"`, stream)
    const scope = yield* Effect.scope
    const confirmations = yield* Queue.unbounded<Confirmation>()
    yield* Effect.addFinalizer(() => Queue.shutdown(confirmations))
    const lost = yield* openOnConnection(state, `publishing to "${stream}"`, stream)
    const lastPublishingId = name === undefined ? 0n : s.publishers.get(name) ?? 0n
    const confirm = (c: Confirmation) =>
      confirmDelay === undefined
        ? Queue.offer(confirmations, c)
        : Effect.forkIn(Effect.delay(Queue.offer(confirmations, c), confirmDelay), scope)
    const publishOne = ({ messages, publishingId: id }: PublishEntry) =>
      Effect.suspend(() => {
        const code = messages.map((m) => rejectPublish?.(m.body, id)).find((c) => c !== undefined)
        if (code !== undefined) return confirm(Confirmation.Rejected({ publishingId: id, code }))
        // Deduplication: a named publisher's entry at or below the broker's last id is confirmed
        // and dropped.
        const known = name === undefined ? undefined : s.publishers.get(name) ?? 0n
        if (known !== undefined && id <= known) {
          s.duplicates++
          return confirm(Confirmation.Confirmed({ publishingIds: [id] }))
        }
        if (name !== undefined) s.publishers.set(name, id)
        return Effect.zipRight(
          Effect.forEach(messages, (m) =>
            append(state, s, (offset, timestamp) => ({
              _tag: "Message",
              offset,
              data: outboundBytes(m),
              filterValue: m.filterValue,
              timestamp
            }), false), { discard: true }),
          messages.some((m) => dropConfirm?.(m.body, id)) ? Effect.void : confirm(Confirmation.Confirmed({ publishingIds: [id] }))
        )
      })
    return {
      stream,
      lastPublishingId,
      publish: (entries) =>
        state.options.filtering === false && entries.some((e) => e.messages.some((m) => m.filterValue !== undefined))
          ? Effect.fail(new InvalidArgument({ message: FILTERING_UNSUPPORTED }))
          : Effect.forEach(entries, publishOne, { discard: true }),
      confirmations,
      lost: Deferred.await(lost)
    } satisfies Publisher
  })

/** The bytes a stream stores for an outbound message. */
const outboundBytes = (m: OutboundMessage): Uint8Array => {
  const w = new AmqpWriter(messageSize(m))
  writeOutbound(w, m)
  return w.result()
}

const memorySubscribe = (state: MemoryState, options: SubscribeOptions) =>
  Effect.gen(function*() {
    const s = yield* getStream(state, options.stream)
    yield* leaderOf(state, `subscribe to "${options.stream}"`, options.stream)
    const filter = options.filter
    if (filter !== undefined && state.options.filtering === false) {
      return yield* Effect.fail(new BrokerError({ operation: `subscribe to "${options.stream}"`, reason: FILTERING_UNSUPPORTED }))
    }
    const filterSize = s.retention.filterSizeBytes ?? 16
    const lost = yield* openOnConnection(state, `consuming "${options.stream}"`, options.stream)
    const member = options.singleActive ? yield* joinGroup(state, options.stream, options.singleActive, lost) : undefined
    const cursor = { position: member ? -1 : startIndex(s, options.start), turn: 0 }
    const pull: Effect.Effect<Chunk.Chunk<StreamMessage>> = Effect.suspend(() => {
      if (member) {
        // Single active: nothing while it is not this member's turn; a new turn starts where it says.
        if (!member.active) return Effect.zipRight(Deferred.await(member.changed), pull)
        if (cursor.turn !== member.turn) {
          cursor.turn = member.turn
          cursor.position = startIndex(s, member.start)
        }
      }
      if (cursor.position >= s.log.length) {
        const grown = Deferred.await(s.grown)
        return Effect.zipRight(member ? Effect.raceFirst(grown, Deferred.await(member.changed)) : grown, pull)
      }
      // Deliver up to the end of the chunk that holds `position`, if its filter may match.
      const end = s.chunkStarts.find((c) => c > cursor.position) ?? s.log.length
      const delivered: Array<StreamMessage> = []
      if (filter === undefined || chunkMatches(s.log.slice(cursor.position, end), filter, filterSize)) {
        for (let i = cursor.position; i < end; i++) {
          const entry = s.log[i]!
          if (entry._tag === "Message") delivered.push(decodeMessage(entry.data, entry.offset))
        }
      }
      cursor.position = end
      return delivered.length === 0 ? pull : Effect.succeed(Chunk.unsafeFromArray(delivered))
    })
    return Stream.repeatEffectChunk(Effect.raceFirst(Deferred.await(lost), pull))
  })

/**
 * Whether the broker delivers a chunk to a filtered subscription, as RabbitMQ's Bloom filter says:
 * two bits per filter value (bit 0 for messages without one); a chunk with no filter value at all
 * goes only to subscriptions that match unfiltered messages. Two values can share bits: false
 * positives, which the consumer filters out, as on the broker.
 */
const chunkMatches = (
  entries: ReadonlyArray<MemoryEntry>,
  filter: NonNullable<SubscribeOptions["filter"]>,
  sizeBytes: number
): boolean => {
  const bits = sizeBytes * 8
  const set = new Set<number>()
  let filtered = false
  for (const entry of entries) {
    if (entry._tag !== "Message") continue
    if (entry.filterValue === undefined) set.add(0)
    else {
      filtered = true
      for (const bit of bloomBits(entry.filterValue, bits)) set.add(bit)
    }
  }
  if (!filtered) return filter.matchUnfiltered
  return (filter.matchUnfiltered && set.has(0)) || filter.values.some((v) => bloomBits(v, bits).every((bit) => set.has(bit)))
}
const bloomBits = (value: string, bits: number) => [1 + (murmur3(value, 1) % (bits - 1)), 1 + (murmur3(value, 2) % (bits - 1))]

/** Joins the stream's single active group under the name, and leaves it when the scope closes. */
const joinGroup = (
  state: MemoryState,
  stream: string,
  sac: NonNullable<SubscribeOptions["singleActive"]>,
  lost: Deferred.Deferred<never, ConnectionLost>
) =>
  Effect.gen(function*() {
    const key = JSON.stringify([stream, sac.name])
    const partitions = sac.superStream === undefined ? undefined : state.superStreams.get(sac.superStream)
    const group = state.groups.get(key) ?? {
      partition: partitions?.findIndex((p) => p.stream === stream) ?? -1,
      members: [],
      lock: yield* Effect.makeSemaphore(1)
    }
    state.groups.set(key, group)
    const member: MemoryMember = {
      sac,
      active: false,
      start: StartPosition.First(),
      turn: 0,
      changed: yield* Deferred.make<void>(),
      lost
    }
    return yield* Effect.acquireRelease(
      group.lock.withPermits(1)(Effect.suspend(() => {
        group.members.push(member)
        return Effect.as(rebalance(group), member)
      })),
      () =>
        group.lock.withPermits(1)(Effect.suspend(() => {
          group.members.splice(group.members.indexOf(member), 1)
          // A member that leaves is not stepped down: its own stop stores its offset.
          member.active = false
          return rebalance(group)
        }))
    )
  })

/** Makes the member the broker's rule picks the active one: the old one steps down first. */
const rebalance = (group: MemoryGroup): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { members, partition } = group
    const chosen = members.length === 0 ? undefined : members[partition >= 0 ? partition % members.length : 0]
    const current = members.find((m) => m.active)
    if (chosen === current) return
    const changed = (m: MemoryMember) =>
      Effect.flatMap(Deferred.make<void>(), (next) => {
        const previous = m.changed
        m.changed = next
        return Deferred.succeed(previous, undefined)
      })
    if (current) {
      current.active = false
      yield* changed(current)
      yield* current.sac.onStepDown
    }
    if (chosen) {
      chosen.start = yield* chosen.sac.onActivate
      chosen.active = true
      chosen.turn++
      yield* changed(chosen)
    }
  })

/** The index in the log where a subscription starts: as the broker, at the start of a chunk. */
const startIndex = (s: MemoryStream, start: StartPosition): number =>
  StartPosition.$match(start, {
    First: () => 0,
    Last: () => s.chunkStarts.findLast((c) => s.log[c]!._tag === "Message") ?? s.log.length,
    Next: () => s.log.length,
    Offset: ({ offset }) => {
      if (offset >= BigInt(s.log.length)) return Number(offset)
      const index = Number(offset < 0n ? 0n : offset)
      return s.chunkStarts.findLast((c) => c <= index) ?? 0
    },
    Timestamp: ({ date }) => s.chunkStarts.find((c) => s.log[c]!.timestamp >= date.getTime()) ?? s.log.length
  })

// ---------------------------------------------------------------------------------------------
// Offset stores: server-side, memory, KeyValueStore
// ---------------------------------------------------------------------------------------------

/** An offset store from two functions that may fail with anything: failures become OffsetStoreError. */
const offsetStoreOf = <E1, E2>(
  query: (consumerName: string, stream: string) => Effect.Effect<Option.Option<bigint>, E1>,
  store: (consumerName: string, stream: string, offset: bigint) => Effect.Effect<void, E2>
): OffsetStoreShape => ({
  query: (consumerName, stream) =>
    Effect.mapError(query(consumerName, stream), (cause) => new OffsetStoreError({ operation: "query", consumerName, stream, cause })),
  store: (consumerName, stream, offset) =>
    store(consumerName, stream, offset).pipe(
      Effect.zipRight(Metric.increment(offsetsStored)),
      Effect.mapError((cause) => new OffsetStoreError({ operation: "store", consumerName, stream, cause }))
    )
})

/** Server-side: the broker's own offset tracking (`StoreOffset` / `QueryOffset`). */
function serverOffsetStore(broker: StreamBrokerShape): OffsetStoreShape {
  return offsetStoreOf(
    (consumerName, stream) => broker.queryOffset(consumerName, stream),
    (consumerName, stream, offset) => broker.storeOffset(consumerName, stream, offset)
  )
}

function memoryOffsetStore(): Context.Context<OffsetStore | MemoryOffsetStore> {
  const stored = new Map<string, bigint>()
  const history: Array<{ consumerName: string; stream: string; offset: bigint }> = []
  const key = (consumerName: string, stream: string) => JSON.stringify([consumerName, stream])
  const store = offsetStoreOf(
    (consumerName, stream) => Effect.sync(() => Option.fromNullable(stored.get(key(consumerName, stream)))),
    (consumerName, stream, offset) =>
      Effect.sync(() => {
        stored.set(key(consumerName, stream), offset)
        history.push({ consumerName, stream, offset })
      })
  )
  return Context.make(OffsetStore, store).pipe(Context.add(MemoryOffsetStore, { history: Effect.sync(() => [...history]) }))
}

/** An offset as a KeyValueStore keeps it: decimal digits. */
const StoredOffset = Schema.compose(Schema.Trim, Schema.BigInt).pipe(Schema.filter((offset) => offset >= 0n))

function keyValueOffsetStore(kv: KeyValueStore.KeyValueStore): OffsetStoreShape {
  const key = (consumerName: string, stream: string) => `offset-${encodeURIComponent(stream)}-${encodeURIComponent(consumerName)}`
  return offsetStoreOf(
    (consumerName, stream) =>
      Effect.flatMap(kv.get(key(consumerName, stream)), (text) =>
        Option.isNone(text)
          ? Effect.succeedNone
          : Schema.decode(StoredOffset)(text.value).pipe(
            Effect.map(Option.some),
            Effect.mapError(() => new InvalidArgument({ message: `the stored value "${text.value.slice(0, 40)}" is not an offset` }))
          )),
    (consumerName, stream, offset) => kv.set(key(consumerName, stream), offset.toString())
  )
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Response codes of the stream protocol that this module names. */
const RESPONSE_CODES: Record<number, string> = {
  2: "stream does not exist",
  3: "subscription id already exists",
  4: "subscription id does not exist",
  5: "stream already exists",
  6: "stream not available",
  7: "SASL mechanism not supported",
  8: "authentication failure",
  9: "SASL error",
  10: "SASL challenge",
  11: "SASL authentication failure loopback",
  12: "virtual host access failure",
  13: "unknown frame",
  14: "frame too large",
  15: "internal error",
  16: "access refused",
  17: "precondition failed",
  18: "publisher does not exist",
  19: "no offset"
}
const codeName = (code: number) => RESPONSE_CODES[code] ?? "unknown code"

/** The client reports failures as `Error("... code N")`: recover N. */
const responseCode = (error: unknown): number | undefined => {
  // A reply that beats its write's callback makes the client reject with the bare code.
  if (typeof error === "number") return error
  const match = /(?:code|->) (\d+)/.exec(error instanceof Error ? error.message : String(error))
  return match ? Number(match[1]) : undefined
}

/**
 * Declares a super stream on either broker: created when missing, its partitions compared when
 * present (creating one that exists succeeds without a comparison, on the broker as in the
 * client). The retention of an existing one is not compared: the broker refuses a plain
 * declaration of a partition with the arguments its super stream was created with.
 */
const declareSuperStreamWith = (
  superStream: string,
  bindingKeys: ReadonlyArray<string>,
  broker: {
    readonly partitions: Effect.Effect<ReadonlyArray<string>, BrokerError | SuperStreamNotFound>
    readonly create: Effect.Effect<unknown, BrokerError | StreamPreconditionFailed>
  }
): Effect.Effect<void, BrokerError | StreamPreconditionFailed | SuperStreamMismatch> =>
  Effect.gen(function*() {
    const expected = bindingKeys.map((key) => partitionStream(superStream, key))
    const partitions = (notFound: () => Effect.Effect<ReadonlyArray<string>, BrokerError | StreamPreconditionFailed>) =>
      Effect.catchTag(broker.partitions, "SuperStreamNotFound", notFound)
    const actual = yield* partitions(() =>
      Effect.zipRight(
        broker.create,
        partitions(() =>
          Effect.fail(
            new BrokerError({
              operation: `declare super stream "${superStream}"`,
              reason: `a stream named like one of its partitions (${expected.join(", ")}) exists on its own: delete it, or use another name`
            })
          )
        )
      )
    )
    if (actual.length !== expected.length || actual.some((stream, i) => stream !== expected[i])) {
      return yield* Effect.fail(new SuperStreamMismatch({ superStream, expected, actual }))
    }
  })

/**
 * The client's failure of a broker command, as a BrokerError: the one place that reads the client's
 * words (its errors carry the response code in their text) to decide whether it may pass.
 */
const brokerError = (operation: string) => (error: unknown): BrokerError => {
  const code = responseCode(error)
  const refusedPublishers = code === 17 && operation.startsWith("declare a publisher")
  const reason = refusedPublishers
    ? PUBLISHERS_REFUSED
    : code !== undefined
    ? `${codeName(code)} (code ${code})`
    : errorText(error)
  const transient: Transient | undefined = refusedPublishers
    ? "alarm"
    : code === 6 || (code === undefined && NO_LEADER.test(reason))
    ? "noLeader"
    : code === undefined && isConnectionFailure(error)
    ? "connectionGone"
    : undefined
  return new BrokerError({ operation, reason, cause: error, ...(code !== undefined ? { code } : {}), transient })
}

// =============================================================================================
// For this package's own tests and benchmarks
// =============================================================================================

/**
 * The machinery this package's tests and benchmarks reach into. Not part of the API: left out of
 * the published types, and free to change.
 *
 * @internal
 * @since 0.1.0
 * @category internal
 */
export const Internal = {
  clientTuning,
  decodeDeliver,
  makeOffsetTracker,
  makeTurn,
  PendingEntries,
  publishFrames,
  selectUntilStop,
  splitByPartition
}
