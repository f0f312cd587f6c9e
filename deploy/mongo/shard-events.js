// Shard the fleet's collections on a sharded MongoDB cluster (run once, through mongos,
// as a user with clusterManager and the database's dbAdmin roles):
//
//   EVENTFLEET_MONGO_DATABASE=eventfleet mongosh "$MONGOS_URL" --file deploy/mongo/shard-events.js
//
// events:    {aggregate_type: 1, aggregate_id: 1} -- every event of one aggregate lives on one
//            shard, so a replay, a version check and the unique (aggregate, version) index stay
//            on one shard; the store's queries always name both fields. The unique _id (event
//            id) is only enforced per shard on a sharded collection, which is enough here: an
//            event id is derived from its aggregate and command id, so the same id always
//            lands on the same aggregate's shard.
// snapshots: {_id: "hashed"} -- one document per aggregate, read by _id ("type:id").
// chat_messages (views): {_id: "hashed"}, read by _id.
const dbName = process.env.EVENTFLEET_MONGO_DATABASE || "eventfleet";
const fleet = db.getSiblingDB(dbName);

sh.enableSharding(dbName);
// The same unique index the fleet creates at start (MongoEventStore.ensure_indexes); a unique
// index on a sharded collection must start with the shard key, and this one does.
fleet.events.createIndex(
  { aggregate_type: 1, aggregate_id: 1, version: 1 },
  { unique: true, name: "aggregate_version" },
);
sh.shardCollection(`${dbName}.events`, { aggregate_type: 1, aggregate_id: 1 });
sh.shardCollection(`${dbName}.snapshots`, { _id: "hashed" });
sh.shardCollection(`${dbName}.chat_messages`, { _id: "hashed" });
printjson(sh.status());
