/**
 * For the benchmark scripts: a stream of the tutorial's messages (`hello 0` ... `marker`), published
 * with a raw client tuned as this module tunes its own (`clientTuning`), so that writing it is quick.
 * Returns the client, for the caller to delete the stream and close it.
 */
import { Buffer } from "node:buffer"
import { type Client, connect } from "rabbitmq-stream-js-client"
import { Internal } from "../src/StreamOffsets.ts"

const { clientTuning } = Internal

export const publishTutorialStream = async (stream: string, count: number, port = 5552): Promise<Client> => {
  const client = await connect({ hostname: "localhost", port, username: "guest", password: "guest", vhost: "/" })
  clientTuning.tuneClient(client)
  await client.createStream({ stream, arguments: { "max-length-bytes": 2_000_000_000 } })
  const publisher = await client.declarePublisher({ stream })
  clientTuning.tunePublisher(publisher)
  for (let i = 0; i < count - 1; i++) await publisher.send(Buffer.from(`hello ${i}`))
  await publisher.send(Buffer.from("marker"))
  await publisher.flush()
  // Confirms are not awaited: give the broker a moment to write the last chunks.
  await new Promise((resolve) => setTimeout(resolve, 1500))
  return client
}
