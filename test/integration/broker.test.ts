// The chain everything else stands on: a real RabbitMQ 4 with streams, reached by the raw client.
import { describe, expect, it } from "@effect/vitest"
import { connect, Offset } from "rabbitmq-stream-js-client"
import { Buffer } from "node:buffer"

const port = Number(process.env.RABBITMQ_STREAM_PORT ?? "5552")

describe("the broker", () => {
  it("declares a stream, confirms published messages, delivers them back, deletes the stream", async () => {
    const confirmed: Array<bigint> = []
    const client = await connect({
      hostname: "localhost",
      port,
      username: "guest",
      password: "guest",
      vhost: "/",
      listeners: { publish_confirm: (confirm) => void confirmed.push(...confirm.publishingIds) }
    })
    const stream = `chain-${process.pid}-${Date.now()}`
    const deadline = Date.now() + 10_000
    try {
      await client.createStream({ stream, arguments: { "max-length-bytes": 10_000_000 } })
      const publisher = await client.declarePublisher({ stream })
      for (const body of ["one", "two", "three"]) await publisher.send(Buffer.from(body))
      await publisher.flush()
      const waitFor = async (done: () => boolean) => {
        while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
      }
      await waitFor(() => confirmed.length === 3)
      expect(confirmed).toEqual([1n, 2n, 3n])
      await client.deletePublisher(publisher.extendedId)

      const received: Array<string> = []
      const consumer = await client.declareConsumer({ stream, offset: Offset.first() }, (message) => {
        received.push(message.content.toString())
      })
      await waitFor(() => received.length === 3)
      expect(received).toEqual(["one", "two", "three"])
      await client.closeConsumer(consumer.extendedId)
    } finally {
      await client.deleteStream({ stream })
      await client.close()
    }
  })
})
