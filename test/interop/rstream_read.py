# Reads a stream with rstream (the Python client of RabbitMQ's stream tutorials) and prints each
# message as rstream decodes it, one JSON object a line: what another client makes of what we wrote.
#   PYTHONPATH=<rstream> python3 test/interop/rstream_read.py STREAM COUNT [FILTER_VALUE]
import asyncio, base64, datetime, json, sys, uuid
from rstream import Consumer, ConsumerOffsetSpecification, FilterConfiguration, OffsetType, amqp_decoder



def plain(value):
    """rstream's decoded values as JSON: bytes as text when they are UTF-8 (rstream gives strings as bytes)."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return {"binary": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    if isinstance(value, datetime.datetime):
        return {"timestamp": value.isoformat()}
    return value


async def main(STREAM, COUNT, FILTER):
    seen = []
    done = asyncio.Event()

    async def on_message(msg, context):
        properties = msg.properties
        seen.append({
            "offset": context.offset,
            "body": plain(msg.body),
            "value": plain(msg.value),
            "properties": None if properties is None else {k: plain(v) for k, v in properties._asdict().items() if v is not None},
            "applicationProperties": plain(msg.application_properties),
            "messageAnnotations": plain(msg.message_annotations),
        })
        if len(seen) >= COUNT:
            done.set()

    async with Consumer("localhost", username="guest", password="guest") as consumer:
        await consumer.subscribe(
            stream=STREAM,
            callback=on_message,
            decoder=amqp_decoder,
            offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST, None),
            filter_input=None if FILTER is None else FilterConfiguration(values_to_filter=[FILTER], match_unfiltered=False),
        )
        runner = asyncio.create_task(consumer.run())
        try:
            await asyncio.wait_for(done.wait(), 10)
        except asyncio.TimeoutError:
            pass
        runner.cancel()
    for message in seen:
        print(json.dumps(message))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
