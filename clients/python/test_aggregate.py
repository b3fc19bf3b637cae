"""Aggregation basics and the counting helpers."""

from pymongo import DESCENDING


def sales(db):
    db.s.insert_many(
        [
            {"_id": 1, "item": "a", "qty": 2, "price": 10},
            {"_id": 2, "item": "b", "qty": 1, "price": 20},
            {"_id": 3, "item": "a", "qty": 5, "price": 10},
            {"_id": 4, "item": "c", "qty": 10, "price": 1},
            {"_id": 5, "item": "b", "qty": 3, "price": 20},
        ]
    )


def test_match_group_sort(db):
    sales(db)
    got = list(
        db.s.aggregate(
            [
                {"$match": {"qty": {"$gte": 2}}},
                {
                    "$group": {
                        "_id": "$item",
                        "total": {"$sum": {"$multiply": ["$qty", "$price"]}},
                        "n": {"$sum": 1},
                        "maxQty": {"$max": "$qty"},
                    }
                },
                {"$sort": {"total": DESCENDING}},
            ]
        )
    )
    assert got == [
        {"_id": "a", "total": 70, "n": 2, "maxQty": 5},
        {"_id": "b", "total": 60, "n": 1, "maxQty": 3},
        {"_id": "c", "total": 10, "n": 1, "maxQty": 10},
    ]


def test_project_limit_skip_count(db):
    sales(db)
    got = list(
        db.s.aggregate(
            [
                {"$sort": {"_id": 1}},
                {"$skip": 1},
                {"$limit": 2},
                {"$project": {"_id": 0, "item": 1, "value": {"$multiply": ["$qty", "$price"]}}},
            ]
        )
    )
    assert got == [{"item": "b", "value": 20}, {"item": "a", "value": 50}]
    assert list(db.s.aggregate([{"$match": {"item": "a"}}, {"$count": "n"}])) == [{"n": 2}]


def test_unwind_and_group_push(db):
    db.t.insert_many([{"_id": 1, "tags": ["x", "y"]}, {"_id": 2, "tags": ["y"]}, {"_id": 3}])
    got = list(
        db.t.aggregate(
            [
                {"$unwind": "$tags"},
                {"$group": {"_id": "$tags", "ids": {"$push": "$_id"}}},
                {"$sort": {"_id": 1}},
            ]
        )
    )
    assert got == [{"_id": "x", "ids": [1]}, {"_id": "y", "ids": [1, 2]}]


def test_aggregate_batches_through_getmore(db):
    db.big.insert_many([{"_id": i} for i in range(1000)])
    got = list(db.big.aggregate([{"$sort": {"_id": -1}}], batchSize=50))
    assert [d["_id"] for d in got] == list(range(999, -1, -1))


def test_count_documents(db):
    sales(db)
    assert db.s.count_documents({}) == 5
    assert db.s.count_documents({"item": "a"}) == 2
    assert db.s.count_documents({"qty": {"$gt": 100}}) == 0
    assert db.s.count_documents({}, skip=1, limit=2) == 2
    assert db.missing.count_documents({}) == 0


def test_estimated_document_count(db):
    sales(db)
    assert db.s.estimated_document_count() == 5
    assert db.missing.estimated_document_count() == 0


def test_distinct(db):
    sales(db)
    db.s.insert_one({"_id": 6, "item": ["a", "d"]})
    assert sorted(db.s.distinct("item")) == ["a", "b", "c", "d"]
    assert sorted(db.s.distinct("qty", {"item": "b"})) == [1, 3]
    assert db.s.distinct("nothing") == []
