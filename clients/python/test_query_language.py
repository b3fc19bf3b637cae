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


def test_text_score_flows_through_an_aggregation(db):
    db.posts.create_index([("body", TEXT)])
    db.posts.insert_many(
        [
            {"_id": 1, "body": "coffee"},
            {"_id": 2, "body": "Coffee Shopping"},
            {"_id": 3, "body": "tea"},
        ]
    )
    match = {"$match": {"$text": {"$search": "coffee"}}}
    got = list(
        db.posts.aggregate(
            [
                match,
                {"$addFields": {"score": {"$meta": "textScore"}}},
                {"$sort": {"s": {"$meta": "textScore"}}},
                {"$project": {"score": 1, "double": {"$multiply": [{"$meta": "textScore"}, 2]}}},
            ]
        )
    )
    # 1 term in 1 token scores 1.0; in 2 tokens ("shopping" counts), 0.5 * 1/2 + 0.5.
    assert got == [{"_id": 1, "score": 1.0, "double": 2.0}, {"_id": 2, "score": 0.75, "double": 1.5}]
    total = list(db.posts.aggregate([match, {"$group": {"_id": None, "t": {"$sum": {"$meta": "textScore"}}}}]))
    assert total == [{"_id": None, "t": 1.75}]


def test_geo_near_distance_is_metadata_too(db):
    db.places.create_index([("loc", "2d")])
    db.places.insert_many([{"_id": "a", "loc": [3, 4]}, {"_id": "b", "loc": [6, 8]}])
    got = list(
        db.places.aggregate(
            [
                {"$geoNear": {"near": [0, 0], "distanceField": "d", "distanceMultiplier": 10}},
                {"$project": {"d": 1, "m": {"$meta": "geoNearDistance"}, "p": {"$meta": "geoNearPoint"}}},
            ]
        )
    )
    # The field is scaled by distanceMultiplier, the metadata is not.
    assert got == [{"_id": "a", "d": 50.0, "m": 5.0, "p": [3, 4]}, {"_id": "b", "d": 100.0, "m": 10.0, "p": [6, 8]}]


@pytest.mark.parametrize(
    "pipeline, code, message",
    [
        (
            [{"$project": {"s": {"$meta": "textScore"}}}],
            40218,
            "query requires text score metadata, but it is not available",
        ),
        (
            [{"$match": {"$text": {"$search": "x"}}}, {"$sort": {"d": {"$meta": "geoNearDistance"}}}],
            40218,
            "query requires $geoNear distance metadata, but it is not available",
        ),
        (
            [{"$match": {"a": 1}}, {"$match": {"$text": {"$search": "x"}}}],
            17313,
            "$match with $text is only allowed as the first pipeline stage",
        ),
        ([{"$addFields": {"s": {"$meta": "bogus"}}}], 17308, "Unsupported argument to $meta: bogus"),
    ],
)
def test_metadata_errors(db, pipeline, code, message):
    db.posts.create_index([("body", TEXT)])
    with pytest.raises(OperationFailure) as e:
        list(db.posts.aggregate(pipeline))
    assert (e.value.code, e.value.details["errmsg"]) == (code, message)


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
