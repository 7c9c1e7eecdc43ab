# Writes messages with rstream (the Python client of RabbitMQ's stream tutorials) as its users do:
# properties, application properties with falsy values (0, False, "", None), a filter value.
#   PYTHONPATH=<rstream> python3 test/interop/rstream_write.py STREAM COUNT
import asyncio, sys
from rstream import AMQPMessage, Producer, Properties


async def region(message):
    return message.application_properties["region"]


async def main(stream, count):
    async with Producer("localhost", username="guest", password="guest", filter_value_extractor=region) as producer:
        await producer.create_stream(stream, exists_ok=True, arguments={"max-length-bytes": 2_000_000_000})
        messages = [
            AMQPMessage(
                body=f"hello {i}".encode(),
                properties=Properties(message_id=f"id-{i}", correlation_id=i, content_type="text/plain"),
                application_properties={"region": "eu" if i % 2 == 0 else "us", "n": i, "flag": False, "empty": "", "none": None},
            )
            for i in range(count)
        ]
        await producer.send_batch(stream, messages)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
