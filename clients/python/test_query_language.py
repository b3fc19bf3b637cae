"""The query and aggregation language beyond CRUD basics, as applications' own test suites use
it through PyMongo: geospatial and text indexes, time zones, exact decimals, window functions,
date truncation and regular expressions. Each expected value is what a MongoDB 8.0 server
returns (run with $MONGODB_URI to check against one)."""

import datetime

import pytest
from bson.decimal128 import Decimal128
from pymongo import GEOSPHERE, TEXT
from pymongo.errors import OperationFailure

UTC = datetime.timezone.utc


def test_near_sorts_by_distance_within_max_distance(db):
    db.places.create_index([("loc", GEOSPHERE)])
    db.places.insert_many(
        [
            {"_id": "far", "loc": {"type": "Point", "coordinates": [0, 3]}},  # ~333 km
            {"_id": "one", "loc": {"type": "Point", "coordinates": [0, 1]}},  # ~111 km
            {"_id": "half", "loc": {"type": "Point", "coordinates": [0, 0.5]}},  # ~56 km
        ]
    )
    near = {"$near": {"$geometry": {"type": "Point", "coordinates": [0, 0]}, "$maxDistance": 200_000}}
    assert [d["_id"] for d in db.places.find({"loc": near})] == ["half", "one"]


def test_near_without_a_geo_index_is_refused(db):
    db.places.insert_one({"loc": {"type": "Point", "coordinates": [0, 0]}})
    near = {"$near": {"$geometry": {"type": "Point", "coordinates": [0, 0]}}}
    with pytest.raises(OperationFailure) as e:
        list(db.places.find({"loc": near}))
    assert e.value.code == 291  # NoQueryExecutionPlans: $near needs a geospatial index


def test_geo_within_polygon(db):
    db.places.create_index([("loc", GEOSPHERE)])
    db.places.insert_many(
        [
            {"_id": "in", "loc": {"type": "Point", "coordinates": [1, 1]}},
            {"_id": "out", "loc": {"type": "Point", "coordinates": [5, 5]}},
        ]
    )
    square = {"type": "Polygon", "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 2], [0, 0]]]}
    got = db.places.find({"loc": {"$geoWithin": {"$geometry": square}}})
    assert [d["_id"] for d in got] == ["in"]


def test_text_search_with_score(db):
    db.posts.create_index([("body", TEXT)])
    db.posts.insert_many(
        [
            {"_id": 1, "body": "coffee shop"},
            {"_id": 2, "body": "tea house"},
            {"_id": 3, "body": "Coffee and tea"},
        ]
    )
    got = list(
        db.posts.find(
            {"$text": {"$search": "coffee"}},
            {"score": {"$meta": "textScore"}},
        ).sort({"score": {"$meta": "textScore"}})
    )
    assert sorted(d["_id"] for d in got) == [1, 3]
    assert all(isinstance(d["score"], float) and d["score"] > 0 for d in got)


def test_text_search_needs_a_text_index(db):
    db.posts.insert_one({"body": "coffee"})
    with pytest.raises(OperationFailure) as e:
        list(db.posts.find({"$text": {"$search": "coffee"}}))
    assert e.value.code == 27  # IndexNotFound: "text index required for $text query"


def test_named_time_zones_follow_daylight_saving(db):
    db.t.insert_many(
        [
            {"_id": "summer", "at": datetime.datetime(2024, 7, 1, 12, tzinfo=UTC)},
            {"_id": "winter", "at": datetime.datetime(2024, 1, 15, 12, tzinfo=UTC)},
        ]
    )
    fmt = {
        "$dateToString": {
            "format": "%Y-%m-%d %H:%M %z",
            "date": "$at",
            "timezone": "America/New_York",
        }
    }
    got = {d["_id"]: d["s"] for d in db.t.aggregate([{"$project": {"s": fmt}}])}
    assert got == {"summer": "2024-07-01 08:00 -0400", "winter": "2024-01-15 07:00 -0500"}


def test_unknown_time_zone_is_refused(db):
    db.t.insert_one({"at": datetime.datetime(2024, 1, 1, tzinfo=UTC)})
    bad = {"$dateToString": {"date": "$at", "timezone": "Mars/Olympus_Mons"}}
    with pytest.raises(OperationFailure) as e:
        list(db.t.aggregate([{"$project": {"s": bad}}]))
    assert e.value.code == 40485  # unrecognized time zone identifier


def test_decimal_sums_are_exact(db):
    db.d.insert_many([{"v": Decimal128("0.1")} for _ in range(3)])
    (got,) = db.d.aggregate([{"$group": {"_id": None, "s": {"$sum": "$v"}}}])
    assert got["s"] == Decimal128("0.3")  # not 0.30000000000000004


def test_running_total_with_set_window_fields(db):
    db.s.insert_many([{"_id": 1, "qty": 2}, {"_id": 2, "qty": 1}, {"_id": 3, "qty": 5}])
    got = db.s.aggregate(
        [
            {
                "$setWindowFields": {
                    "sortBy": {"_id": 1},
                    "output": {
                        "run": {"$sum": "$qty", "window": {"documents": ["unbounded", "current"]}}
                    },
                }
            },
            {"$project": {"run": 1}},
        ]
    )
    assert [d["run"] for d in got] == [2, 3, 8]


def test_date_trunc_to_a_monday_week(db):
    db.t.insert_one({"at": datetime.datetime(2024, 7, 17, 13, 45, tzinfo=UTC)})
    trunc = {"$dateTrunc": {"date": "$at", "unit": "week", "startOfWeek": "monday"}}
    (got,) = db.t.aggregate([{"$project": {"_id": 0, "w": trunc}}])
    assert got["w"] == datetime.datetime(2024, 7, 15)


def test_regex_find_reports_match_index_and_captures(db):
    db.t.insert_one({"s": "order 42 shipped"})
    (got,) = db.t.aggregate(
        [{"$project": {"_id": 0, "m": {"$regexFind": {"input": "$s", "regex": r"(\d+)"}}}}]
    )
    assert got["m"] == {"match": "42", "idx": 6, "captures": ["42"]}
