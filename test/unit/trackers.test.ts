// The state machines behind producers and consumers, on their own: the offset tracker, the entries
// in flight, and the stop selection.
import { describe, expect, it } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Option, Stream, TestClock } from "effect"
import {
  Internal,
  OffsetStoreError,
  type PublishEntry,
  StartPosition,
  type StreamMessage,
  toOutbound
} from "../../src/StreamOffsets.ts"

const { makeOffsetTracker, makeTurn, PendingEntries, selectUntilStop } = Internal

/** An offset store in a variable; `visible: false` stores that never read back (the broker away). */
const fakeStore = (visible = true) => {
  const state = { value: Option.none<bigint>(), stores: [] as Array<bigint> }
  return {
    state,
    store: (offset: bigint) =>
      Effect.sync(() => {
        state.stores.push(offset)
        if (visible) state.value = Option.some(offset)
      }),
    query: Effect.sync(() => state.value)
  }
}

const tracker = (every: number, store = fakeStore()) =>
  Effect.map(
    makeOffsetTracker({ store: store.store, query: store.query, every, confirmTimeout: Duration.seconds(5) }),
    (t) => ({ t, store })
  )

describe("the offset tracker", () => {
  it.effect("out of turn (a single active consumer that lost its connection) it stores nothing, and says so", () =>
    Effect.gen(function*() {
      const store = fakeStore()
      const turn = { active: true }
      const t = yield* makeOffsetTracker({
        store: store.store,
        query: store.query,
        every: 1000,
        confirmTimeout: Duration.seconds(5),
        mayStore: () => turn.active
      })
      t.processed(29n, 30)
      turn.active = false
      yield* t.finalStore
      expect(store.state.stores).toEqual([])
      expect(t.progress().storeConfirmed).toBe(false)
      expect(Option.getOrThrow(t.progress().storeProblem)).toContain("offset 29 not stored: this consumer is no longer the active one")
      // In turn again: stored as usual.
      turn.active = true
      t.processed(35n, 31)
      yield* t.finalStore
      expect(store.state.stores).toEqual([35n])
      expect(t.progress().storeConfirmed).toBe(true)
    }))

  it.effect("a store falls due every N processed messages, at the offset that made it due", () =>
    Effect.gen(function*() {
      const { store, t } = yield* tracker(3)
      for (let i = 1; i <= 7; i++) t.processed(BigInt(i * 10), i)
      // Two stores fell due (after 3 and 6); storeDue makes one, at the latest due offset.
      yield* t.storeDue
      yield* t.storeDue
      expect(store.state.stores).toEqual([60n])
      expect(t.progress()).toMatchObject({ messages: 7, first: Option.some(10n), last: Option.some(70n) })
    }))

  it.effect("a count at or below the one seen is ignored: commits out of order change nothing", () =>
    Effect.gen(function*() {
      const { t } = yield* tracker(100)
      t.processed(50n, 5)
      t.processed(20n, 2)
      expect(t.progress().last).toEqual(Option.some(50n))
      expect(t.progress().messages).toBe(5)
    }))

  it.effect("stores only move forward, past what was stored before this run too", () =>
    Effect.gen(function*() {
      const store = fakeStore()
      yield* store.store(40n)
      const { t } = yield* tracker(1, store)
      expect(yield* t.readStored).toEqual(Option.some(40n))
      t.processed(30n, 1)
      yield* t.storeDue
      yield* t.storeIfAhead
      expect(store.state.stores).toEqual([40n])
      t.processed(41n, 2)
      yield* t.storeDue
      expect(store.state.stores).toEqual([40n, 41n])
    }))

  it.effect("the final store is read back, made once per last offset, and says so in its outcome", () =>
    Effect.gen(function*() {
      const { store, t } = yield* tracker(1000)
      t.processed(7n, 1)
      yield* t.finalStore
      yield* t.finalStore
      expect(store.state.stores).toEqual([7n])
      expect(t.progress()).toMatchObject({ storeConfirmed: true, storeProblem: Option.none(), lastStored: Option.some(7n) })
    }))

  it.effect("a second final store for the same offset waits for the one under way, and sees its outcome", () =>
    Effect.gen(function*() {
      const store = fakeStore()
      const t = yield* makeOffsetTracker({
        store: (offset) => Effect.delay(store.store(offset), "1 second"),
        query: store.query,
        every: 1000,
        confirmTimeout: Duration.seconds(5)
      })
      t.processed(7n, 1)
      const first = yield* Effect.fork(t.finalStore)
      yield* TestClock.adjust("10 millis")
      const second = yield* Effect.fork(t.finalStore)
      yield* TestClock.adjust("10 millis")
      expect(second.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(second)
      expect(t.progress().storeConfirmed).toBe(true)
      yield* Fiber.join(first)
      expect(store.state.stores).toEqual([7n])
    }))

  it.effect("a final store that never reads back ends at the bound, with the problem said", () =>
    Effect.gen(function*() {
      const { t } = yield* tracker(1000, fakeStore(false))
      t.processed(7n, 1)
      const fiber = yield* Effect.fork(t.finalStore)
      yield* TestClock.adjust("5 seconds")
      yield* Fiber.join(fiber)
      expect(t.progress().storeConfirmed).toBe(false)
      expect(Option.getOrThrow(t.progress().storeProblem)).toMatch(/not confirmed within 5s/)
    }))

  it.effect("a failing store is reported by the final store, not thrown", () =>
    Effect.gen(function*() {
      const t = yield* makeOffsetTracker({
        store: () => Effect.fail(new OffsetStoreError({ operation: "store", consumerName: "c", stream: "s", cause: "disk full" })),
        query: Effect.succeed(Option.none()),
        every: 1,
        confirmTimeout: Duration.seconds(5)
      })
      t.processed(1n, 1)
      expect((yield* Effect.flip(t.storeDue))._tag).toBe("OffsetStoreError")
      yield* t.finalStore
      expect(Option.getOrThrow(t.progress().storeProblem)).toMatch(/disk full/)
    }))
})

const body = (text: string) => new TextEncoder().encode(text)
/** Entries of one message each, publishing ids from `first`; or one sub-entry batch. */
const entries = (first: bigint, ...texts: Array<string>) =>
  texts.map((text, i) => ({ publishingId: first + BigInt(i), messages: [toOutbound(text)] }))
const batch = (id: bigint, ...texts: Array<string>) => [{ publishingId: id, messages: texts.map((t) => toOutbound(t)) }]
const pendingOf = (...all: Array<Array<PublishEntry>>) => {
  const pending = new PendingEntries()
  for (const e of all.flat()) pending.push(e)
  return pending
}
const ids = (es: ReadonlyArray<PublishEntry>) => es.map((e) => e.publishingId)

describe("the entries in flight (a producer's confirms)", () => {
  it("a confirm finds its entry once; an unknown or repeated id finds nothing", () => {
    const pending = pendingOf(entries(1n, "a", "b", "c", "d"))
    expect(pending.confirm(1n)?.publishingId).toBe(1n)
    expect(pending.confirm(1n)).toBeUndefined()
    expect(pending.confirm(99n)).toBeUndefined()
    expect(pending.confirm(0n)).toBeUndefined()
    expect(pending.oldest()?.publishingId).toBe(2n)
    expect(ids(pending.unconfirmed())).toEqual([2n, 3n, 4n])
  })

  it("confirms out of order are found once each (bisection past confirmed holes); the rest stays in order", () => {
    const pending = pendingOf(entries(1n, ...Array.from({ length: 40 }, (_, i) => `m${i}`)))
    const found = [3n, 1n, 2n, 40n, 3n, 17n, 18n, 16n, 41n, 0n].filter((id) => pending.confirm(id) !== undefined)
    expect(found).toEqual([3n, 1n, 2n, 40n, 17n, 18n, 16n])
    expect(ids(pending.unconfirmed())).toEqual(
      Array.from({ length: 39 }, (_, i) => BigInt(i + 1)).filter((id) => ![1n, 2n, 3n, 16n, 17n, 18n].includes(id))
    )
    // Every id still pending is found, wherever it is.
    for (const id of ids(pending.unconfirmed()).reverse()) expect(pending.confirm(id)?.publishingId).toBe(id)
    expect(pending.oldest()).toBeUndefined()
  })

  it("on a new publisher, what the broker has is confirmed up to its last id; the rest goes again in order", () => {
    const pending = pendingOf(entries(1n, "a", "b", "c", "d"))
    pending.confirm(2n)
    expect(ids(pending.confirmUpTo(3n))).toEqual([1n, 3n])
    const again = pending.unconfirmed()
    expect(ids(again)).toEqual([4n])
    expect(new TextDecoder().decode(again[0]!.messages[0]!.body)).toBe("d")
  })

  it("a sub-entry batch is one entry: one publishing id for all its messages", () => {
    const pending = pendingOf(batch(3n, "a", "b", "c"), batch(5n, "d", "e"))
    expect(pending.confirm(3n)?.messages.length).toBe(3)
    expect(pending.unconfirmed().map((e) => [e.publishingId, e.messages.length])).toEqual([[5n, 2]])
  })

  it("a long run: confirmed entries are compacted away, the order kept", () => {
    const pending = pendingOf(entries(1n, ...Array.from({ length: 5000 }, (_, i) => `m${i}`)))
    for (let id = 1n; id <= 4000n; id++) if (id % 7n !== 0n) pending.confirm(id)
    expect(pending.unconfirmed().length).toBe(1000 + 571)
    expect(ids(pending.confirmUpTo(4000n)).length).toBe(571)
    expect(pending.oldest()?.publishingId).toBe(4001n)
    expect(ids(pending.drain()).length).toBe(1000)
    expect(pending.oldest()).toBeUndefined()
  })
})

const message = (offset: number, text = `m${offset}`): StreamMessage => ({ offset: BigInt(offset), body: body(text) })
const chunks = (...sizes: Array<number>) => {
  let offset = 0
  return Stream.fromChunks(...sizes.map((n) => Chunk.fromIterable(Array.from({ length: n }, () => message(offset++)))))
}

describe("the stop selection", () => {
  it.effect("cuts a chunk after the message that meets a condition, which ends the stream and says why", () =>
    Effect.gen(function*() {
      const selections = yield* selectUntilStop(
        chunks(3, 3, 3),
        { stream: "s", test: (m) => (m.offset === 4n ? "marker" : undefined) }
      ).pipe(Stream.runCollect)
      expect(Chunk.toArray(selections).map((s) => [s.firstIndex, s.messages.length, s.stop])).toEqual([
        [0, 3, undefined],
        [3, 2, "marker"]
      ])
    }))

  it.effect("the index counts across chunks (a count condition)", () =>
    Effect.gen(function*() {
      const selections = yield* selectUntilStop(chunks(4, 4), { stream: "s", test: (_, index) => (index + 1 >= 6 ? "count" : undefined) }).pipe(
        Stream.runCollect
      )
      expect(Chunk.toArray(selections).map((s) => [s.firstIndex, s.messages.length, s.stop])).toEqual([
        [0, 4, undefined],
        [4, 2, "count"]
      ])
    }))

  it.effect("an idle timeout ends the stream with a last, empty selection that says idle", () =>
    Effect.gen(function*() {
      const fiber = yield* selectUntilStop(Stream.concat(chunks(2), Stream.never), { stream: "s", test: () => undefined }, "3 seconds").pipe(
        Stream.runCollect,
        Effect.fork
      )
      yield* TestClock.adjust("3 seconds")
      const selections = Chunk.toArray(yield* Fiber.join(fiber))
      expect(selections.map((s) => [s.messages.length, s.stop])).toEqual([[2, undefined], [0, "idle"]])
    }))
})

describe("a single active consumer's turn", () => {
  const chunk = (...offsets: Array<number>) => Chunk.fromIterable(offsets.map((o): StreamMessage => ({ offset: BigInt(o), body: new Uint8Array() })))
  const offsetsOf = (messages: Chunk.Chunk<StreamMessage>) => Chunk.toReadonlyArray(messages).map((m) => Number(m.offset))

  it.effect("admits nothing out of turn (before the broker activates it, and a chunk that arrives after it stepped down)", () =>
    Effect.gen(function*() {
      const { t, store } = yield* tracker(1000)
      const turn = yield* makeTurn(t, { resolveActivation: Effect.succeed(StartPosition.Offset({ offset: 10n })) })
      expect(offsetsOf(turn.admit(chunk(8, 9, 10, 11)))).toEqual([])
      yield* turn.activate
      // A new turn starts where the activation says: what comes before it is not this turn's.
      expect(turn.isActive()).toBe(true)
      expect(offsetsOf(turn.admit(chunk(8, 9, 10, 11)))).toEqual([10, 11])
      t.processed(11n, 2)
      expect(offsetsOf(turn.admit(chunk(10, 11, 12)))).toEqual([12])
      // Stepping down stores what was processed; a chunk handed over after that is dropped.
      yield* turn.stepDown
      expect(store.state.stores).toEqual([11n])
      expect(turn.isActive()).toBe(false)
      expect(offsetsOf(turn.admit(chunk(12, 13)))).toEqual([])
    }))

  it.effect("a step-down waits for the processing under way, then stores it", () =>
    Effect.gen(function*() {
      const { t, store } = yield* tracker(1000)
      const turn = yield* makeTurn(t, { resolveActivation: Effect.succeed(StartPosition.First()) })
      yield* turn.activate
      const processing = yield* Effect.fork(turn.locked(Effect.andThen(Effect.sleep("1 second"), Effect.sync(() => t.processed(4n, 5)))))
      const stepping = yield* Effect.fork(turn.stepDown)
      yield* TestClock.adjust("500 millis")
      expect(turn.isActive()).toBe(true)
      expect(store.state.stores).toEqual([])
      yield* TestClock.adjust("500 millis")
      yield* Fiber.join(processing)
      yield* Fiber.join(stepping)
      expect(store.state.stores).toEqual([4n])
      expect(turn.isActive()).toBe(false)
    }))
})
