# Adds to test/fixtures/amqp/ours.json what rstream (the Python client of RabbitMQ's stream
# tutorials) decodes from the bytes this module writes (see ours-fixtures.ts).
#   PYTHONPATH=<rstream> python3 test/interop/rstream_decode.py
import json, os, sys
sys.path.insert(0, os.path.dirname(__file__))
from rstream import amqp_decoder
from rstream_read import plain

path = os.path.join(os.path.dirname(__file__), "../fixtures/amqp/ours.json")
fixtures = json.load(open(path))
for fixture in fixtures:
    msg = amqp_decoder(bytes.fromhex(fixture["hex"]))
    properties = msg.properties
    header = msg.header
    fixture["rstream"] = {
        "body": plain(msg.body),
        "value": plain(msg.value),
        "sequence": plain(msg.sequence),
        "header": None if header is None else {k: v for k, v in header._asdict().items() if v is not None},
        "properties": None if properties is None else {k: plain(v) for k, v in properties._asdict().items() if v is not None},
        "applicationProperties": plain(msg.application_properties),
        "messageAnnotations": plain(msg.message_annotations),
    }
json.dump(fixtures, open(path, "w"), indent=2)
open(path, "a").write("\n")
