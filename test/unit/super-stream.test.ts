// Super streams on the memory broker: routing, declaration, per-partition resume, and single
// active consumers that share the partitions and hand them over after the stored offsets.
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Deferred, Effect, Either, Fiber, Layer, Option, Stream } from "effect"
import { Buffer } from "node:buffer"
import { createRequire } from "node:module"
import {
  bodyText,
  BrokerError,
  consumeSuperStream,
  hashPartition,
  inspectSuperStreamOffsets,
  Internal,
  isTutorialMarker,
  MemoryBroker,
  murmur3,
  OffsetStore,
  type PartitionMessage,
  receiveSuperStream,
  Routing,
  sendToSuperStream,
  StreamBroker,
  TrackingStrategy,
  tutorialMessages,
  validateSendOptions,
  validateSuperStreamConsumeOptions,
  validateSuperStreamSendOptions
} from "../../src/StreamOffsets.ts"

const { splitByPartition } = Internal

const serverSide = OffsetStore.layerServer.pipe(Layer.provideMerge(StreamBroker.layerMemory({ chunkSize: 7 })))

const lines = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `m ${from + i}`)

/** Yields until `done` holds (the memory broker and the consumers run on fibers of this test). */
const eventually = (done: () => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 100_000 && !done(); i++) yield* Effect.yieldNow()
    expect(done()).toBe(true)
  })

describe("hash routing", () => {
  it("is MurmurHash3 x86_32 with seed 104729, as the client and the Java client route", () => {
    expect([murmur3("hello"), murmur3("order-1"), murmur3("0")]).toEqual([1321743225, 828619386, 2929165565])
    // Unsigned: "0" hashes above 2^31, where a signed remainder would pick another partition.
    expect(hashPartition("0", 3)).toBe(2)
    const { murmur32 } = createRequire(import.meta.url)("rabbitmq-stream-js-client/dist/hash/murmur32.js")
    for (let i = 0; i < 2000; i++) {
      const key = `${i.toString(36)}-é-${"x".repeat(i % 7)}`
      expect(murmur3(key)).toBe(murmur32(key))
    }
  })
})

/** The tutorial's marker to every partition, as the CLI sends it. */
const toEveryPartition = (body: Uint8Array) => isTutorialMarker({ offset: 0n, body })

describe("sendToSuperStream", () => {
  it.effect("routes each message by the hash of its body; the marker ends every partition", () =>
    Effect.gen(function*() {
      const summary = yield* sendToSuperStream({ superStream: "orders", messages: tutorialMessages(300), toEveryPartition })
      expect(summary.sent).toBe(299 + 3)
      expect(summary.confirmed).toBe(summary.sent)
      const memory = yield* MemoryBroker
      const partitions = ["orders-0", "orders-1", "orders-2"]
      expect(summary.partitions.map((p) => p.stream)).toEqual(partitions)
      for (const [i, partition] of partitions.entries()) {
        const bodies = (yield* memory.messages(partition)).map(bodyText)
        expect(bodies.length).toBeGreaterThan(50)
        expect(bodies.at(-1)).toBe("marker")
        for (const body of bodies.slice(0, -1)) expect(hashPartition(body, 3)).toBe(i)
      }
    }).pipe(Effect.provide(serverSide)))

  it.effect("a named producer run again publishes nothing twice, on any partition", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const first = yield* sendToSuperStream({ superStream: "s", messages: lines(1000), producerName: "p" })
      expect(first.sent).toBe(1000)
      const again = yield* sendToSuperStream({ superStream: "s", messages: lines(1000), producerName: "p" })
      expect(again).toMatchObject({ sent: 0, skipped: 1000 })
      // Interrupted half-way, then run again: each partition gets what it lacks.
      const more = [...lines(1000), ...lines(500, 1000)]
      yield* sendToSuperStream({ superStream: "s", messages: more, producerName: "p" })
      const all = []
      for (const p of ["s-0", "s-1", "s-2"]) all.push(...(yield* memory.messages(p)).map(bodyText))
      expect(all.length).toBe(1500)
      expect(new Set(all).size).toBe(1500)
    }).pipe(Effect.provide(serverSide)))

  it.effect("key routing: by binding key; a key bound to no partition fails the send in one line", () =>
    Effect.gen(function*() {
      const memory = yield* MemoryBroker
      const region = (body: Uint8Array) => new TextDecoder().decode(body).split(":")[0]!
      yield* sendToSuperStream({
        superStream: "r",
        bindingKeys: ["eu", "us"],
        messages: ["eu:1", "us:2", "eu:3"],
        routing: Routing.Key({ key: region })
      })
      expect((yield* memory.messages("r-eu")).map(bodyText)).toEqual(["eu:1", "eu:3"])
      expect((yield* memory.messages("r-us")).map(bodyText)).toEqual(["us:2"])
      const failed = yield* Effect.either(
        sendToSuperStream({ superStream: "r", bindingKeys: ["eu", "us"], messages: ["ap:4"], routing: Routing.Key({ key: region }) })
      )
      expect(Either.isLeft(failed) && failed.left.message).toContain(`no partition of super stream "r" is bound to the routing key "ap"`)
    }).pipe(Effect.provide(serverSide)))

  it.effect("an existing super stream with other partitions is refused, saying what it has", () =>
    Effect.gen(function*() {
      yield* sendToSuperStream({ superStream: "s", partitions: 3, messages: [] })
      const failed = yield* Effect.flip(sendToSuperStream({ superStream: "s", partitions: 2, messages: [] }))
      expect(failed._tag).toBe("SuperStreamMismatch")
      expect(failed.message).toBe(
        `super stream "s" exists with partitions s-0, s-1, s-2, not s-0, s-1: declare it as it is (3 partitions), or use another name`
      )
      const invalid = yield* Effect.flip(sendToSuperStream({ superStream: "s", partitions: 0, messages: [] }))
      expect(invalid.message).toBe("the number of partitions must be a positive integer, got 0")
    }).pipe(Effect.provide(serverSide)))
})

describe("checking options before the broker is asked", () => {
  it.effect("one check per options type, the same the workflow makes first: a bad name is said before a missing super stream", () =>
    Effect.gen(function*() {
      const badName = yield* Effect.flip(validateSuperStreamConsumeOptions({ superStream: "orders", consumerName: "" }))
      expect(badName.message).toBe("the consumer name must be 1 to 255 bytes long, got an empty one")
      // The super stream does not exist, yet the workflow fails on the name (it checks before it asks the broker).
      const fromWorkflow = yield* Effect.flip(receiveSuperStream({ superStream: "orders", consumerName: "" }))
      expect(fromWorkflow).toEqual(badName)
      const retention = yield* Effect.flip(validateSendOptions({ stream: "s", messages: [], retention: { maxAge: "7 days" } }))
      expect(retention.message).toContain("max-age must be a number and a unit")
      const partitions = yield* Effect.flip(validateSuperStreamSendOptions({ superStream: "s", partitions: 0, messages: [] }))
      expect(partitions.message).toBe("the number of partitions must be a positive integer, got 0")
      const tuning = yield* Effect.flip(validateSendOptions({ stream: "s", messages: [], compression: "gzip" }))
      expect(tuning.message).toBe("compression applies to sub-entry batches: give subEntrySize > 1 with it")
      yield* validateSendOptions({ stream: "s", messages: [] })
    }).pipe(Effect.provide(serverSide)))
})

describe("splitting the messages by partition", () => {
  const byParity = (messages: Chunk.Chunk<unknown>) => Effect.succeed(Chunk.toReadonlyArray(messages).map((m) => Number(m) % 2))
  const text = (m: unknown) => (typeof m === "string" ? m : Buffer.from(m as Uint8Array).toString())

  it.scoped("reads ahead at most the limit for a partition whose publisher does not take its messages; nothing is lost", () =>
    Effect.gen(function*() {
      let read = 0
      const numbered = Stream.unfold(0, (i) => (i >= 1000 ? Option.none() : (read++, Option.some([`${i}`, i + 1] as const))))
      const [p0, p1] = yield* splitByPartition(numbered, 2, byParity, { limit: 10, batchSize: 100 })
      // Nobody takes: the reading stops once a partition holds 10 (0..18 and 1..19, then 20 waits).
      yield* eventually(() => read >= 21)
      yield* Effect.repeatN(Effect.yieldNow(), 100)
      expect(read).toBe(21)
      // Partition 0 takes 10: room again, and the reading goes on until partition 1 is full again.
      const first = yield* Stream.runCollect(Stream.take(p0!, 10))
      expect(Chunk.toReadonlyArray(first).map(text)).toEqual(["0", "2", "4", "6", "8", "10", "12", "14", "16", "18"])
      yield* Effect.repeatN(Effect.yieldNow(), 100)
      expect(read).toBe(22)
      // Both take: every message reaches its partition, in order.
      const [rest0, all1] = yield* Effect.all([Stream.runCollect(p0!), Stream.runCollect(p1!)], { concurrency: 2 })
      expect(Chunk.toReadonlyArray(rest0).map(text)).toEqual(Array.from({ length: 490 }, (_, i) => `${20 + 2 * i}`))
      expect(Chunk.toReadonlyArray(all1).map(text)).toEqual(Array.from({ length: 500 }, (_, i) => `${1 + 2 * i}`))
      expect(read).toBe(1000)
    }))

  it.scoped("a marker goes to every partition; chunks are handed on whole, at most the batch size", () =>
    Effect.gen(function*() {
      const route = (messages: Chunk.Chunk<unknown>) =>
        Effect.succeed(Chunk.toReadonlyArray(messages).map((m) => (m === "marker" ? -1 : Number(m) % 3)))
      const messages = Stream.fromIterable([...Array.from({ length: 30 }, (_, i) => `${i}`), "marker"])
      const parts = yield* splitByPartition(messages, 3, route, { batchSize: 4 })
      const chunks = yield* Effect.forEach(parts, (part) => Stream.runCollect(Stream.chunks(part)), { concurrency: 3 })
      chunks.forEach((partition, p) => {
        const all = Chunk.toReadonlyArray(partition).flatMap((chunk) => Chunk.toReadonlyArray(chunk).map(text))
        expect(all).toEqual([...Array.from({ length: 10 }, (_, i) => `${p + 3 * i}`), "marker"])
        for (const chunk of partition) expect(Chunk.size(chunk)).toBeLessThanOrEqual(4)
      })
    }))

  it.scoped("a routing failure (the broker gave up) fails every partition's stream, after the chunks before it", () =>
    Effect.gen(function*() {
      let calls = 0
      const failing = (messages: Chunk.Chunk<unknown>) =>
        ++calls === 2
          ? Effect.fail(new BrokerError({ operation: "route", reason: "the connection was closed" }))
          : byParity(messages)
      const messages = Stream.fromIterable(["0", "1", "2", "3", "4", "5"]).pipe(Stream.rechunk(2))
      const [p0, p1] = yield* splitByPartition(messages, 2, failing)
      const outcome = (part: Stream.Stream<unknown, BrokerError>) =>
        Stream.runCollect(Stream.catchAll(Stream.map(part, text), (e) => Stream.make(`failed: ${e.operation}`)))
      expect(Chunk.toReadonlyArray(yield* outcome(p0!))).toEqual(["0", "failed: route"])
      expect(Chunk.toReadonlyArray(yield* outcome(p1!))).toEqual(["1", "failed: route"])
    }))
})

describe("receiveSuperStream", () => {
  it.effect("stops when every partition reached its marker; runs again after each partition's stored offset", () =>
    Effect.gen(function*() {
      yield* sendToSuperStream({ superStream: "s", messages: tutorialMessages(100), toEveryPartition })
      const seen: Array<PartitionMessage> = []
      const first = yield* receiveSuperStream({
        superStream: "s",
        consumerName: "c",
        stop: { marker: isTutorialMarker },
        onMessage: (m) => Effect.sync(() => void seen.push(m))
      })
      expect(first.stoppedBy).toBe("marker")
      expect(first.messages).toBe(102)
      expect(first.partitions.map((p) => p.stoppedBy)).toEqual(["marker", "marker", "marker"])
      expect(first.partitions.map((p) => p.storeConfirmed)).toEqual([true, true, true])
      for (const p of first.partitions) expect(seen.filter((m) => m.partition === p.partition).length).toBe(p.messages)
      // More messages; the next run starts after each partition's stored offset.
      yield* sendToSuperStream({ superStream: "s", messages: lines(60) })
      const second = yield* receiveSuperStream({ superStream: "s", consumerName: "c", stop: { untilEnd: true } })
      expect(second.messages).toBe(60)
      expect(second.stoppedBy).toBe("end")
      expect(second.partitions.every((p) => p.resumed)).toBe(true)
      const reports = yield* inspectSuperStreamOffsets("s", "c")
      expect(reports.map((r) => r.lag)).toEqual([Option.some(0n), Option.some(0n), Option.some(0n)])
    }).pipe(Effect.provide(serverSide)))

  it.effect("a count holds for all partitions together", () =>
    Effect.gen(function*() {
      yield* sendToSuperStream({ superStream: "s", messages: lines(200) })
      const summary = yield* receiveSuperStream({ superStream: "s", consumerName: "c", stop: { count: 50, marker: false } })
      expect(summary).toMatchObject({ messages: 50, stoppedBy: "count" })
      const rest = yield* receiveSuperStream({ superStream: "s", consumerName: "c", stop: { untilEnd: true } })
      expect(rest.messages).toBe(150)
    }).pipe(Effect.provide(serverSide)))

  it.effect("single active consumers share the partitions and hand them over after the stored offsets", () =>
    Effect.gen(function*() {
      const seen: Array<{ readonly who: string; readonly body: string; readonly partition: string }> = []
      const consumer = (who: string, signal: Deferred.Deferred<void>) =>
        receiveSuperStream({
          superStream: "s",
          consumerName: "group",
          singleActive: true,
          tracking: TrackingStrategy.Manual({ every: 5 }),
          stop: { marker: false, signal: Deferred.await(signal) },
          onMessage: (m) => Effect.sync(() => void seen.push({ who, body: bodyText(m), partition: m.partition }))
        })
      yield* sendToSuperStream({ superStream: "s", messages: lines(300) })
      const stopA = yield* Deferred.make<void>()
      const stopB = yield* Deferred.make<void>()
      // A alone: every partition is A's.
      const a = yield* Effect.fork(consumer("A", stopA))
      yield* eventually(() => seen.length === 300)
      expect(new Set(seen.map((s) => s.who))).toEqual(new Set(["A"]))
      // B joins: partition 1 (1 mod 2) is handed over to B; 0 and 2 stay with A.
      const b = yield* Effect.fork(consumer("B", stopB))
      yield* sendToSuperStream({ superStream: "s", messages: lines(300, 300) })
      yield* eventually(() => seen.length === 600)
      const later = seen.slice(300)
      expect(new Set(later.filter((s) => s.who === "B").map((s) => s.partition))).toEqual(new Set(["s-1"]))
      expect(new Set(later.filter((s) => s.who === "A").map((s) => s.partition))).toEqual(new Set(["s-0", "s-2"]))
      // B stops: partition 1 goes back to A, after what B stored.
      yield* Deferred.succeed(stopB, undefined)
      const bSummary = yield* Fiber.join(b)
      expect(bSummary.stoppedBy).toBe("signal")
      yield* sendToSuperStream({ superStream: "s", messages: lines(300, 600) })
      yield* eventually(() => seen.length === 900)
      expect(new Set(seen.slice(600).map((s) => s.who))).toEqual(new Set(["A"]))
      yield* Deferred.succeed(stopA, undefined)
      yield* Fiber.join(a)
      // Every message exactly once, over both consumers.
      expect(seen.length).toBe(900)
      expect(new Set(seen.map((s) => s.body)).size).toBe(900)
    }).pipe(Effect.provide(serverSide)))

  it.effect("consumeSuperStream: batches committed per partition; the next run resumes after the commits", () =>
    Effect.gen(function*() {
      yield* sendToSuperStream({ superStream: "s", messages: lines(300) })
      const options = { superStream: "s", consumerName: "c", stop: { marker: false, untilEnd: true } as const }
      // Commit the last message of each partition's batch of 10; stop after 100 messages in all.
      const first = yield* consumeSuperStream({ ...options, stop: { ...options.stop, count: 100 } }).pipe(
        Stream.groupAdjacentBy((m) => m.partition),
        Stream.mapEffect(([, batch]) => Effect.as(Chunk.unsafeLast(batch).commit, Chunk.size(batch))),
        Stream.runSum
      )
      expect(first).toBe(100)
      const rest = yield* Stream.runCollect(consumeSuperStream(options).pipe(Stream.tap((m) => m.commit)))
      expect(Chunk.size(rest)).toBe(200)
      expect(new Set(Chunk.toReadonlyArray(rest).map((m) => m.partition))).toEqual(new Set(["s-0", "s-1", "s-2"]))
    }).pipe(Effect.provide(serverSide)))

  it.effect("a partition handed away in the middle of a chunk and back: nothing lost, nothing twice", () =>
    Effect.gen(function*() {
      // A is in the middle of a chunk of partition 1 when B joins: the hand-over waits for that
      // message, A stores, B goes on after it, processes a little and stops; A takes it back.
      const byKey = Routing.Key({ key: (b) => new TextDecoder().decode(b).split(":")[0]! })
      const send = (p: string, from: number, n: number) =>
        sendToSuperStream({
          superStream: "s",
          bindingKeys: ["0", "1"],
          routing: byKey,
          messages: Array.from({ length: n }, (_, i) => `${p}:${from + i}`)
        })
      const settle = Effect.forEach(Array.from({ length: 300 }), () => Effect.yieldNow(), { discard: true })
      const seen: Array<string> = []
      const gates = { a: 30, doneA: 0, b: 4, doneB: 0 }
      const waitFor = (open: () => boolean) =>
        Effect.gen(function*() {
          while (!open()) yield* Effect.yieldNow()
        })
      const consumer = (who: "A" | "B", signal: Deferred.Deferred<void>) =>
        receiveSuperStream({
          superStream: "s",
          consumerName: "g",
          singleActive: true,
          tracking: TrackingStrategy.Manual({ every: 1000 }),
          stop: { marker: false, signal: Deferred.await(signal) },
          onMessage: (m) =>
            Effect.gen(function*() {
              if (m.partition === "s-1") {
                const done = who === "A" ? "doneA" : "doneB"
                yield* waitFor(() => gates[done] < gates[who === "A" ? "a" : "b"])
                gates[done]++
              }
              seen.push(`${who} ${m.partition} ${m.offset}`)
            })
        })
      const stopA = yield* Deferred.make<void>()
      const stopB = yield* Deferred.make<void>()
      yield* send("1", 0, 70)
      const a = yield* Effect.fork(consumer("A", stopA))
      yield* eventually(() => gates.doneA === 30) // offset 30, the 3rd message of a chunk of 7, waits
      const b = yield* Effect.fork(consumer("B", stopB))
      yield* settle
      gates.a = 1000
      yield* eventually(() => gates.doneB === gates.b)
      yield* settle
      yield* Deferred.succeed(stopB, undefined)
      yield* Fiber.join(b)
      yield* eventually(() => seen.length >= 70)
      yield* settle
      yield* Deferred.succeed(stopA, undefined)
      yield* Fiber.join(a)
      const p1 = seen.filter((s) => s.includes(" s-1 ")).map((s) => Number(s.split(" ")[2]))
      expect(p1.length).toBe(70)
      expect(new Set(p1).size).toBe(70)
      expect(seen.filter((s) => s.startsWith("B s-1")).length).toBe(4)
      const reports = yield* inspectSuperStreamOffsets("s", "g")
      expect(reports.map((r) => r.storedOffset)).toEqual([Option.none(), Option.some(69n)])
    }).pipe(Effect.provide(serverSide)))

  it.effect("ignoreStoredOffset ignores what was stored before the start, not what a peer stores on handing over", () =>
    Effect.gen(function*() {
      const seen: Array<{ readonly who: string; readonly body: string }> = []
      const consumer = (who: string, signal: Deferred.Deferred<void>, ignoreStoredOffset: boolean) =>
        receiveSuperStream({
          superStream: "s",
          consumerName: "group",
          singleActive: true,
          ignoreStoredOffset,
          stop: { marker: false, signal: Deferred.await(signal) },
          onMessage: (m) => Effect.sync(() => void seen.push({ who, body: bodyText(m) }))
        })
      yield* sendToSuperStream({ superStream: "s", messages: lines(300) })
      const stopA = yield* Deferred.make<void>()
      const stopB = yield* Deferred.make<void>()
      const a = yield* Effect.fork(consumer("A", stopA, false))
      yield* eventually(() => seen.length === 300)
      // B would start at the first message if it ignored A's offset on partition 1.
      const b = yield* Effect.fork(consumer("B", stopB, true))
      yield* sendToSuperStream({ superStream: "s", messages: lines(300, 300) })
      yield* eventually(() => seen.length >= 600)
      yield* Effect.forEach(Array.from({ length: 300 }), () => Effect.yieldNow(), { discard: true })
      yield* Deferred.succeed(stopB, undefined)
      yield* Deferred.succeed(stopA, undefined)
      yield* Fiber.join(b)
      yield* Fiber.join(a)
      expect(seen.length).toBe(600)
      expect(seen.filter((s) => s.who === "B").every((s) => Number(s.body.slice(2)) >= 300)).toBe(true)
    }).pipe(Effect.provide(serverSide)))

  it.effect("a failure in onMessage fails the run, after storing what each partition processed", () =>
    Effect.gen(function*() {
      yield* sendToSuperStream({ superStream: "s", messages: lines(300) })
      const failed = yield* Effect.flip(receiveSuperStream({
        superStream: "s",
        consumerName: "c",
        stop: { marker: false },
        onMessage: (m) => bodyText(m) === "m 150" ? Effect.fail("cannot handle m 150" as const) : Effect.void
      }))
      expect(failed).toBe("cannot handle m 150")
      const rest = yield* receiveSuperStream({ superStream: "s", consumerName: "c", stop: { untilEnd: true } })
      // Everything after what was processed comes again, m 150 included.
      expect(rest.messages).toBeGreaterThan(0)
      expect(rest.messages).toBeLessThan(300)
    }).pipe(Effect.provide(serverSide)))
})
