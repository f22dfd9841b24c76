"""A third-party client of the pv event contract, written as an integrator in Python would:
confluent-kafka and fastavro only, the schemas from `schemas/`, the Avro single-object encoding
exactly as the Avro specification describes it. Used by tests/python_client.rs.

  pv_client.py produce   --bootstrap B --topic T --clinic C --patient P   every event kind to the raw topic
  pv_client.py malformed --bootstrap B --topic T --clinic C               an unknown fingerprint, a truncated body
  pv_client.py read      --bootstrap B --topic T --expect N               decode a topic with fastavro alone
  pv_client.py post      --url U --token K --clinic C --patient P        POST JSON to the gateway (requests)

Each command prints one JSON document on stdout.
"""

import argparse
import datetime
import glob
import io
import json
import os
import re
import sys
import time
import uuid

import fastavro
import requests
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from fastavro.schema import fingerprint, to_parsing_canonical_form

SCHEMAS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "schemas")
MAGIC = b"\xc3\x01"


def load_schemas():
    """Every published schema: (family, version) -> (parsed schema, 8-byte header fingerprint)."""
    out = {}
    for path in glob.glob(os.path.join(SCHEMAS, "*.avsc")):
        m = re.match(r"(.+)\.v(\d+)\.avsc$", os.path.basename(path))
        with open(path) as f:
            raw = json.load(f)
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO"))
        out[(m.group(1), int(m.group(2)))] = (fastavro.parse_schema(raw), fp)
    return out


def current(schemas, family):
    version = max(v for (f, v) in schemas if f == family)
    return schemas[(family, version)]


def encode(schemas, family, record):
    schema, fp = current(schemas, family)
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, record)
    return MAGIC + fp + body.getvalue()


def events(clinic, patient, now_ms):
    """One event of each kind for one patient, accepted now."""
    day = 86_400_000
    common = {"clinic_id": clinic, "patient_ref": patient, "received_at": now_ms}
    enrolment = dict(common, event_id=str(uuid.uuid4()), enrolled_at=now_ms - 3 * day, age_band="age_45_54",
                     sex="female", baseline_urinary_score=4, prior_substance_use_disorder=False,
                     indication="treatment-resistant depression", protocol="ketamine_iv_0_5_mg_kg")
    dose = dict(common, event_id=str(uuid.uuid4()), administered_at=now_ms - 2 * day, product="ketamine",
                formulation="solution for injection 50 mg/ml", route="iv", dose_mg=35.0, weight_kg=70.0,
                indication="treatment-resistant depression", session_number=1, protocol="ketamine_iv_0_5_mg_kg",
                lot_number="L-PY-1")
    monitoring = dict(common, event_id=str(uuid.uuid4()), session_number=1, monitored_at=now_ms - 2 * day + 3_600_000,
                      bp_systolic_pre=120, bp_diastolic_pre=80, bp_systolic_post=135, bp_diastolic_post=85,
                      sedation_moaas=4, dissociation_cadss=12, spo2_min_pct=97, observation_minutes=120,
                      discharge_ready=True)
    onset = datetime.date.fromtimestamp((now_ms - day) / 1000)
    report = dict(common, event_id=str(uuid.uuid4()), report_id=f"PY-{patient}-1", version=1, nullification=False,
                  nullification_reason=None, reported_at=now_ms - day // 2, reporter_qualification="physician",
                  reactions=[{"verbatim": "blood in urine", "coded_term": None, "onset_date": onset,
                              "outcome": "recovering",
                              "seriousness": {"death": False, "life_threatening": False, "hospitalisation": True,
                                              "disability": False, "congenital_anomaly": False,
                                              "other_medically_important": False}}],
                  drugs=[{"role": "suspect", "name": "ketamine hydrochloride", "product": "ketamine", "route": "iv",
                          "causality": "possible", "dechallenge": "positive", "rechallenge": None}],
                  narrative="Haematuria two days after the first session.")
    return [("patient_enrolment", enrolment), ("dose_administered", dose), ("session_monitoring", monitoring),
            ("adverse_event_report", report)]


def produce(args):
    schemas = load_schemas()
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "acks": "all"})
    now_ms = int(time.time() * 1000)
    sent = {}
    for family, record in events(args.clinic, args.patient, now_ms):
        producer.produce(args.topic, key=f"{args.clinic}/{args.patient}".encode(),
                         value=encode(schemas, family, record), timestamp=now_ms)
        sent[family] = record["event_id"]
    if producer.flush(30) != 0:
        sys.exit("not every message was acknowledged")
    return sent


def malformed(args):
    schemas = load_schemas()
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all"})
    now_ms = int(time.time() * 1000)
    _, dose = events(args.clinic, "py-bad", now_ms)[1]
    good = encode(schemas, "dose_administered", dose)
    # Not single-object encoded at all, and a known schema with its body cut short. (An unknown
    # fingerprint is not malformed: it may be a newer schema, and halts the partition instead.)
    not_avro = b'{"type":"dose_administered"}'
    truncated = good[:20]
    for value in (not_avro, truncated):
        producer.produce(args.topic, key=f"{args.clinic}/py-bad".encode(), value=value, timestamp=now_ms)
    if producer.flush(30) != 0:
        sys.exit("not every message was acknowledged")
    return {"sent": 2}


def decode(schemas, value):
    if value[:2] != MAGIC:
        raise ValueError("not single-object encoded")
    for (family, version), (schema, fp) in schemas.items():
        if fp == value[2:10]:
            return family, version, fastavro.schemaless_reader(io.BytesIO(value[10:]), schema)
    raise ValueError("unknown fingerprint " + value[2:10].hex())


def read(args):
    schemas = load_schemas()
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"py-reader-{uuid.uuid4()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([args.topic])
    out, deadline = [], time.time() + args.timeout
    while len(out) < args.expect and time.time() < deadline:
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            sys.exit(str(msg.error()))
        family, version, record = decode(schemas, msg.value())
        out.append({"family": family, "version": version, "event_id": str(record.get("event_id")),
                    "record": json.loads(json.dumps(record, default=str))})
    consumer.close()
    return out


def post(args):
    now = datetime.datetime.now(datetime.timezone.utc)
    event = {"type": "dose_administered", "event_id": str(uuid.uuid4()), "clinic_id": args.clinic,
             "patient_ref": args.patient, "administered_at": (now - datetime.timedelta(hours=1)).isoformat(),
             "product": "ketamine", "formulation": "solution for injection 50 mg/ml", "route": "iv",
             "dose_mg": 35.0, "weight_kg": 70.0, "indication": "treatment-resistant depression",
             "session_number": 2}
    headers = {"Authorization": f"Bearer {args.token}"}
    ok = requests.post(f"{args.url}/v1/events", json=event, headers=headers, timeout=30)
    bad = requests.post(f"{args.url}/v1/events", json=dict(event, dose_mg=-1), headers=headers, timeout=30)
    return {"ok": {"status": ok.status_code, "body": ok.json()}, "event_id": event["event_id"],
            "bad": {"status": bad.status_code, "body": bad.json()}}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["produce", "malformed", "read", "post"])
    p.add_argument("--bootstrap")
    p.add_argument("--topic")
    p.add_argument("--clinic", default="clinic-north")
    p.add_argument("--patient", default="py-001")
    p.add_argument("--expect", type=int, default=1)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--url")
    p.add_argument("--token")
    args = p.parse_args()
    result = {"produce": produce, "malformed": malformed, "read": read, "post": post}[args.command](args)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
